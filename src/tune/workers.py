"""The processes that run trials: this one (one worker) or fresh interpreters (several)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from src import signals
from src.config import load_params, with_overrides
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
    from src.tune.trial import Objective

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
    # Optuna logs an interrupted trial as failed, with the interrupt's ~40-line traceback: the stop's
    # one line (`src.signals.stop_line`) says it instead.
    logging.getLogger("optuna.study._optimize").addFilter(_quiet_while_stopping)
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


def _quiet_while_stopping(record: logging.LogRecord) -> bool:
    return signals.stop_requested() is None


PROGRESS_POLL_S = 5.0  # trials take minutes: a read of the study every few seconds is plenty
# How long stopped workers get to record their trials (FAIL, MLflow run KILLED: a second or two)
# before they are killed. They do not finish their trial: a stop interrupts the training step.
STOP_GRACE_S = 10.0
PARENT_POLL_S = 2.0  # how often a worker checks that the process that spawned it is still there


def spawn_workers(jobs: list[WorkerJob], progress: StudyProgress | None = None) -> None:
    """One `python -m src.tune --worker-job …` process per worker; `progress` polled meanwhile.

    Fresh interpreters rather than multiprocessing: TensorFlow must not be forked, and
    spawn would re-run whatever script started us.

    Each worker runs in a session of its own, out of reach of the terminal's Ctrl-C: this process
    forwards every stop (`src.signals`), so each worker gets one, whether the Ctrl-C reached the
    whole process group or a SIGINT or SIGTERM reached this process alone. Stopped workers get
    `STOP_GRACE_S` to record their trials; none outlives this function, however it ends.
    """
    processes: list[subprocess.Popen] = []
    try:
        for job in jobs:
            payload = json.dumps({k: v for k, v in dataclasses.asdict(job).items() if k != "pruner"})
            command = [sys.executable, "-m", "src.tune", "--worker-job", payload]
            processes.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True))
        polled = 0.0
        while any(process.poll() is None for process in processes):
            signals.check()
            if progress is not None and time.monotonic() - polled >= PROGRESS_POLL_S:
                progress.refresh()
                polled = time.monotonic()
            time.sleep(0.5)
        if progress is not None:
            progress.refresh()
        codes = [process.wait() for process in processes]
    except KeyboardInterrupt as err:
        signals.add_outcome(err, stop_workers(processes, signals.signal_number(err)))
        raise
    finally:
        for process in processes:  # only after a second stop cut the grace short, or an error
            if process.poll() is None:
                process.kill()
                process.wait()
    failed = [
        f"worker {job.worker} (exit {code})" for job, code in zip(jobs, codes, strict=True) if code != 0
    ]
    if failed:
        raise PipelineError(f"tune: {', '.join(failed)} failed (see the messages above)")


def stop_workers(processes: list[subprocess.Popen], signum: int, grace_s: float = STOP_GRACE_S) -> str:
    """Send the stop on to the running workers, wait up to `grace_s` for them, kill the rest;
    returns what happened, for the stop's one line."""
    started = time.monotonic()
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.send_signal(signum)
    killed = 0
    for process in running:
        try:
            process.wait(timeout=max(0.0, started + grace_s - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()  # its trial stays RUNNING until the heartbeat check retries it
            process.wait()
            killed += 1
    text = f"{len(running)} worker(s) stopped in {time.monotonic() - started:.1f} s"
    return text + (f" ({killed} killed after {grace_s:g} s)" if killed else "")


def stop_when_orphaned(poll_s: float = PARENT_POLL_S) -> None:
    """In a spawned worker: stop as on SIGTERM once the parent is gone (killed with SIGKILL, say,
    which it cannot forward): in its own session, nothing else would stop this worker."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
