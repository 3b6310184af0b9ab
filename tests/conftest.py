"""Fixtures shared across test folders. Plain helpers (fixture paths, tiny params, servers)
live in tests/support/, imported by name."""

import pytest

from tests.support.models import tiny_model_store


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, request):
    """A tiny trained model logged to its own MLflow store: one per test module, since
    training even a tiny model costs seconds and the modules only read it."""
    with tiny_model_store(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])) as model:
        yield model
