"""DVC stage `train`: Zero-DCE on the train split, tracked in MLflow."""

import argparse
from pathlib import Path

from src.errors import cli_entry


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
    from src.train.cluster import check_cluster, checkpoint_folder, is_chief, tf_config_task

    params = load_params(args.params)
    # Params against the data (crop and batch against the images, the split against split.*)
    # before TensorFlow loads and before an MLflow run or a checkpoint folder exists: a refusal
    # is one line in about a second and leaves nothing behind.
    check_training(params, args.split, args.params)
    check_cluster(params.train, args.params)  # train.strategy multi_worker: TF_CONFIG, batch per worker
    from src import runtime  # imports TensorFlow: after params are known to be valid

    runtime.configure(params.train)
    from src.train.checkpoints import Checkpoints
    from src.train.run import run_training, run_worker_training, write_training_outputs

    strategy = params.train.strategy
    if not is_chief(strategy):
        # Multi-worker training: this worker takes its share of every step; the chief alone
        # writes the MLflow run, the model and the reports, so two hosts never write one file.
        task = tf_config_task()
        folder = checkpoint_folder(strategy, args.checkpoints)
        result = run_worker_training(params, args.split, folder)
        print(
            f"trained {len(result.state.history)} epochs as {task.type} {task.index} of {task.workers} "
            "workers; the chief writes the model, the reports and the MLflow run"
        )
        Checkpoints.clear_folder(folder)
        return
    result, run_id = run_training(params, args.split, args.checkpoints)
    write_training_outputs(result, run_id, args.model, args.run_file, args.history, args.metrics)
    result_best = result.best
    print(
        f"trained {len(result.state.history)} epochs; best epoch {int(result_best['epoch'])}: "
        f"val PSNR {result_best['val_psnr']:.2f} dB, SSIM {result_best['val_ssim']:.3f}; MLflow run {run_id}"
    )
    Checkpoints.clear_folder(args.checkpoints)


if __name__ == "__main__":
    main()
