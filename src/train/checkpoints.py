"""What lets a killed training resume: the state file, the experiment's fingerprint, and the
model + optimizer checkpoint and best weights the state names.

The state names its files, and they are written before it: replacing state.json (atomically) is
the one step that moves the folder from one epoch to the next, so a kill at any moment leaves
the old state with its files or the new one with its own. Files no state names are leftovers of
such a kill and are swept after each save.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf

from src.config import Params
from src.files import atomic_write_text

if TYPE_CHECKING:  # for the annotation only: Checkpoints takes the parts it saves from a Trainer
    from src.train.trainer import Trainer

STATE_FILE = "state.json"


@dataclasses.dataclass
class TrainingState:
    """What survives a kill: enough to resume the same run where it stopped."""

    fingerprint: str
    completed_epochs: int = 0
    best_epoch: int = -1
    best_val_score: float = -math.inf  # src.evaluate.metrics.quality_score of the best epoch
    run_id: str | None = None  # recorded before the first epoch: a kill never orphans the run
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    checkpoint: str | None = None  # prefix of the model + optimizer checkpoint after completed_epochs
    best_weights: str | None = None  # the best epoch's weights file


def fingerprint(params: Params, train_csv: Path, val_csv: Path) -> str:
    """Hash of everything that shapes the trained weights, so a checkpoint is only reused
    for the same experiment (a changed param or split starts afresh)."""
    payload = {
        "model": dataclasses.asdict(params.model),
        "loss": dataclasses.asdict(params.loss),
        "train": dataclasses.asdict(params.train),
        "train_split": hashlib.sha256(train_csv.read_bytes()).hexdigest(),
        "val_split": hashlib.sha256(val_csv.read_bytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def read_state(folder: Path) -> TrainingState | None:
    """The state in `folder`, whatever experiment it belongs to; None if there is none.

    Raises ValueError when state.json is there but unreadable."""
    path = folder / STATE_FILE
    if not path.exists():
        return None
    try:
        return TrainingState(**json.loads(path.read_text()))
    except (ValueError, TypeError):  # not JSON, or not these fields
        raise ValueError(f"{STATE_FILE} is not a training state") from None


def _missing(folder: Path, state: TrainingState) -> str | None:
    """What the state names that is not in the folder."""
    if state.checkpoint is None or not (folder / f"{state.checkpoint}.index").is_file():
        return f"the checkpoint of epoch {state.completed_epochs}"
    if state.best_epoch >= 0 and (state.best_weights is None or not (folder / state.best_weights).is_file()):
        return f"the weights of its best epoch ({state.best_epoch + 1})"
    return None


class Checkpoints:
    """A training's folder: its state and the checkpoint and best weights the state names."""

    def __init__(self, folder: Path, trainer: Trainer):
        self.folder = folder
        self.trainer = trainer
        self.checkpoint = tf.train.Checkpoint(model=trainer.model, optimizer=trainer.optimizer)

    @staticmethod
    def load_state(folder: Path, fingerprint: str) -> TrainingState | None:
        """The state to resume, or None to start afresh: no state, another experiment's, or one
        that contradicts the folder (said in one line, since that folder is then discarded)."""
        try:
            state = read_state(folder)
        except ValueError as err:
            print(f"{folder}: {err}; discarding it and starting afresh", file=sys.stderr)
            return None
        if state is None or state.fingerprint != fingerprint:
            return None
        missing = _missing(folder, state)
        if missing:
            print(f"{folder}: {missing} is missing; discarding it and starting afresh", file=sys.stderr)
            return None
        return state

    def restore(self, state: TrainingState) -> None:
        self.checkpoint.read(str(self.folder / state.checkpoint)).expect_partial()

    def start(self, state: TrainingState) -> None:
        """Empty the folder, then record the fresh state (and its run) with the initial weights."""
        Checkpoints.empty(self.folder)
        self._write(state)

    def save(self, state: TrainingState, improved: bool) -> None:
        """Write the epoch's files, then the state naming them (the atomic step), then sweep."""
        if improved:
            state.best_weights = f"best-{state.completed_epochs:04d}.weights.h5"
            tmp = self.folder / f"tmp-{state.best_weights}"  # Keras wants the .weights.h5 suffix
            self.trainer.model.save_weights(tmp)
            tmp.replace(self.folder / state.best_weights)
        self._write(state)

    def _write(self, state: TrainingState) -> None:
        state.checkpoint = f"epoch-{state.completed_epochs:04d}"
        self.checkpoint.write(str(self.folder / state.checkpoint))
        atomic_write_text(self.folder / STATE_FILE, json.dumps(dataclasses.asdict(state), indent=1))
        named = {STATE_FILE, state.best_weights, f"{state.checkpoint}.index"}
        for path in self.folder.iterdir():
            if path.name not in named and not path.name.startswith(f"{state.checkpoint}.data-"):
                _remove(path)

    def load_best(self, state: TrainingState) -> None:
        self.trainer.model.load_weights(self.folder / state.best_weights)

    @staticmethod
    def empty(folder: Path) -> None:
        """Remove everything in `folder`, the state first: a kill half-way leaves no state
        naming files that are gone."""
        (folder / STATE_FILE).unlink(missing_ok=True)
        for path in folder.iterdir():
            _remove(path)

    @staticmethod
    def clear_folder(folder: Path) -> None:
        """Drop checkpoints once the outputs are safely written: the next run starts fresh."""
        (folder / STATE_FILE).unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        if folder.parent.name == ".checkpoints":  # the stages' own folder, once no stage has any left
            with contextlib.suppress(OSError):  # not empty: another stage's (or worker's) are there
                folder.parent.rmdir()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
