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
import contextlib
import dataclasses
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml

from src.config import Params, TuneConfig, load_params
from src.errors import PipelineError, cli_entry
from src.files import atomic_path, atomic_write_text

DEFAULT_BEST_FILE = Path("tune/best_params.yaml")
DEFAULT_SPLIT_DIR = Path("data/split")
DEFAULT_PLOTS_DIR = Path("tune/plots")


def open_storage(url: str) -> optuna.storages.BaseStorage | str:
    """An Optuna storage from a URL; a path ending in `.log` is a journal file.

    A journal file on shared storage (NFS) lets workers on several machines share a
    study without a database server; a database URL (postgresql://…) does the same.
    """
    if url.endswith(".log"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    return url


def make_pruner(cfg: TuneConfig) -> optuna.pruners.BasePruner:
    if cfg.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=cfg.pruner_startup_trials, n_warmup_steps=cfg.pruner_warmup_epochs
    )


def load_or_create_study(
    cfg: TuneConfig, worker: int = 0, pruner: optuna.pruners.BasePruner | None = None
) -> optuna.Study:
    """The named study, created on first use.

    The sampler's seed mixes in the worker number and the trials already in the study:
    with a fixed seed, parallel workers, or a resumed study, would replay the same
    random draws and repeat trials that were already run.
    """
    try:
        storage = open_storage(cfg.storage)
        existing = 0
        with contextlib.suppress(KeyError):
            existing = len(optuna.load_study(study_name=cfg.study_name, storage=storage).trials)
        return optuna.create_study(
            study_name=cfg.study_name,
            storage=storage,
            direction="maximize",
            load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=cfg.seed + 1000 * existing + worker),
            pruner=pruner or make_pruner(cfg),
        )
    except (ValueError, ImportError, optuna.exceptions.StorageInternalError) as err:
        raise PipelineError(f"tune.storage {cfg.storage!r}: cannot open the study ({err})") from None


@dataclasses.dataclass(frozen=True)
class WorkerJob:
    """Everything a worker process needs, picklable for the spawn start method."""

    params_path: str
    overrides: dict[str, Any]
    split_dir: str
    parent_run_id: str | None
    target_trials: int
    worker: int
    pruner: optuna.pruners.BasePruner | None = None


CAUGHT_TRIAL_ERRORS: tuple[type[BaseException], ...] = (PipelineError, MemoryError)


def run_worker(job: WorkerJob) -> None:
    """Run trials until the study holds `target_trials` (counting every worker's)."""
    from src import runtime
    from src.tracking import runs as tracking
    from src.tune.trial import Objective, with_overrides

    params = with_overrides(load_params(job.params_path), job.overrides)
    runtime.configure(params.train)
    tracking.configure(params.mlflow)
    import tensorflow as tf

    study = load_or_create_study(params.tune, job.worker, job.pruner)
    with tempfile.TemporaryDirectory(prefix="tune-") as scratch:
        objective = Objective(params, Path(job.split_dir), Path(scratch), job.parent_run_id)
        study.optimize(
            objective,
            n_trials=job.target_trials,
            timeout=params.tune.timeout_s or None,
            callbacks=[optuna.study.MaxTrialsCallback(job.target_trials, states=None)],
            catch=(*CAUGHT_TRIAL_ERRORS, tf.errors.ResourceExhaustedError),
            gc_after_trial=True,
        )


def _spawn_workers(jobs: list[WorkerJob]) -> None:
    """One `python -m src.tune --worker-job …` process per worker.

    Fresh interpreters rather than multiprocessing: TensorFlow must not be forked, and
    spawn would re-run whatever script started us.
    """
    processes = []
    for job in jobs:
        payload = json.dumps({k: v for k, v in dataclasses.asdict(job).items() if k != "pruner"})
        processes.append(subprocess.Popen([sys.executable, "-m", "src.tune", "--worker-job", payload]))
    try:
        codes = [process.wait() for process in processes]
    except KeyboardInterrupt:
        for process in processes:  # they got the same Ctrl-C; let them record their trials
            process.wait(timeout=120)
        raise
    failed = [
        f"worker {job.worker} (exit {code})" for job, code in zip(jobs, codes, strict=True) if code != 0
    ]
    if failed:
        raise PipelineError(f"tune: {', '.join(failed)} failed (see the messages above)")


def best_params_document(study: optuna.Study) -> dict[str, Any]:
    """The best trial as a params.yaml overlay: `{section: {key: value}}`."""
    overlay: dict[str, dict[str, Any]] = {}
    for dotted, value in study.best_trial.params.items():
        section, key = dotted.split(".", 1)
        overlay.setdefault(section, {})[key] = float(f"{value:.4g}")
    return overlay


def exp_run_command(overlay: dict[str, dict[str, Any]]) -> str:
    flags = " ".join(
        f"-S {section}.{key}={value}" for section, values in overlay.items() for key, value in values.items()
    )
    return f"dvc exp run {flags}"


