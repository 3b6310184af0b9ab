"""One search invocation: the parent MLflow run, the trials (in this process or in worker
processes), then the best params and the plots."""

from __future__ import annotations

import dataclasses
import datetime
import sys
from pathlib import Path
from typing import Any

import optuna

from src import signals
from src.config import Params, TuneConfig
from src.errors import PipelineError
from src.tune.params_file import exp_run_command, write_best_params
from src.tune.plots import save_study_plots
from src.tune.study import counted_trials, load_or_create_study, shown_storage, summarize
from src.tune.workers import WorkerJob, run_worker, spawn_workers


def run_search(
    params: Params,
    params_path: Path,
    overrides: dict[str, Any],
    split_dir: Path,
    best_file: Path,
    plots_dir: Path,
    pruner: optuna.pruners.BasePruner | None = None,
    show_progress_bar: bool | None = None,
) -> optuna.Study:
    """The whole invocation: parent MLflow run, trials (in-process or workers), results.

    `show_progress_bar`: a study-level bar on stderr (this invocation's finished trials out of
    `tune.n_trials`, best value so far); None: when stderr is a terminal.
    """
    # MLflow is heavy: imported when a search runs, not for --help.
    import mlflow

    from src.tracking import runs as tracking

    cfg = params.tune
    for name in ("train.csv", "val.csv"):
        if not (split_dir / name).is_file():
            raise PipelineError(f"{split_dir / name}: not found (run `dvc repro split` first)")
    study = load_or_create_study(cfg, pruner=pruner)
    first_number = len(study.trials)  # trials numbered from here on are this invocation's
    # A dead attempt and its retry count once (see counted_trials), here and when workers stop.
    target = len(counted_trials(study.trials)) + cfg.n_trials
    print(
        f"tune: study {cfg.study_name!r} in {shown_storage(cfg.storage)}: {len(study.trials)} trials so far, "
        f"adding {cfg.n_trials} with {cfg.workers} worker(s)",
        file=sys.stderr,
    )
    tracking.configure(params.mlflow)
    # Unique and informative in the run list: which study, how many trials this time, when.
    stamp = datetime.datetime.now().strftime("%m%d-%H%M%S")
    commit = tracking.git_commit()[:7]
    parent = mlflow.start_run(
        run_name=f"tune {cfg.study_name} +{cfg.n_trials} trials from #{first_number} @{commit} {stamp}"
    )
    # From the run's start: however this ends, the run is closed with the right status (an
    # interrupted process would otherwise leave it to MLflow's atexit hook, which says FINISHED).
    try:
        jobs = [
            WorkerJob(str(params_path), overrides, str(split_dir), parent.info.run_id, target, worker, pruner)
            for worker in range(cfg.workers)
        ]
        study = _trials_and_results(cfg, study, jobs, first_number, best_file, plots_dir, show_progress_bar)
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM (src.signals): the trials are FAIL already
        mlflow.set_tags({"stopped": signals.reason(err), "failure_reason": signals.reason(err)})
        mlflow.end_run(status="KILLED")
        signals.add_outcome(
            err,
            f"parent MLflow run {parent.info.run_id[:8]} marked KILLED; "
            f"the study is saved in {shown_storage(cfg.storage)}, run again to continue",
        )
        raise
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run()
    return study


def _trials_and_results(
    cfg: TuneConfig,
    study: optuna.Study,
    jobs: list[WorkerJob],
    first_number: int,
    best_file: Path,
    plots_dir: Path,
    show_progress_bar: bool | None,
) -> optuna.Study:
    """Within the parent run: the trials, then the best params, metrics and plots logged to it."""
    import mlflow

    logged = {**dataclasses.asdict(cfg), "storage": shown_storage(cfg.storage)}
    mlflow.log_params({f"tune.{k}": v for k, v in logged.items()})
    mlflow.set_tags({"optuna.study": cfg.study_name, "optuna.storage": shown_storage(cfg.storage)})
    # Progress on stderr when it is a terminal: redrawn bars in a log file or a test's captured
    # output are noise, and Optuna's per-trial log lines say the same there.
    show_progress = sys.stderr.isatty() if show_progress_bar is None else show_progress_bar
    progress = None
    try:
        if cfg.workers == 1:
            # Optuna's own bar (show_progress_bar) shows this process's trials.
            run_worker(dataclasses.replace(jobs[0], progress_bar=show_progress))
        else:
            if show_progress:
                from src.tune.progress import StudyProgress

                progress = StudyProgress(study, first_number, cfg.n_trials)
            spawn_workers(jobs, progress)
    finally:
        if progress is not None:
            progress.close()
    study = load_or_create_study(cfg)
    try:
        best = study.best_trial
    except ValueError:
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
    print(
        f"tune: {summarize(study)}; best trial {best.number}: val score {best.value:.2f} "
        f"(PSNR {best.user_attrs.get('val_psnr', float('nan')):.2f} dB, "
        f"SSIM {best.user_attrs.get('val_ssim', float('nan')):.3f})"
    )
    print(f"best params written to {best_file}; train the pipeline with them:\n  {exp_run_command(overlay)}")
    return study
