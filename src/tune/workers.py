"""The processes that run trials: this one (one worker) or fresh interpreters (several)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from src.config import load_params
from src.errors import PipelineError
from src.tune.study import StopAtTrials, counted_trials, load_or_create_study

if TYPE_CHECKING:
    from src.tune.progress import StudyProgress


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
    # Optuna's progress bar: for the one worker that runs in the parent process. Spawned workers
    # leave the study-level bar to the parent (`src.tune.progress`).
    progress_bar: bool = False


CAUGHT_TRIAL_ERRORS: tuple[type[BaseException], ...] = (PipelineError, MemoryError)


def run_worker(job: WorkerJob) -> None:
    """Run trials until the study holds `target_trials` (counting every worker's)."""
    # Imported here, not at the top: src.runtime and src.tune.trial import TensorFlow,
    # which `python -m src.tune --help` must not wait for.
    from src import runtime
    from src.tracking import runs as tracking
    from src.tune.trial import Objective, with_overrides

    params = with_overrides(load_params(job.params_path), job.overrides)
    runtime.configure(params.train)
    tracking.configure(params.mlflow)
    import tensorflow as tf

    study = load_or_create_study(params.tune, job.worker, job.pruner)
    # At most what the study still lacks; with several workers, StopAtTrials stops them all
    # together, and this bound only sizes the progress bar.
    remaining = job.target_trials - len(counted_trials(study.get_trials(deepcopy=False)))
    if remaining <= 0:
        return
    with tempfile.TemporaryDirectory(prefix="tune-") as scratch:
        objective = Objective(params, Path(job.split_dir), Path(scratch), job.parent_run_id)
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=params.tune.timeout_s or None,
            callbacks=[StopAtTrials(job.target_trials)],
            catch=(*CAUGHT_TRIAL_ERRORS, tf.errors.ResourceExhaustedError),
            gc_after_trial=True,
            show_progress_bar=job.progress_bar,
        )


PROGRESS_POLL_S = 5.0  # trials take minutes: a read of the study every few seconds is plenty


def spawn_workers(jobs: list[WorkerJob], progress: StudyProgress | None = None) -> None:
    """One `python -m src.tune --worker-job …` process per worker; `progress` polled meanwhile.

    Fresh interpreters rather than multiprocessing: TensorFlow must not be forked, and
    spawn would re-run whatever script started us.
    """
    processes = []
    for job in jobs:
        payload = json.dumps({k: v for k, v in dataclasses.asdict(job).items() if k != "pruner"})
        processes.append(subprocess.Popen([sys.executable, "-m", "src.tune", "--worker-job", payload]))
    try:
        polled = 0.0
        while any(process.poll() is None for process in processes):
            if progress is not None and time.monotonic() - polled >= PROGRESS_POLL_S:
                progress.refresh()
                polled = time.monotonic()
            time.sleep(0.5)
        if progress is not None:
            progress.refresh()
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