def write_best_params(study: optuna.Study, path: Path) -> dict[str, dict[str, Any]]:
    trial = study.best_trial
    overlay = best_params_document(study)
    header = (
        f"# Best trial of Optuna study {study.study_name!r}: trial {trial.number}, "
        f"validation score {trial.value:.3f} (PSNR {trial.user_attrs.get('val_psnr', float('nan')):.3f} dB, "
        f"SSIM {trial.user_attrs.get('val_ssim', float('nan')):.3f}).\n"
        f"# Train the pipeline with it: {exp_run_command(overlay)}\n"
        "# or: python -m src.tune --apply-only (writes these values into params.yaml, then `dvc repro`)\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, header + yaml.safe_dump(overlay, sort_keys=False))
    return overlay


def apply_to_params(overlay: dict[str, dict[str, Any]], params_path: Path) -> None:
    """Write values into params.yaml in place, keeping its comments and order (ruamel)."""
    from ruamel.yaml import YAML

    yaml_rt = YAML()
    yaml_rt.preserve_quotes = True
    document = yaml_rt.load(params_path.read_text())
    for section, values in overlay.items():
        for key, value in values.items():
            document[section][key] = value
    with atomic_path(params_path) as tmp:
        with tmp.open("w") as handle:
            yaml_rt.dump(document, handle)
        load_params(tmp)  # never write a params.yaml the pipeline would reject


def save_study_plots(study: optuna.Study, out_dir: Path) -> list[Path]:
    """Optimisation history and parameter importances as PNGs (importances need ≥ 2 trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    plots = {"optimization_history.png": optuna_plots.plot_optimization_history}
    if len(complete) >= 2:
        plots["param_importances.png"] = optuna_plots.plot_param_importances
    for name, draw in plots.items():
        try:
            axes = draw(study)
        except (ValueError, RuntimeError) as err:
            print(f"tune: skipped {name} ({err})", file=sys.stderr)
            continue
        figure = axes.figure if hasattr(axes, "figure") else plt.gcf()
        figure.savefig(out_dir / name, dpi=100, bbox_inches="tight")
        plt.close(figure)
        paths.append(out_dir / name)
    return paths


def summarize(study: optuna.Study) -> str:
    counts: dict[str, int] = {}
    for trial in study.trials:
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    return ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))


def run_search(
    params: Params,
    params_path: Path,
    overrides: dict[str, Any],
    split_dir: Path,
    best_file: Path,
    plots_dir: Path,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """The whole invocation: parent MLflow run, trials (in-process or workers), results."""
    import mlflow

    from src.tracking import runs as tracking

    cfg = params.tune
    for name in ("train.csv", "val.csv"):
        if not (split_dir / name).is_file():
            raise PipelineError(f"{split_dir / name}: not found (run `dvc repro split` first)")
    study = load_or_create_study(cfg, pruner=pruner)
    target = len(study.trials) + cfg.n_trials
    print(
        f"tune: study {cfg.study_name!r} in {cfg.storage}: {len(study.trials)} trials so far, "
        f"adding {cfg.n_trials} with {cfg.workers} worker(s)",
        file=sys.stderr,
    )
    tracking.configure(params.mlflow)
    parent = mlflow.start_run(run_name=f"tune-{cfg.study_name}")
    mlflow.log_params({f"tune.{k}": v for k, v in dataclasses.asdict(cfg).items()})
    mlflow.set_tags({"optuna.study": cfg.study_name, "optuna.storage": cfg.storage})
    jobs = [
        WorkerJob(str(params_path), overrides, str(split_dir), parent.info.run_id, target, worker, pruner)
        for worker in range(cfg.workers)
    ]
    try:
        if cfg.workers == 1:
            run_worker(jobs[0])
        else:
            _spawn_workers(jobs)
    except KeyboardInterrupt:
        mlflow.set_tag("stopped", "interrupted by the user")
        mlflow.end_run(status="KILLED")
        print(
            f"tune: interrupted; the study is saved in {cfg.storage}, run again to continue", file=sys.stderr
        )
        raise
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    study = load_or_create_study(cfg)
    try:
        best = study.best_trial
    except ValueError:
        mlflow.end_run(status="FAILED")
        raise PipelineError(f"study {cfg.study_name!r}: no trial completed ({summarize(study)})") from None
    overlay = write_best_params(study, best_file)
    mlflow.log_params({f"best.{name}": value for name, value in best.params.items()})
    mlflow.log_metrics(
        {
            "best_val_score": best.value,
            "best_val_psnr": best.user_attrs.get("val_psnr", float("nan")),
            "best_val_ssim": best.user_attrs.get("val_ssim", float("nan")),
        }
    )
    mlflow.set_tag("best_trial", str(best.number))
    for path in [best_file, *save_study_plots(study, plots_dir)]:
        mlflow.log_artifact(str(path))
    mlflow.end_run()
    print(
        f"tune: {summarize(study)}; best trial {best.number}: val score {best.value:.2f} "
        f"(PSNR {best.user_attrs.get('val_psnr', float('nan')):.2f} dB, "
        f"SSIM {best.user_attrs.get('val_ssim', float('nan')):.3f})"
    )
    print(f"best params written to {best_file}; train the pipeline with them:\n  {exp_run_command(overlay)}")
    return study


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
