"""DVC stage `train`: Zero-DCE on the train split, tracked in MLflow."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from src.errors import cli_entry

if TYPE_CHECKING:
    from src.config import Params


@cli_entry
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", type=Path, required=True, help="folder with train.csv and val.csv")
    parser.add_argument("--model", type=Path, required=True, help="where to write the .keras model")
    parser.add_argument("--run-file", type=Path, required=True, help="JSON naming the MLflow run")
    parser.add_argument("--history", type=Path, required=True, help="per-epoch CSV")
    parser.add_argument("--metrics", type=Path, required=True, help="best-epoch metrics JSON")
    parser.add_argument("--checkpoints", type=Path, default=Path(".checkpoints/train"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    from src.config import load_params
    from src.preflight import check_training
    from src.stage_lock import held
    from src.train.cluster import check_cluster, checkpoint_folder, is_chief

    params = load_params(args.params)
    check_cluster(params.train, args.params)  # train.strategy multi_worker: TF_CONFIG, batch per worker
    # Params against the data (crop and batch against the images, the split against split.*)
    # before TensorFlow loads and before an MLflow run or a checkpoint folder exists: a refusal
    # is one line in about a second and leaves nothing behind.
    check_training(params, args.split, args.params)
    folder = checkpoint_folder(params.train.strategy, args.checkpoints)
    # One training per checkpoint folder: a second would wipe this one's epochs (src/stage_lock.py).
    with held(folder.name, "training"):
        from src import runtime  # imports TensorFlow: after params are known to be valid

        runtime.configure(params.train)
        if is_chief(params.train.strategy):
            train_as_chief(params, args)
        else:
            train_as_worker(params, args.split, folder)


def train_as_worker(params: Params, split: Path, folder: Path) -> None:
    """Multi-worker training: this worker takes its share of every step; the chief alone writes
    the MLflow run, the model and the reports, so two hosts never write one file."""
    from src.train.checkpoints import Checkpoints
    from src.train.cluster import tf_config_task
    from src.train.run import run_worker_training

    task = tf_config_task()
    result = run_worker_training(params, split, folder)
    print(
        f"trained {len(result.state.history)} epochs as {task.type} {task.index} of {task.workers} "
        "workers; the chief writes the model, the reports and the MLflow run"
    )
    Checkpoints.clear_folder(folder)


def train_as_chief(params: Params, args: argparse.Namespace) -> None:
    from src.train.checkpoints import Checkpoints
    from src.train.run import run_training, write_training_outputs

    result, run_id = run_training(params, args.split, args.checkpoints)
    write_training_outputs(result, run_id, args.model, args.run_file, args.history, args.metrics)
    best = result.best
    print(
        f"trained {len(result.state.history)} epochs; best epoch {int(best['epoch'])}: "
        f"val PSNR {best['val_psnr']:.2f} dB, SSIM {best['val_ssim']:.3f}; MLflow run {run_id}"
    )
    Checkpoints.clear_folder(args.checkpoints)


if __name__ == "__main__":
    main()
