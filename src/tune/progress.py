"""Study-level progress while worker processes run the trials: a tqdm bar on stderr, polled
from the study's storage (the parent runs no trial, so Optuna's own bar never moves there)."""

from __future__ import annotations

import sys
from typing import TextIO

import optuna
from tqdm import tqdm

from src.tune.study import FINISHED_STATES, counted_trials


class StudyProgress:
    """This invocation's finished trials out of `n_trials`, and the study's best value so far.

    Trials numbered from `first_number` on are this invocation's; a trial retried after its
    worker died counts once, as `src.tune.study.StopAtTrials` counts it.
    """

    def __init__(self, study: optuna.Study, first_number: int, n_trials: int, file: TextIO | None = None):
        self.study = study
        self.first_number = first_number
        self.bar = tqdm(total=n_trials, unit="trial", file=file or sys.stderr, dynamic_ncols=True)

    def refresh(self) -> None:
        trials = self.study.get_trials(deepcopy=False)
        done = sum(
            t.state in FINISHED_STATES for t in counted_trials(trials) if t.number >= self.first_number
        )
        if done > self.bar.n:
            self.bar.update(min(done, self.bar.total) - self.bar.n)
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        if complete:
            best = max(complete, key=lambda t: t.value if t.value is not None else float("-inf"))
            self.bar.set_description(f"best trial {best.number}: {best.value:.4g}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
