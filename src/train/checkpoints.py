"""What lets a killed training resume: the state file, the experiment's fingerprint, and
the per-epoch model + optimizer checkpoints beside the best epoch's weights."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from src.config import Params
from src.errors import PipelineError
from src.files import atomic_write_text

if TYPE_CHECKING:  # for the annotation only: Checkpoints takes the parts it saves from a Trainer
    from src.train.trainer import Trainer

STATE_FILE = "state.json"
BEST_WEIGHTS = "best.weights.h5"


@dataclasses.dataclass
class TrainingState:
    """What survives a kill: enough to resume the same run where it stopped."""

    fingerprint: str
    completed_epochs: int = 0
    best_epoch: int = -1
    best_val_score: float = -math.inf  # src.evaluate.metrics.quality_score of the best epoch
    run_id: str | None = None
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)


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


class Checkpoints:
    """Per-epoch model + optimizer checkpoints and a JSON state in one folder."""

    def __init__(self, folder: Path, trainer: Trainer):
        self.folder = folder
        self.trainer = trainer
        self.checkpoint = tf.train.Checkpoint(model=trainer.model, optimizer=trainer.optimizer)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(folder / "epochs"), max_to_keep=1)

    @staticmethod
    def load_state(folder: Path, fingerprint: str) -> TrainingState | None:
        path = folder / STATE_FILE
        if not path.exists():
            return None
        try:
            state = TrainingState(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            return None
        return state if state.fingerprint == fingerprint and state.completed_epochs > 0 else None

    def restore(self) -> None:
        if self.manager.latest_checkpoint is None:
            raise PipelineError(f"{self.folder}: state says training ran, but no checkpoint is there")
        self.checkpoint.restore(self.manager.latest_checkpoint).expect_partial()

    def save(self, state: TrainingState, improved: bool) -> None:
        if improved:
            self._save_weights(self.trainer.model, BEST_WEIGHTS)
        self.manager.save(checkpoint_number=state.completed_epochs)
        atomic_write_text(self.folder / STATE_FILE, json.dumps(dataclasses.asdict(state), indent=1))

    def _save_weights(self, model: keras.Model, name: str) -> None:
        tmp = self.folder / f"tmp-{name}"
        model.save_weights(tmp)
        tmp.replace(self.folder / name)

    def load_best(self) -> None:
        self.trainer.model.load_weights(self.folder / BEST_WEIGHTS)

    @staticmethod
    def clear_folder(folder: Path) -> None:
        """Drop checkpoints once the outputs are safely written: the next run starts fresh."""
        shutil.rmtree(folder, ignore_errors=True)
        if folder.parent.name == ".checkpoints":  # the stages' own folder, once no stage has any left
            with contextlib.suppress(OSError):  # not empty: another stage's (or worker's) are there
                folder.parent.rmdir()
