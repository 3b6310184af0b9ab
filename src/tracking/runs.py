"""MLflow plumbing: where runs go, what every run is tagged with, how models are logged."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
from pathlib import Path

import mlflow

from src.config import MlflowConfig
from src.errors import PipelineError

MODEL_ARTIFACT = "model"
NOTE_TAG = "mlflow.note.content"  # the run description MLflow's UI shows on the run page


def configure(cfg: MlflowConfig) -> str:
    """Select the experiment in MLflow's own store (see `src.tracking`); returns the store's URI."""
    mlflow.set_experiment(cfg.experiment)
    return mlflow.get_tracking_uri()


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


def pip_requirements() -> list[str]:
    """Pinned runtime needs of the served model (what `src.infer.image_model` and the modules
    it imports use); naming them skips MLflow's slow inference of them."""
    names = ("tensorflow", "keras", "numpy", "pandas", "pillow", "tifffile", "PyYAML", "pydantic")
    return [f"{name}=={importlib.metadata.version(name)}" for name in names]


def log_keras_model(model: object) -> str:
    """Log the trained network to the active run as the model named `model`; returns its URI.

    What is logged is the images-in, images-out pyfunc of `src.tracking.logged_model`
    (PNG or JPEG files, base64 in the JSON, answered in the same encoding), holding the
    network as a `.keras` artifact: promotion registers it unchanged, so
    `mlflow models serve -m models:/zero-dce@champion` serves photos, and
    `src.enhance`/`src.export` take the network back out of it.
    """
    from src.tracking.logged_model import log_image_model  # lazy: imports pandas and mlflow.pyfunc

    return log_image_model(model, MODEL_ARTIFACT, pip_requirements())


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
    note: str | None = None,
    model: object | None = None,
) -> str:
    """Add later stages' results (evaluation, plots) to the training run they describe,
    so one run in `mlflow ui` holds the whole story of a model. `note` (markdown) becomes a
    section of the run's description, replacing an earlier section with the same heading,
    so a rerun of the stage does not repeat it. `model` is logged as the run's model
    (`log_keras_model`): the train_denoiser stage adds the finished one."""
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
        if note:
            description = client.get_run(run_id).data.tags.get(NOTE_TAG, "")
            mlflow.set_tag(NOTE_TAG, with_section(description, note))
        if model is not None:
            log_keras_model(model)
    return run_id


def with_section(description: str, section: str) -> str:
    """`description` with `section` appended, or swapped for a section that has its first line."""
    heading = section.splitlines()[0]
    kept = [part for part in description.split("\n\n---\n\n") if part and part.splitlines()[0] != heading]
    return "\n\n---\n\n".join([*kept, section])


def close_orphan(run_id: str, reason: str) -> bool:
    """End a run its process can no longer end (killed with SIGKILL, the machine lost) as KILLED,
    with `reason`; whether it was left RUNNING. The caller holds the lock that run's process held
    (src/stage_lock.py), so no live process owns it."""
    client = mlflow.MlflowClient()
    try:
        if client.get_run(run_id).info.status != "RUNNING":
            return False
        client.set_tag(run_id, "failure_reason", reason)
        client.set_terminated(run_id, status="KILLED")
    except mlflow.exceptions.MlflowException:  # deleted, or another store: nothing to close here
        return False
    return True
