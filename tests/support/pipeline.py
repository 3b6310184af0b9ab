"""Shared builders for tests that train: a tiny split of the committed fixture and tiny params."""

from __future__ import annotations

import atexit
import dataclasses
import functools
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
import yaml

from src.config import Params, params_from_dict
from src.data.split import find_pairs, split_pairs, write_split
from tests.support.data import FIXTURE_DATASET as FIXTURE
from tests.support.data import REPO_ROOT as REPO

TINY_OVERRIDES = {
    "split": {"seed": 1, "train": 4, "val": 2, "test": 4},
    # Zero-DCE (exact in tiles); tests of Zero-DCE++ ask for it.
    "model": {"variant": "zero_dce"},
    "train": {
        "epochs": 2,
        "batch_size": 2,
        "crop_size": 32,
        "precision": "float32",
        "val_images": 0,  # all (2): the preflight check refuses more than the split has
    },
    "loss": {"exposure_patch": 8},
    # A one-point grid fitted on both val pairs: the stage's work without its search.
    "denoiser": {"luma_weights": [0.05], "chroma_weights": [0.2], "gain_powers": [1.0], "fit_images": 2},
    # The lift on a net trained for a few steps: its graph, tiles, export and serving, not its skill.
    "light": {"steps": 20, "batch_size": 4, "filters": 4, "fit_images": 2, "normal_floor_db": 0.0},
    "evaluate": {"timing_runs": 2, "tv_fit_images": 0},
}


def tiny_params_dict() -> dict:
    """params.yaml with the tiny overrides. No store in it: tests choose the MLflow store the
    way users do, through MLFLOW_TRACKING_URI (`use_store`)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY_OVERRIDES.items():
        raw[section].update(values)
    raw["fetch"]["manifest"] = str(REPO / raw["fetch"]["manifest"])
    return raw


def tiny_params(**train_overrides: object) -> Params:
    params = params_from_dict(tiny_params_dict())
    if train_overrides:
        params = dataclasses.replace(params, train=dataclasses.replace(params.train, **train_overrides))
    return params


def tiny_split(tmp_path: Path, params: Params) -> Path:
    out = tmp_path / "split"
    write_split(split_pairs(find_pairs(FIXTURE), params.split), out, seed=params.split.seed)
    return out


def use_store(monkeypatch: pytest.MonkeyPatch, folder: Path) -> str:
    """Send MLflow to a sqlite store in `folder` through MLFLOW_TRACKING_URI, as a user would.

    Absolute: MLflow caches one store per URI string for the whole process, so a relative
    `sqlite:///mlflow.db` would keep pointing at the first test's folder. A new store starts as a
    copy of one made empty by MLflow once per session: its migrations cost ~1.5 s a store.
    """
    db = Path(folder).resolve() / "mlflow.db"
    if not db.exists():
        shutil.copyfile(_empty_store(), db)
        with sqlite3.connect(db) as store:  # the Default experiment's folder, as if made here
            location = (db.parent / "mlruns" / "0").as_posix()
            store.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (location,))
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@functools.cache
def _empty_store() -> Path:
    """An MLflow sqlite store with its tables and nothing else, made by MLflow itself."""
    import mlflow

    folder = Path(tempfile.mkdtemp(prefix="mlflow-empty-store-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"
