"""Zero-DCE training: the epoch loop, per-epoch validation, best-epoch selection, resuming.

The loop is written out (rather than `Model.fit`) because Zero-DCE's losses need the
input, the enhanced image and the curve maps together, and because validation PSNR
against ground truth, best-epoch selection and resuming after a kill are the parts a
user of this pipeline relies on.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm import tqdm

from src import signals
from src.config import Params
from src.data.pipeline import TrainingImages, paired_images
from src.errors import PipelineError
from src.train.checkpoints import Checkpoints, TrainingState
from src.train.float32_model import float32_inference_model
from src.train.trainer import Trainer


@dataclasses.dataclass
class TrainingResult:
    model: keras.Model  # float32 inference model (curves and gate) with the best epoch's weights
    state: TrainingState

    @property
    def history(self) -> pd.DataFrame:
        return pd.DataFrame(self.state.history)

    @property
    def best(self) -> dict[str, float]:
        return self.state.history[self.state.best_epoch]


def _mean(rows: list[dict[str, tf.Tensor]], prefix: str) -> dict[str, float]:
    keys = rows[0].keys()
    return {f"{prefix}{k}": float(np.mean([float(r[k]) for r in rows])) for k in keys}


def _check_finite(losses: dict[str, float], epoch: int, step: int) -> None:
    bad = [k for k, v in losses.items() if not math.isfinite(v)]
    if bad:
        raise PipelineError(
            f"training diverged at epoch {epoch + 1}, step {step + 1}: {', '.join(bad)} loss is not finite; "
            "no model was written (try a lower train.learning_rate or keep train.grad_clip_norm > 0)"
        )


@dataclasses.dataclass
class EpochRun:
    losses: list[dict[str, float]]  # per step
    seconds: float
    input_wait_seconds: float  # blocked on the input pipeline

    @property
    def input_wait_fraction(self) -> float:
        return self.input_wait_seconds / self.seconds


def train_epoch(
    trainer: Trainer, images: TrainingImages, epoch: int, desc: str = "", step: Callable | None = None
) -> EpochRun:
    """One pass over the training images, timing how long each step waited for its batch.

    `step` is the trainer's `train_step` unless given.
    """
    step = step or trainer.train_step
    started = time.perf_counter()
    batches = iter(trainer.distribute(images.epoch(epoch)))
    rows: list[dict[str, float]] = []
    input_wait = 0.0
    # Closed however the epoch ends: a stop's one line must not land after half a progress bar.
    with tqdm(range(images.steps_per_epoch), desc=desc, unit="batch", leave=False, file=sys.stderr) as bar:
        for index in bar:
            signals.check()  # a stop some library swallowed is still a stop
            waited = time.perf_counter()
            batch = next(batches)
            input_wait += time.perf_counter() - waited
            values = {k: float(v) for k, v in step(batch).items()}
            _check_finite(values, epoch, index)
            rows.append(values)
            bar.set_postfix(loss=f"{values.get('total', values.get('denoise', 0.0)):.4f}")
    return EpochRun(rows, time.perf_counter() - started, input_wait)


def check_workers_agree(
    strategy: tf.distribute.Strategy, completed_epochs: int, fingerprint_value: str
) -> None:
    """Every worker resumes from its own checkpoints (`src.train.cluster.checkpoint_folder`) and
    trains its share of the same batches: all must hold the same experiment (params and split)
    at the same epoch, or their all-reduced steps would mix two trainings without a word."""
    mine = tf.constant([[completed_epochs, int(fingerprint_value[:15], 16)]], tf.int64)
    gather = tf.function(lambda: tf.distribute.get_replica_context().all_gather(mine, axis=0))
    every = strategy.experimental_local_results(strategy.run(gather))[0].numpy()
    if len({int(f) for f in every[:, 1]}) > 1:
        raise PipelineError(
            "train.strategy multi_worker: the workers differ in params.yaml or the split "
            "(every host needs the same ones)"
        )
    epochs = sorted({int(e) for e in every[:, 0]})
    if len(epochs) > 1:
        raise PipelineError(
            f"train.strategy multi_worker: the workers' checkpoints stand after different epochs "
            f"({', '.join(map(str, epochs))}); delete the checkpoint folders on every host to start afresh"
        )


EpochCallback = Callable[[int, dict[str, float], bool], None]
# (epoch, the model as it stands after that epoch, in float32): for logging sample images.
PreviewCallback = Callable[[int, keras.Model], None]


def train(
    params: Params,
    train_paths: list[str],
    val_pairs: tuple[list[str], list[str]],
    checkpoint_dir: Path,
    fingerprint_value: str,
    on_start: Callable[[TrainingState, bool], None] | None = None,
    on_epoch_end: EpochCallback | None = None,
    on_preview: PreviewCallback | None = None,
) -> TrainingResult:
    """Train for `params.train.epochs`, resuming from `checkpoint_dir` when it holds the
    same experiment; keeps the weights of the epoch with the best validation score
    (PSNR + 25 x SSIM, `src.evaluate.metrics.quality_score`).

    `on_start(state, resumed)`, `on_epoch_end(epoch, row, improved)` and
    `on_preview(epoch, model)` let the caller track the run (MLflow) without this loop
    knowing about it; the preview model is only built when someone asks for it.
    """
    cfg = params.train
    trainer = Trainer(params)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = Checkpoints(checkpoint_dir, trainer)
    state = Checkpoints.load_state(checkpoint_dir, fingerprint_value)
    if cfg.strategy == "multi_worker":
        check_workers_agree(trainer.strategy, state.completed_epochs if state else 0, fingerprint_value)
    resumed = state is not None
    total = cfg.epochs
    if state is not None:
        checkpoints.restore(state)
        done = state.completed_epochs
        where = f"after epoch {done} of {total}" if done else f"its run, from epoch 1 of {total}"
        print(f"resuming {where} ({checkpoint_dir})", file=sys.stderr)
    else:
        state = TrainingState(fingerprint=fingerprint_value)
    if on_start:
        on_start(state, resumed)  # names the run (state.run_id) before anything is saved
    if not resumed:
        with signals.deferred():  # the run id is on disk, with the initial weights, before epoch 1
            checkpoints.start(state)

    images = TrainingImages(train_paths, cfg.crop_size, cfg.batch_size, cfg.seed)
    # Every epoch is scored on the same first `val_images` val pairs at full resolution:
    # on a 2-core CPU scoring all 100 costs more than the epoch's training.
    keep = cfg.val_images or len(val_pairs[0])
    val = paired_images(val_pairs[0][:keep], val_pairs[1][:keep])

    for epoch in range(state.completed_epochs, total):
        started = time.perf_counter()
        epoch_run = train_epoch(trainer, images, epoch, desc=f"epoch {epoch + 1}/{total}")
        rows, train_seconds = epoch_run.losses, epoch_run.seconds
        val_rows = [trainer.val_step(low, high) for low, high in val]
        row = {
            "epoch": epoch + 1,
            **_mean(rows, "train_"),
            **_mean(val_rows, "val_"),
            "train_images_per_s": len(rows) * cfg.batch_size / train_seconds,
            # Share of the training time spent waiting for the next batch: near 0 means
            # the input pipeline keeps up and the CPU (or GPU) is busy with the model.
            "input_wait_fraction": epoch_run.input_wait_fraction,
            "epoch_seconds": time.perf_counter() - started,
        }
        # The best epoch is the best on PSNR and SSIM together (src.evaluate.metrics.quality_score):
        # PSNR alone rewards over-bright, noisy epochs.
        improved = row["val_score"] > state.best_val_score
        # A stop (Ctrl-C, SIGTERM) waits for the epoch's checkpoint, the state naming it and its
        # logged metrics: all or none, so a rerun resumes from a consistent epoch and the run's
        # curves have no hole. A stop waits for these writes, never for an epoch.
        with signals.deferred():
            if improved:
                state.best_epoch, state.best_val_score = epoch, row["val_score"]
            state.history.append(row)
            state.completed_epochs = epoch + 1
            checkpoints.save(state, improved)
            print(
                f"epoch {epoch + 1}/{total}: loss {row['train_total']:.4f} / val {row['val_total']:.4f}, "
                f"val PSNR {row['val_psnr']:.2f} dB, SSIM {row['val_ssim']:.3f}"
                f"{' (best)' if improved else ''}, {row['epoch_seconds']:.0f}s "
                f"({row['train_images_per_s']:.1f} img/s)",
                file=sys.stderr,
            )
            if on_epoch_end:
                on_epoch_end(epoch, row, improved)
        if on_preview:
            on_preview(epoch, float32_inference_model(trainer.model, params))

    checkpoints.load_best(state)
    return TrainingResult(model=float32_inference_model(trainer.model, params), state=state)
