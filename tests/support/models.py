"""One tiny trained and evaluated model in its own temporary MLflow store, for the promotion,
enhancement and serving tests (training it takes ~10 s, so the run does it once)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import yaml

from src.config import Params
from tests.support.pipeline import tiny_params, tiny_params_dict, tiny_split, use_store


@dataclasses.dataclass(frozen=True)
class TinyModel:
    root: Path  # the working folder: mlflow.db, mlruns/, models/
    params: Params
    run_id: str
    model_path: Path  # the shipped model: curves, exposure gate, the fitted denoiser and the lift
    curves_path: Path  # the train stage's: the same without the denoiser
    run_file: Path
    tracking_uri: str  # the store, as MLFLOW_TRACKING_URI names it while the fixture lives

    def params_file(self, model_name: str, **promote: object) -> Path:
        """A params.yaml for the CLIs, with `model_name` to register."""
        raw = tiny_params_dict()
        raw["promote"].update(model_name=model_name, **promote)
        path = self.root / f"params-{model_name}.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path


def train_and_evaluate(root: Path, tracking_uri: str) -> TinyModel:
    """Train (2 epochs on 32 px crops), fit the denoiser and the lift and evaluate on the fixture,
    as the train, train_light, train_denoiser and evaluate stages do."""
    from src import runtime
    from src.data.split import read_split
    from src.evaluate.scoring import evaluate, flat_metrics
    from src.light.compose import with_light
    from src.light.fit import fit_light
    from src.tracking import runs as tracking
    from src.train.denoiser_fit import curve_cases, fit_denoiser, with_denoiser
    from src.train.run import run_training, save_model, write_training_outputs

    params = tiny_params()
    runtime.configure(params.train)
    split = tiny_split(root, params)
    result, run_id = run_training(params, split, root / "ckpt")
    curves_path, run_file = root / "models" / "curves.keras", root / "models" / "run.json"
    model_path = root / "models" / "model.keras"
    write_training_outputs(
        result,
        run_id,
        curves_path,
        run_file,
        root / "reports" / "history.csv",
        root / "reports" / "train.json",
    )
    val = read_split(split / "val.csv")
    pairs = val.head(params.denoiser.fit_images) if params.denoiser.fit_images else val
    fit = fit_denoiser(curve_cases(result.model, pairs), params.denoiser)
    train = read_split(split / "train.csv")
    light = fit_light(
        train, val, params.light, params.evaluate.mixed_light_factors, params.model.gate_band
    ).model
    model = with_light(with_denoiser(result.model, fit.strengths), light, params.light.scale_factor)
    save_model(model, model_path)
    tracking.log_to_run(run_file, params.mlflow, model=model)
    _, summary = evaluate(
        model,
        result.model,
        read_split(split / "test.csv"),
        read_split(split / "train.csv"),
        val,
        params.evaluate,
    )
    tracking.log_to_run(run_file, params.mlflow, metrics=flat_metrics(summary))
    return TinyModel(root, params, run_id, model_path, curves_path, run_file, tracking_uri)


def train_tiny(root: Path) -> TinyModel:
    """A trained tiny model in a sqlite store in `root`; the environment is as before afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        uri = use_store(patch, root)
        patch.chdir(root)
        try:
            return train_and_evaluate(root, uri)
        finally:
            while mlflow.active_run():
                mlflow.end_run()


@contextlib.contextmanager
def working_in(model: TinyModel) -> Iterator[TinyModel]:
    """The model's folder as working directory (MLflow writes ./mlruns) and its store as
    MLFLOW_TRACKING_URI, while the block lasts."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", model.tracking_uri)
        patch.chdir(model.root)
        yield model
        while mlflow.active_run():
            mlflow.end_run()


@contextlib.contextmanager
def tiny_model_store(root: Path, tracking_uri: str) -> Iterator[TinyModel]:
    """A tiny model trained into the store `tracking_uri` names (a tracking server), with the
    working directory in `root` while the block lasts."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        patch.chdir(root)
        with working_in(train_and_evaluate(root, tracking_uri)) as model:
            yield model


def log_copy(model: TinyModel, metrics: dict[str, float], tags: dict[str, str] | None = None) -> str:
    """Another finished run holding the same network, with the given scores: a stand-in for a
    retrained model whose evaluation came out better or worse. Returns its run id."""
    from src.model.loading import load_keras_model
    from src.tracking import runs as tracking

    mlflow.set_experiment(model.params.mlflow.experiment)
    with mlflow.start_run() as run:
        mlflow.set_tags({"git_commit": "0" * 40, "data_version": "d" * 16, **(tags or {})})
        mlflow.log_metrics(metrics)
        tracking.log_keras_model(load_keras_model(model.model_path))
    return run.info.run_id
