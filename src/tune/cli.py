"""`python -m src.tune`: an Optuna search over the learning rate, the loss weights and E.

Each invocation adds trials to a persistent study (resume by running again), may spread
them over several worker processes, tracks one MLflow parent run with one nested run per
trial, and ends with the best params in a file plus the one command that trains the
pipeline with them.

The objective is the validation quality score (`src.evaluate.metrics.quality_score`, PSNR + 25·SSIM
of the finished image at full resolution), not the training loss: the loss weights are
among the searched params, so the total loss changes scale from trial to trial and
comparing it across trials would be meaningless. PSNR alone was tried first and rewarded
fast, over-bright configurations that lost SSIM.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import optuna

from src.config import load_params
from src.errors import PipelineError, cli_entry
from src.tune.params_file import apply_to_params, best_params_document
from src.tune.search import run_search
from src.tune.study import load_or_create_study
from src.tune.workers import WorkerJob, run_worker

DEFAULT_BEST_FILE = Path("tune/best_params.yaml")
DEFAULT_SPLIT_DIR = Path("data/split")
DEFAULT_PLOTS_DIR = Path("tune/plots")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m src.tune", description="Optuna search over learning rate, loss weights and E."
    )
    parser.add_argument("--n-trials", type=int, help="trials to add (tune.n_trials)")
    parser.add_argument(
        "--timeout", type=float, help="seconds after which no new trial starts (tune.timeout_s)"
    )
    parser.add_argument("--study-name", help="study to create or resume (tune.study_name)")
    parser.add_argument("--storage", help="Optuna storage URL or journal file *.log (tune.storage)")
    parser.add_argument("--workers", type=int, help="worker processes on this machine (tune.workers)")
    parser.add_argument("--epochs", type=int, help="training epochs per trial (tune.epochs)")
    parser.add_argument(
        "--split", type=Path, default=DEFAULT_SPLIT_DIR, help="folder with train.csv and val.csv"
    )
    parser.add_argument("--best", type=Path, default=DEFAULT_BEST_FILE, help="where to write the best params")
    parser.add_argument("--plots", type=Path, default=DEFAULT_PLOTS_DIR, help="folder for the study's plots")
    parser.add_argument("--apply", action="store_true", help="also write the best params into params.yaml")
    parser.add_argument(
        "--apply-only",
        action="store_true",
        help="write the study's best params into params.yaml; no new trials",
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--worker-job", help=argparse.SUPPRESS)  # internal: a spawned worker's job (JSON)
    return parser.parse_args(argv)


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    flags = {
        "tune.n_trials": args.n_trials,
        "tune.timeout_s": args.timeout,
        "tune.study_name": args.study_name,
        "tune.storage": args.storage,
        "tune.workers": args.workers,
        "tune.epochs": args.epochs,
    }
    return {name: value for name, value in flags.items() if value is not None}


@cli_entry
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker_job:
        run_worker(WorkerJob(**json.loads(args.worker_job)))
        return
    # Imported here, not at the top: src.tune.trial imports TensorFlow, which --help must not wait for.
    from src.tune.trial import with_overrides

    overrides = cli_overrides(args)
    params = with_overrides(load_params(args.params), overrides)
    if args.apply_only:
        study = load_or_create_study(params.tune)
        if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
            raise PipelineError(
                f"study {params.tune.study_name!r} in {params.tune.storage}: no completed trial"
            )
    else:
        study = run_search(params, args.params, overrides, args.split, args.best, args.plots)
    if args.apply or args.apply_only:
        apply_to_params(best_params_document(study), args.params)
        print(f"applied to {args.params}; run `dvc repro` to train the pipeline with them")
