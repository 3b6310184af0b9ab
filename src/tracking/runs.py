"""MLflow plumbing: where runs go, what every run is tagged with, how models are logged."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from src.config import MlflowConfig
from src.errors import PipelineError
from src.tracking import tracking_uri

MODEL_ARTIFACT = "model"


def configure(cfg: MlflowConfig) -> str:
    """Point MLflow at the store (`src.tracking.tracking_uri`) and the experiment."""
    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(cfg.experiment)
    return uri


def git_commit(cwd: Path | str = ".") -> str:
    """The checked-out commit, suffixed `-dirty` when tracked files differ; `unknown` outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def provenance_tags(data_version: str, split_version: str) -> dict[str, str]:
    """Tags that let anyone trace a run back to its code and data."""
    commit = git_commit()
    return {
        "git_commit": commit,
        "mlflow.source.git.commit": commit.removesuffix("-dirty"),
        "data_version": data_version,
        "split_version": split_version,
    }


def image_signature() -> ModelSignature:
    """Batches of float32 RGB images in [0, 1] of ANY size, in and out.

    MLflow would infer a signature that pins the example's height and width, and
    then reject every real photo; the network is fully convolutional, so say so.
    """
    spec = TensorSpec(np.dtype(np.float32), (-1, -1, -1, 3))
    return ModelSignature(inputs=Schema([spec]), outputs=Schema([spec]))


def pip_requirements() -> list[str]:
    """Pinned runtime needs of a served model; naming them skips MLflow's slow inference of them."""
    names = ("tensorflow", "keras", "numpy")
    return [f"{name}=={importlib.metadata.version(name)}" for name in names]


def log_keras_model(model: object) -> str:
    """Log a Keras model to the active run; returns its `models:/` URI.

    No `input_example`: mlflow 3.17's keras flavour writes the example file before it
    creates the model folder and fails with FileNotFoundError. The explicit signature
    carries the same information (float32, any batch, height and width, 3 channels).
    """
    import mlflow.keras  # lazy: the flavour imports Keras and TensorFlow; reading runs needs neither

    info = mlflow.keras.log_model(
        model,
        name=MODEL_ARTIFACT,
        signature=image_signature(),
        pip_requirements=pip_requirements(),
    )
    return info.model_uri


def read_run_id(run_file: Path) -> str:
    """The MLflow run the train stage created, as recorded in its run file."""
    try:
        return str(json.loads(Path(run_file).read_text())["run_id"])
    except FileNotFoundError:
        raise PipelineError(f"{run_file}: run file not found (run the train stage first)") from None
    except (ValueError, KeyError, TypeError):
        raise PipelineError(f"{run_file}: not a run file (expected JSON with a run_id)") from None


def log_to_run(
    run_file: Path,
    cfg: MlflowConfig,
    metrics: dict[str, float] | None = None,
    artifacts: list[Path] | None = None,
    artifact_dir: str | None = None,
) -> str:
    """Add later stages' results (evaluation, plots) to the training run they describe,
    so one run in `mlflow ui` holds the whole story of a model."""
    run_id = read_run_id(run_file)
    configure(cfg)
    try:
        client = mlflow.MlflowClient()
        client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise PipelineError(
            f"{run_file}: MLflow run {run_id} is not in the store {mlflow.get_tracking_uri()} "
            "(was the store deleted? run `dvc repro -f train`)"
        ) from None
    with mlflow.start_run(run_id=run_id):
        if metrics:
            mlflow.log_metrics(metrics)
        for path in artifacts or []:
            mlflow.log_artifact(str(path), artifact_path=artifact_dir)
    return run_id
