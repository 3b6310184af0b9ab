"""Shared test data: the tiny LOL fixture, the optional real sample, and ways to copy them.

A plain module (not conftest.py) so tests import exactly what they use.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DATASET = REPO_ROOT / "tests" / "fixtures" / "lol_tiny" / "lol_dataset"
# 44 + 15 real 600x400 pairs on some machines; tests using it are skipped where it is absent.
SAMPLE_DATASET = Path("/work/shared/data/lol-sample/lol_dataset")
FIXTURE_COUNTS = {"our485": 8, "eval15": 3}

# Minimal params.yaml for stage runs: fetch.url has no default, the rest fall back to theirs.
TINY_PARAMS_YAML = """\
fetch:
  url: https://example.invalid/lol_dataset.zip
split:
  seed: {seed}
  train: 3
  val: 2
  test: 5
"""


def copy_fixture(dest: Path) -> Path:
    """Copy the tiny dataset to `dest` (a lol_dataset folder) so a test may damage it."""
    shutil.copytree(FIXTURE_DATASET, dest)
    return dest


def fixture_pair(subset: str, ident: int) -> tuple[np.ndarray, np.ndarray]:
    """The (low, high) uint8 images of one fixture pair."""
    from src.data.images import read_rgb

    folder = FIXTURE_DATASET / subset
    return read_rgb(folder / "low" / f"{ident}.png"), read_rgb(folder / "high" / f"{ident}.png")


def fixture_pairs(subset: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """All (low, high) uint8 pairs of a fixture subset, in numeric id order."""
    idents = sorted(int(path.stem) for path in (FIXTURE_DATASET / subset / "low").glob("*.png"))
    return [fixture_pair(subset, ident) for ident in idents]
