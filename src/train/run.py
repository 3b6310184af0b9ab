"""One tracked training run of the curves: split CSVs in, an MLflow run and the curves model out.

This is where the training loop meets MLflow: params, provenance tags, the splits as
dataset inputs and system metrics when the run starts; the loss curves and a few val
images every epoch; a description with the headline results at the end (the model itself
is logged by the train_denoiser stage, which finishes it); and a FAILED status with the
reason when anything goes wrong, KILLED when a stop signal
(Ctrl-C, SIGTERM from `kill`, `timeout` or a scheduler: `src.signals`) ends it.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd

from src import signals
from src.config import Params
from src.data.images import read_rgb, to_uint8, to_unit_float
from src.data.manifest import manifest_digest
from src.data.split import read_split
from src.files import atomic_path, atomic_write_text
from src.tracking import runs as tracking
from src.tracking.lineage import log_split_inputs
from src.train.checkpoints import Checkpoints, TrainingState, fingerprint, read_state
from src.train.loop import PreviewCallback, TrainingResult, train

PREVIEW_IMAGES = 3  # val images logged every epoch (the first of the split: the same every run)
VARIANT_NAMES = {"zero_dce": "Zero-DCE", "zero_dce_pp": "Zero-DCE++"}


def split_version(split_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in ("train", "val", "test"):
        digest.update((split_dir / f"{name}.csv").read_bytes())
    return digest.hexdigest()[:16]


def run_name(params: Params, commit: str) -> str:
    """What the run is, at a glance in `mlflow ui`'s run list, and unique (to the second)."""
    m, t = params.model, params.train
    stamp = datetime.datetime.now().strftime("%m%d-%H%M%S")
    return f"{m.variant} lr{t.learning_rate:.0e} e{t.epochs} @{commit[:7]} {stamp}"


def training_note(params: Params, best: dict[str, float], tags: dict[str, str]) -> str:
    """The run's description (markdown, the "Description" box of the run page): its headline
    results and where they came from. The evaluate stage appends the test scores."""
    m = params.model
    return (
        f"**{VARIANT_NAMES[m.variant]}**, {params.train.epochs} curve epochs, "
        f"lr {params.train.learning_rate:g}.\n\n"
        f"Best epoch {int(best['epoch'])}: validation PSNR **{best['val_psnr']:.2f} dB**, "
        f"SSIM **{best['val_ssim']:.3f}** (score {best['val_score']:.2f}).\n\n"
        f"Data `{tags['data_version']}`, split `{tags['split_version']}`, commit `{tags['git_commit'][:12]}`."
    )


def preview_logger(val_rows: pd.DataFrame) -> PreviewCallback:
    """Log the same few val images after every epoch, so the run's image slider shows the
    model learning. Step 0 is the low-light input; each image is halved (300x200 for LOL)
    to keep a run's artifacts at a few MB."""
    rows = val_rows.head(PREVIEW_IMAGES)
    images = {Path(low).stem: to_unit_float(read_rgb(low)) for low in rows["low"]}

    def small(image: np.ndarray) -> np.ndarray:
        return to_uint8(np.clip(image[::2, ::2], 0.0, 1.0))

    for name, low in images.items():
        mlflow.log_image(small(low), key=f"val_{name}", step=0, synchronous=True)

    def log(epoch: int, model: keras.Model) -> None:
        for name, low in images.items():
            enhanced = keras.ops.convert_to_numpy(model(low[None]))[0]
            mlflow.log_image(small(enhanced), key=f"val_{name}", step=epoch + 1, synchronous=True)

    return log


@contextlib.contextmanager
def log_level(name: str, level: int) -> Iterator[None]:
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def resume_hint(params: Params, checkpoint_dir: Path, fingerprint_value: str) -> str:
    """What a rerun will do, read from the checkpoint folder as the rerun will read it."""
    state = Checkpoints.load_state(checkpoint_dir, fingerprint_value)
    if state is None:
        return "a rerun starts afresh"
    if state.completed_epochs == 0:
        return "no epoch had finished; a rerun starts epoch 1 in the same run"
    return f"rerun to resume after epoch {state.completed_epochs} of {params.train.epochs}"


# Why a run left RUNNING is closed by the next training in its checkpoint folder.
ORPHAN_REASON = "its process was killed before it could end it; a later training took over its checkpoints"


def recorded_run(checkpoint_dir: Path) -> str | None:
    """The run id the folder's state records, whatever experiment it was: the run of a training
    that a new one replaces, to be closed if its process was killed before it could."""
    try:
        state = read_state(checkpoint_dir)
    except ValueError:
        return None
    return state.run_id if state else None


