"""The persistent Optuna study: its storage, pruner and sampler, opened or created by name."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import socket
import time
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from src.config import TuneConfig
from src.errors import PipelineError

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    """How a worker proves its trial is alive, and when a silent one counts as dead.

    A running trial records a heartbeat every `interval_s` from a background thread; once its
    last heartbeat is older than `grace_s`, the next worker to start a trial marks it FAILED and
    enqueues a retry with the same params (at most `max_retry` times per original trial).

    The defaults suit trials of several minutes (a full training each): one heartbeat a minute is
    one tiny row update, nothing next to a trial; a five-minute grace (five missed beats) rides
    out a heartbeat that waited on SQLite's write lock while other workers write, or on a long
    stretch of Python-bound training code, without failing a trial that is still alive (its
    worker's own `tell` would then be refused). Detecting a dead worker five minutes late costs
    about one trial's time. Retries are capped: a configuration that keeps killing its worker
    must not be retried forever.

    params.yaml sets the two times (`tune.heartbeat_interval_s`, `tune.heartbeat_grace_s`); tests
    use seconds, so that a killed worker's trial is retried within the test.
    """

    interval_s: int = 60
    grace_s: int = 300
    max_retry: int = 2


DEFAULT_HEARTBEAT = Heartbeat()
# SQLite's default busy timeout (5 s) is short for several workers plus their heartbeat threads
# writing to one file; a heartbeat that fails on "database is locked" kills the heartbeat thread.
SQLITE_BUSY_TIMEOUT_S = 60
# Workers started at the same moment on a fresh database (the same command on two machines) both
# create Optuna's tables, and the slower one's CREATE fails ("duplicate key value violates unique
# constraint pg_type_typname_nsp_index" on PostgreSQL: 7 of 8 simultaneous starts here; optuna/optuna#1092).
# Opening the storage again finds the tables the other worker made.
SCHEMA_RACE_ATTEMPTS = 3


def open_storage(url: str, heartbeat: Heartbeat = DEFAULT_HEARTBEAT) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL; a path ending in `.log` is a journal file.

    A journal file on shared storage (NFS) lets workers on several machines share a
    study without a database server; a database URL (postgresql://…) does the same.

    Stale-trial detection (see `Heartbeat`) is on for databases. Optuna 5.0's JournalStorage has
    no heartbeat (optuna/optuna#6615 asks for it): a journal trial whose worker was killed stays
    RUNNING and is not retried. It is switched on here as soon as the installed Optuna accepts it.
    """
    # The heartbeat arguments and the retry callback are marked experimental (since 2.8/2.9):
    # the warning says nothing a user could act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        stale_kwargs: dict[str, Any] = {
            "heartbeat_interval": heartbeat.interval_s,
            "grace_period": heartbeat.grace_s,
            # A fresh attempt's epoch scores are its own: inherited ones would make report() ignore
            # the retry's scores for the epochs the dead attempt had reached.
            "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(
                max_retry=heartbeat.max_retry, inherit_intermediate_values=False
            ),
        }
        if url.endswith(".log"):
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            Path(url).parent.mkdir(parents=True, exist_ok=True)
            backend = JournalFileBackend(url)
            if "heartbeat_interval" in inspect.signature(JournalStorage).parameters:
                return JournalStorage(backend, **stale_kwargs)
            return JournalStorage(backend)
        sqlite = url.startswith("sqlite")
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}} if sqlite else {}
        for attempt in range(1, SCHEMA_RACE_ATTEMPTS):
            with contextlib.suppress(sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **stale_kwargs)
            time.sleep(0.5 * attempt)
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **stale_kwargs)


def shown_storage(url: str) -> str:
    """The storage as printed and logged: a database URL with its password masked
    (`postgresql://user:***@host/db`), since lines and MLflow tags are read by the whole team.
    A journal file's path is shown as it is."""
    if "://" not in url:
        return url
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url.split("://", 1)[0] + "://…"  # not parseable: show the dialect only


def make_pruner(cfg: TuneConfig) -> optuna.pruners.BasePruner:
    if cfg.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=cfg.pruner_startup_trials, n_warmup_steps=cfg.pruner_warmup_epochs
    )


def load_or_create_study(
    cfg: TuneConfig,
    worker: int = 0,
    pruner: optuna.pruners.BasePruner | None = None,
    heartbeat: Heartbeat | None = None,
) -> optuna.Study:
    """The named study, created on first use; `heartbeat` defaults to the one `cfg` sets.

    The sampler's seed mixes in the worker number and the trials already in the study:
    with a fixed seed, parallel workers, or a resumed study, would replay the same
    random draws and repeat trials that were already run. It mixes in this process too (host
    and pid): invocations started at the same moment on other machines (or in another terminal)
    find the same trials and number their workers from 0 as well, and replayed this one's draws.
    """
    heartbeat = heartbeat or Heartbeat(cfg.heartbeat_interval_s, cfg.heartbeat_grace_s)
    try:
        storage = open_storage(cfg.storage, heartbeat)
        existing = 0
        with contextlib.suppress(KeyError):
            existing = len(optuna.load_study(study_name=cfg.study_name, storage=storage).trials)
        return optuna.create_study(
            study_name=cfg.study_name,
            storage=storage,
            direction="maximize",
            load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=_sampler_seed(cfg.seed + 1000 * existing + worker)),
            pruner=pruner or make_pruner(cfg),
        )
    except (ValueError, ImportError, optuna.exceptions.StorageInternalError) as err:
        raise PipelineError(
            f"tune.storage {shown_storage(cfg.storage)!r}: cannot open the study "
            f"({str(err).replace(cfg.storage, shown_storage(cfg.storage))})"
        ) from None


def _sampler_seed(base: int) -> int:
    """`base` made this process's own, in numpy's seed range."""
    process = zlib.crc32(f"{socket.gethostname()}/{os.getpid()}".encode())
    return (base ^ process) % 2**32


def retried_numbers(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of the trials that a later trial retries (their worker died mid-trial)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return {number for t in trials for number in RetryHeartbeatStaleTrialCallback.retry_history(t)}


def counted_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count towards `n_trials`: a dead attempt and its retry count once.

    The retry (a WAITING trial with the same params, then run like any other) is the one that
    counts; the attempt it replaces, FAILED by the heartbeat check, does not.
    """
    retried = retried_numbers(trials)
    return [t for t in trials if t.number not in retried]


class StopAtTrials:
    """Stop the study once it holds `target` counted trials, every worker's and every state's.

    As `optuna.study.MaxTrialsCallback(target, states=None)` (running trials count, so workers
    do not overshoot), except that a trial retried after its worker died counts once.
    """

    def __init__(self, target: int):
        self.target = target

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if len(counted_trials(study.get_trials(deepcopy=False))) >= self.target:
            study.stop()


def summarize(study: optuna.Study) -> str:
    counts: dict[str, int] = {}
    for trial in study.trials:
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    retried = len(retried_numbers(study.trials))
    text = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
    return text + (f" ({retried} retried after their worker died)" if retried else "")
