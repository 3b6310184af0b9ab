"""One tracked training run: split CSVs in, an MLflow run and model files out.

This is where the training loop meets MLflow: params and provenance tags when the
run starts, the loss curves every epoch, the best model at the end, and a FAILED
status with the reason when anything goes wrong.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mlflow

from src.config import Params
from src.data.manifest import manifest_digest
from src.data.split import read_split
from src.files import atomic_path, atomic_write_text
from src.tracking import runs as tracking
from src.train.checkpoints import TrainingState, fingerprint
from src.train.loop import TrainingResult, train


def split_version(split_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in ("train", "val", "test"):
        digest.update((split_dir / f"{name}.csv").read_bytes())
    return digest.hexdigest()[:16]


def run_training(params: Params, split_dir: Path, checkpoint_dir: Path) -> tuple[TrainingResult, str]:
    """Train with MLflow tracking; returns the result and the MLflow run id."""
    train_rows = read_split(split_dir / "train.csv")
    val_rows = read_split(split_dir / "val.csv")
    tracking.configure(params.mlflow)
    tags = tracking.provenance_tags(
        data_version=manifest_digest(Path(params.fetch.manifest))[:16],
        split_version=split_version(split_dir),
    )

    def on_start(state: TrainingState, resumed: bool) -> None:
        if resumed and state.run_id:
            mlflow.start_run(run_id=state.run_id)
            mlflow.set_tag("resumed_at_epoch", str(state.completed_epochs))
            return
        run = mlflow.start_run(run_name=f"train-{tags['git_commit'][:8]}")
        state.run_id = run.info.run_id
        mlflow.log_params(params.flat())
        mlflow.log_params({"data.train_images": len(train_rows), "data.val_images": len(val_rows)})
        mlflow.set_tags(tags)

    def on_epoch_end(epoch: int, row: dict[str, float], improved: bool) -> None:
        mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)

    try:
        result = train(
            params,
            train_rows["low"].tolist(),
            (val_rows["low"].tolist(), val_rows["high"].tolist()),
            checkpoint_dir,
            fingerprint(params, split_dir / "train.csv", split_dir / "val.csv"),
            on_start=on_start,
            on_epoch_end=on_epoch_end,
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
        tracking.log_keras_model(result.model)
    except BaseException as err:
        if mlflow.active_run():
            mlflow.set_tag("failure_reason", f"{type(err).__name__}: {err}"[:500])
            status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
            mlflow.end_run(status=status)
        raise
    run_id = mlflow.active_run().info.run_id
    mlflow.end_run()
    return result, run_id


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
