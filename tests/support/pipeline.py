"""Shared builders for tests that train: a tiny split of the committed fixture and tiny params."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from src.config import Params, params_from_dict
from src.data.split import find_pairs, split_pairs, write_split
from tests.support.data import FIXTURE_DATASET as FIXTURE
from tests.support.data import REPO_ROOT as REPO

TINY_OVERRIDES = {
    "split": {"seed": 1, "train": 4, "val": 2, "test": 4},
    # Zero-DCE (exact in tiles) with a small denoiser; tests of Zero-DCE++ ask for it.
    "model": {"variant": "zero_dce", "denoiser_filters": 8},
    "train": {"epochs": 2, "denoiser_epochs": 1, "batch_size": 2, "crop_size": 32, "precision": "float32"},
    "loss": {"exposure_patch": 8},
    "evaluate": {"timing_runs": 2},
}


def tiny_params_dict(tracking_uri: str) -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY_OVERRIDES.items():
        raw[section].update(values)
    raw["mlflow"]["tracking_uri"] = tracking_uri
    raw["fetch"]["manifest"] = str(REPO / raw["fetch"]["manifest"])
    return raw


def tiny_params(tmp_path: Path, **train_overrides: object) -> Params:
    params = params_from_dict(tiny_params_dict(f"sqlite:///{tmp_path / 'mlflow.db'}"))
    if train_overrides:
        params = dataclasses.replace(params, train=dataclasses.replace(params.train, **train_overrides))
    return params


def tiny_split(tmp_path: Path, params: Params) -> Path:
    out = tmp_path / "split"
    write_split(split_pairs(find_pairs(FIXTURE), params.split), out, seed=params.split.seed)
    return out
