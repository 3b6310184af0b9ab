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
import re
from pathlib import Path
from typing import Any

import optuna

from src import signals
from src.config import Params, load_params, with_overrides
from src.errors import PipelineError, cli_entry
from src.quiet_tensorflow import add_verbose_flag
from src.stage_lock import held
from src.tune.params_file import apply_to_params, best_params_document
from src.tune.search import run_search
from src.tune.study import load_or_create_study, shown_storage
from src.tune.workers import WorkerJob, run_worker, stop_when_orphaned

DEFAULT_SPLIT_DIR = Path("data/split")
# Without --best/--plots, results go to a git-ignored folder per study: a quick or experimental
# search must not overwrite the committed results of the real one (tune/best_params.yaml and
# tune/plots, which the DVC stage in tune/dvc.yaml asks for by name).
RUNS_DIR = Path("tune/runs")


def default_outputs(study_name: str) -> tuple[Path, Path]:
    """The best-params file and plots folder of a study when no flag names them."""
    folder = RUNS_DIR / study_name.replace("/", "_")
    return folder / "best_params.yaml", folder / "plots"


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
    parser.add_argument(
        "--best", type=Path, help=f"where to write the best params ({RUNS_DIR}/STUDY/best_params.yaml)"
    )
    parser.add_argument("--plots", type=Path, help=f"folder for the study's plots ({RUNS_DIR}/STUDY/plots)")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="study progress bar on stderr (default: when stderr is a terminal)",
    )
    parser.add_argument("--apply", action="store_true", help="also write the best params into params.yaml")
    parser.add_argument(
        "--apply-only",
        action="store_true",
        help="write the study's best params into params.yaml; no new trials",
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--worker-job", help=argparse.SUPPRESS)  # internal: a spawned worker's job (JSON)
    add_verbose_flag(parser)  # read by src.quiet_tensorflow before TensorFlow loads
    return parser.parse_args(argv)


def check_flags(args: argparse.Namespace) -> None:
    """Flag values no search can use: one line naming the flag, before anything starts."""
    for flag, value in (
        ("--n-trials", args.n_trials),
        ("--workers", args.workers),
        ("--epochs", args.epochs),
    ):
        if value is not None and value < 1:
            raise PipelineError(f"{flag} must be positive (got {value})")
    if args.timeout is not None and args.timeout < 0:
        raise PipelineError(f"--timeout must be 0 (no limit) or positive (got {args.timeout:g})")


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
        job = WorkerJob(**json.loads(args.worker_job))
        stop_when_orphaned()
        try:
            run_worker(job)
        except KeyboardInterrupt as err:  # forwarded by the parent: the stop's line says which worker
            signals.set_source(err, f"tune worker {job.worker}")
            raise
        return
    check_flags(args)
    overrides = cli_overrides(args)
    base = load_params(args.params)
    name = overrides.get("tune.study_name", base.tune.study_name)
    # One invocation per study and project (its workers are its own processes): a second would
    # race this one for the same output files (src/stage_lock.py). Taken before TensorFlow loads,
    # so a refusal takes a second.
    lock_name = "tune-" + re.sub(r"[^\w.-]", "_", name)  # a study name may hold any character
    with held(lock_name, f"tuning of study {name!r}"):
        search_and_apply(args, with_overrides(base, overrides), overrides)


def search_and_apply(args: argparse.Namespace, params: Params, overrides: dict[str, Any]) -> None:
    if args.apply_only:
        study = load_or_create_study(params.tune)
        if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
            raise PipelineError(
                f"study {params.tune.study_name!r} in {shown_storage(params.tune.storage)}: "
                "no completed trial"
            )
    else:
        default_best, default_plots = default_outputs(params.tune.study_name)
        study = run_search(
            params,
            args.params,
            overrides,
            args.split,
            args.best or default_best,
            args.plots or default_plots,
            show_progress_bar=args.progress,
        )
    if args.apply or args.apply_only:
        apply_to_params(best_params_document(study), args.params)
        print(f"applied to {args.params}; run `dvc repro` to train the pipeline with them")
