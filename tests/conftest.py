"""Fixtures shared across test folders. Plain helpers (fixture paths, tiny params, servers)
live in tests/support/, imported by name."""

import os
import signal
from collections.abc import Iterator

import mlflow.tracking._tracking_service.utils as tracking_service
import pytest

from tests.support.models import TinyModel, train_tiny, working_in
from tests.support.postgres import postgres_or_skip
from tests.support.servers import tracking_server as start_tracking_server

# Under pytest-xdist the workers share the cores: TensorFlow's default of one intra-op thread per
# core in every worker, and in every process a test starts, would oversubscribe them. Inherited
# by subprocesses, and read when TensorFlow makes its first thread pool.
if workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, (os.cpu_count() or 1) // int(workers))))

# pytest-xdist (--dist loadfile --no-loadscope-reorder) hands whole files to the workers in
# collection order. These take ~10-150 s each (--durations, 2 cores): started first, no worker is
# left alone with one of them at the end. A stale list costs only balance; every other file keeps
# its place after them.
LONGEST_FIRST = (
    "tests/test_pipeline_e2e.py",
    "tests/infer/test_enhance.py",
    "tests/tune/test_tune.py",
    "tests/bench/test_bench.py",
    "tests/tracking/test_tracking_server_postgres.py",
    "tests/infer/test_serving.py",
    "tests/test_signals.py",
    "tests/train/test_training.py",
    "tests/tune/test_tune_postgres.py",
    "tests/test_dvc_workflows.py",
    "tests/train/test_multi_worker.py",
    "tests/train/test_distribute.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: order kept


@pytest.fixture(autouse=True)
def mlflow_resolves_the_store_afresh(monkeypatch):
    """As in a fresh process, MLflow picks the store from MLFLOW_TRACKING_URI (else its default)
    in every test: a `mlflow.set_tracking_uri` left behind by a library or an earlier test
    would otherwise win over the variable for the rest of the session."""
    monkeypatch.setattr(tracking_service, "_tracking_uri", None)


@pytest.fixture(autouse=True, scope="session")
def ctrl_c_as_in_a_terminal():
    """The stop tests press Ctrl-C as a user at a terminal would. A shell starts a background job
    (`pytest … &`, nohup, some CI runners) with SIGINT ignored, and an ignored signal stays ignored
    in this process and every command it starts (`src.signals` respects that on purpose), so
    those tests would test nothing. Give SIGINT the disposition a terminal gives it; the commands
    the tests start inherit SIG_DFL, as from a shell prompt."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory) -> TinyModel:
    """A tiny model trained, fitted and evaluated once for the whole run, in its own MLflow store:
    training even a tiny model costs seconds. Its users keep apart by registered-model names."""
    return train_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tiny(tiny_trained) -> Iterator[TinyModel]:
    """The shared tiny model, with its folder as working directory and its store as
    MLFLOW_TRACKING_URI for the module's tests."""
    with working_in(tiny_trained) as model:
        yield model


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server on 127.0.0.1 for the whole run (the one pgserver ships), stopped at the
    end; each use takes fresh databases of it. Where it cannot start, every test that asks for it
    is skipped with the reason (tests/support/postgres.py)."""
    with postgres_or_skip() as server:
        yield server


@pytest.fixture(scope="session")
def tracking_server(postgres, tmp_path_factory):
    """A team's `mlflow server`: its own PostgreSQL database as backend store, proxied artifacts in
    a local folder. Shared by the run (it takes ~20 s to start); tests keep apart by experiment
    and registered-model names."""
    folder = tmp_path_factory.mktemp("tracking-server")
    with start_tracking_server(postgres.create_database("mlflow"), folder) as server:
        yield server