def run_training(params: Params, split_dir: Path, checkpoint_dir: Path) -> tuple[TrainingResult, str]:
    """Train with MLflow tracking; returns the result and the MLflow run id."""
    train_rows = read_split(split_dir / "train.csv")
    val_rows = read_split(split_dir / "val.csv")
    tracking.configure(params.mlflow)
    data_version = manifest_digest(Path(params.fetch.manifest))[:16]
    tags = tracking.provenance_tags(data_version=data_version, split_version=split_version(split_dir))
    previews: list[PreviewCallback] = []

    previous_run = recorded_run(checkpoint_dir)

    def on_start(state: TrainingState, resumed: bool) -> None:
        # System metrics (CPU, memory, GPU if any, sampled every 10 s) sit beside the loss
        # curves: a slow epoch is then visibly the machine's or the model's.
        if resumed and state.run_id:
            run = mlflow.start_run(run_id=state.run_id, log_system_metrics=True)
            mlflow.set_tag("resumed_at_epoch", str(state.completed_epochs))
            if "failure_reason" in run.data.tags:  # the stop that ended the last attempt; this one goes on
                mlflow.MlflowClient().delete_tag(run.info.run_id, "failure_reason")
        else:
            if previous_run and tracking.close_orphan(previous_run, ORPHAN_REASON):
                print(f"MLflow run {previous_run[:8]} of a killed training marked KILLED", file=sys.stderr)
            run = mlflow.start_run(run_name=run_name(params, tags["git_commit"]), log_system_metrics=True)
            state.run_id = run.info.run_id
            # The denoiser section is the train_denoiser stage's, which may rerun alone with other
            # values: it logs what it fitted itself (MLflow params cannot change once logged).
            mlflow.log_params({k: v for k, v in params.flat().items() if not k.startswith("denoiser.")})
            mlflow.log_params({"data.train_images": len(train_rows), "data.val_images": len(val_rows)})
            mlflow.set_tags(tags)
            log_split_inputs(split_dir, data_version, tags["split_version"])
        previews.append(preview_logger(val_rows))

    def on_epoch_end(epoch: int, row: dict[str, float], improved: bool) -> None:
        mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)

    def on_preview(epoch: int, model: keras.Model) -> None:
        previews[0](epoch, model)

    fingerprint_value = fingerprint(params, split_dir / "train.csv", split_dir / "val.csv")
    try:
        result = train(
            params,
            train_rows["low"].tolist(),
            (val_rows["low"].tolist(), val_rows["high"].tolist()),
            checkpoint_dir,
            fingerprint_value,
            on_start=on_start,
            on_epoch_end=on_epoch_end,
            on_preview=on_preview,
        )
        best = result.best
        mlflow.log_metrics(
            {
                "best_epoch": best["epoch"],
                "best_val_score": best["val_score"],
                "best_val_psnr": best["val_psnr"],
                "best_val_ssim": best["val_ssim"],
            }
        )
        mlflow.set_tag("best_epoch", str(int(best["epoch"])))
        mlflow.set_tag(tracking.NOTE_TAG, training_note(params, best, tags))
    except BaseException as err:
        interrupted = isinstance(err, KeyboardInterrupt)  # Ctrl-C, SIGTERM, SIGHUP (src.signals)
        active = mlflow.active_run()
        if active:
            mlflow.set_tag("failure_reason", signals.reason(err))
            # The system metrics monitor says it stopped in two INFO lines: after a failure or a
            # stop, the one line saying what happened (`cli_entry`) must be the last thing shown.
            with log_level("mlflow.system_metrics", logging.WARNING):
                mlflow.end_run(status="KILLED" if interrupted else "FAILED")
        if interrupted:
            if active:
                signals.add_outcome(err, f"MLflow run {active.info.run_id[:8]} marked KILLED")
            signals.add_outcome(err, resume_hint(params, checkpoint_dir, fingerprint_value))
        raise
    run_id = mlflow.active_run().info.run_id
    mlflow.end_run()
    return result, run_id


def run_worker_training(params: Params, split_dir: Path, checkpoint_dir: Path) -> TrainingResult:
    """A non-chief worker's part of a multi-worker run (`src.train.cluster`): the same steps on its
    share of every batch, and no MLflow run, model or reports, which are the chief's to write."""
    train_rows = read_split(split_dir / "train.csv")
    val_rows = read_split(split_dir / "val.csv")
    return train(
        params,
        train_rows["low"].tolist(),
        (val_rows["low"].tolist(), val_rows["high"].tolist()),
        checkpoint_dir,
        fingerprint(params, split_dir / "train.csv", split_dir / "val.csv"),
    )


def save_model(model: object, path: Path) -> None:
    """Save a `.keras` file atomically: a crash mid-save leaves the old file, not half a new one."""
    with atomic_path(path) as tmp:  # keeps the .keras suffix Keras insists on
        model.save(tmp)


def write_training_outputs(
    result: TrainingResult,
    run_id: str,
    model_path: Path,
    run_file: Path,
    history_csv: Path,
    metrics_json: Path,
) -> None:
    """The files DVC tracks for the train stage."""
    save_model(result.model, model_path)
    history_csv.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(history_csv, result.history.to_csv(index=False, float_format="%.6g"))
    best = result.best
    metrics = {
        "best_epoch": int(best["epoch"]),
        "epochs": len(result.state.history),
        "val_score": round(best["val_score"], 4),
        "val_psnr": round(best["val_psnr"], 4),
        "val_ssim": round(best["val_ssim"], 4),
        "train_images_per_s": round(float(result.history["train_images_per_s"].median()), 2),
        "input_wait_fraction": round(float(result.history["input_wait_fraction"].max()), 4),
    }
    metrics_json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(metrics_json, json.dumps(metrics, indent=2) + "\n")
    run_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        run_file, json.dumps({"run_id": run_id, "tracking_uri": mlflow.get_tracking_uri()}, indent=2) + "\n"
    )
