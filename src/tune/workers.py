"""The processes that run trials: this one (one worker) or fresh interpreters (several)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import optuna

from src.config import load_params
from src.errors import PipelineError
from src.tune.study import load_or_create_study


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


def spawn_workers(jobs: list[WorkerJob]) -> None:
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
