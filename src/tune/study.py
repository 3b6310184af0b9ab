"""The persistent Optuna study: its storage, pruner and sampler, opened or created by name."""

from __future__ import annotations

import contextlib
from pathlib import Path

import optuna

from src.config import TuneConfig
from src.errors import PipelineError


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


def summarize(study: optuna.Study) -> str:
    counts: dict[str, int] = {}
    for trial in study.trials:
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    return ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
