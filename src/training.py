"""Zero-DCE training: custom train step, per-epoch validation, resumable checkpoints.

The loop is written out (rather than `Model.fit`) because Zero-DCE's losses need the
input, the enhanced image and the curve maps together, and because validation PSNR
against ground truth, best-epoch selection and resuming after a kill are the parts a
user of this pipeline relies on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm import tqdm

from src.config import Params
from src.dataset import TrainingImages, paired_images
from src.errors import PipelineError
from src.images import atomic_write_text
from src.losses import LOSS_NAMES, ZeroReferenceLoss
from src.metrics import batch_psnr, batch_ssim
from src.model import apply_curves, build_dce_net, inference_model, precision_policy, validation_model

LOSS_KEYS = (*LOSS_NAMES, "total")
STATE_FILE = "state.json"
BEST_WEIGHTS = "best.weights.h5"


@dataclasses.dataclass
class TrainingState:
    """What survives a kill: enough to resume the same run where it stopped."""

    fingerprint: str
    completed_epochs: int = 0
    best_epoch: int = -1
    best_val_psnr: float = -math.inf
    run_id: str | None = None
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class TrainingResult:
    model: keras.Model  # float32 inference model with the best epoch's weights
    state: TrainingState

    @property
    def history(self) -> pd.DataFrame:
        return pd.DataFrame(self.state.history)

    @property
    def best(self) -> dict[str, float]:
        return self.state.history[self.state.best_epoch]


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

    def __init__(self, folder: Path, model: keras.Model, optimizer: keras.optimizers.Optimizer):
        self.folder = folder
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
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

    def save(self, state: TrainingState, model: keras.Model, improved: bool) -> None:
        if improved:
            tmp = self.folder / f"tmp-{BEST_WEIGHTS}"
            model.save_weights(tmp)
            tmp.replace(self.folder / BEST_WEIGHTS)
        self.manager.save(checkpoint_number=state.completed_epochs)
        atomic_write_text(self.folder / STATE_FILE, json.dumps(dataclasses.asdict(state), indent=1))

    @staticmethod
    def clear_folder(folder: Path) -> None:
        """Drop checkpoints once the outputs are safely written: the next run starts fresh."""
        shutil.rmtree(folder, ignore_errors=True)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy that `train.strategy` names.

    `default` is TensorFlow's one-device placement (a GPU if there is one); `mirrored`
    replicates the model on every visible GPU (on a CPU-only machine: the CPU) and
    splits each batch between them, so the same params train on one or eight GPUs.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


class Trainer:
    def __init__(self, params: Params, strategy: tf.distribute.Strategy | None = None):
        self.params = params
        self.loss = ZeroReferenceLoss(params.loss)
        self.strategy = strategy or make_strategy(params.train.strategy)
        m = params.model
        with self.strategy.scope():
            self.model = build_dce_net(m.iterations, m.filters, m.variant)
            validated = validation_model(self.model, m.scale_factor)
            self.optimizer = keras.optimizers.Adam(params.train.learning_rate)
            self.optimizer.build(self.model.trainable_variables)
        # The same weights, up to the curve maps only: the curves are applied inside the
        # (fused) loss. Keras computes just the outputs asked for.
        self.curve_net = keras.Model(self.model.inputs[0], self.model.outputs[1])
        self.validated_curve_net = keras.Model(validated.inputs[0], validated.outputs[1])
        iterations = m.iterations

        def enhance_and_score(images: tf.Tensor, curves: tf.Tensor):
            enhanced = apply_curves(images, curves, iterations)
            return enhanced, self.loss(images, enhanced, curves)

        # One XLA kernel for the curves and the four losses (forward and backward): they are
        # dozens of element-wise passes over the batch, memory-bound when run op by op.
        # The convolutions stay outside, where TensorFlow's oneDNN kernels are faster.
        self.enhance_and_score = (
            tf.function(enhance_and_score, jit_compile=True) if params.train.fused_loss else enhance_and_score
        )

    def distribute(self, batches: tf.data.Dataset) -> tf.data.Dataset:
        """Global batches → per-replica shares (the dataset itself on one device)."""
        return self.strategy.experimental_distribute_dataset(batches)

    @tf.function(reduce_retracing=True)
    def train_step(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        per_replica = self.strategy.run(self._replica_step, args=(images,))
        return {k: self.strategy.reduce("MEAN", v, axis=None) for k, v in per_replica.items()}

    def _replica_step(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        losses, grads = self.batch_gradients(images)
        replicas = self.strategy.num_replicas_in_sync
        variables = self.model.trainable_variables
        # Keras sums the replicas' gradients once more when it applies them.
        self.optimizer.apply_gradients(zip([g / replicas for g in grads], variables, strict=True))
        return losses

    def batch_gradients(self, images: tf.Tensor) -> tuple[dict[str, tf.Tensor], list[tf.Tensor]]:
        """This replica's losses and the clipped gradient of the whole global batch.

        The global-norm clip must see the gradient of the whole batch, but Keras 3
        optimizers clip each replica's gradient before summing them; so the sum over
        replicas and the clip happen here (on one device both are trivial).
        """
        replicas = self.strategy.num_replicas_in_sync
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            curves = self.curve_net(images, training=True)
            _, losses = self.enhance_and_score(images, curves)
            share = losses["total"] / replicas  # mean over the global batch
        grads = tape.gradient(share, variables)
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
        if self.params.train.grad_clip_norm > 0:
            grads, _ = tf.clip_by_global_norm(grads, self.params.train.grad_clip_norm)
        return losses, grads

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3]), tf.TensorSpec([1, None, None, 3])])
    def val_step(self, low: tf.Tensor, high: tf.Tensor) -> dict[str, tf.Tensor]:
        enhanced, results = self.enhance_and_score(low, self.validated_curve_net(low, training=False))
        results = dict(results)
        results["psnr"] = batch_psnr(enhanced, high)[0]
        results["ssim"] = batch_ssim(enhanced, high)[0]
        return results


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


def train_epoch(trainer: Trainer, images: TrainingImages, epoch: int, desc: str = "") -> EpochRun:
    """One pass over the training images, timing how long each step waited for its batch."""
    started = time.perf_counter()
    batches = iter(trainer.distribute(images.epoch(epoch)))
    rows: list[dict[str, float]] = []
    input_wait = 0.0
    bar = tqdm(range(images.steps_per_epoch), desc=desc, unit="batch", leave=False, file=sys.stderr)
    for step in bar:
        waited = time.perf_counter()
        batch = next(batches)
        input_wait += time.perf_counter() - waited
        values = {k: float(v) for k, v in trainer.train_step(batch).items()}
        _check_finite(values, epoch, step)
        rows.append(values)
        bar.set_postfix(loss=f"{values['total']:.4f}")
    bar.close()
    return EpochRun(rows, time.perf_counter() - started, input_wait)


EpochCallback = Callable[[int, dict[str, float], bool], None]


def train(
    params: Params,
    train_paths: list[str],
    val_pairs: tuple[list[str], list[str]],
    checkpoint_dir: Path,
    fingerprint_value: str,
    on_start: Callable[[TrainingState, bool], None] | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> TrainingResult:
    """Train for `params.train.epochs`, resuming from `checkpoint_dir` when it holds the
    same experiment; keeps the weights of the epoch with the best validation PSNR.

    `on_start(state, resumed)` and `on_epoch_end(epoch, row, improved)` let the caller
    track the run (MLflow) without this loop knowing about it.
    """
    cfg = params.train
    trainer = Trainer(params)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = Checkpoints(checkpoint_dir, trainer.model, trainer.optimizer)
    state = Checkpoints.load_state(checkpoint_dir, fingerprint_value)
    resumed = state is not None
    if state is not None:
        checkpoints.restore()
        print(
            f"resuming from epoch {state.completed_epochs} of {cfg.epochs} ({checkpoint_dir})",
            file=sys.stderr,
        )
    else:
        shutil.rmtree(checkpoint_dir / "epochs", ignore_errors=True)
        state = TrainingState(fingerprint=fingerprint_value)
    if on_start:
        on_start(state, resumed)

    images = TrainingImages(train_paths, cfg.crop_size, cfg.batch_size, cfg.seed)
    val = paired_images(*val_pairs)

    for epoch in range(state.completed_epochs, cfg.epochs):
        started = time.perf_counter()
        epoch_run = train_epoch(trainer, images, epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}")
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
        improved = row["val_psnr"] > state.best_val_psnr
        if improved:
            state.best_epoch, state.best_val_psnr = epoch, row["val_psnr"]
        state.history.append(row)
        state.completed_epochs = epoch + 1
        checkpoints.save(state, trainer.model, improved)
        print(
            f"epoch {epoch + 1}/{cfg.epochs}: loss {row['train_total']:.4f} / val {row['val_total']:.4f}, "
            f"val PSNR {row['val_psnr']:.2f} dB, SSIM {row['val_ssim']:.3f}"
            f"{' (best)' if improved else ''}, {row['epoch_seconds']:.0f}s "
            f"({row['train_images_per_s']:.1f} img/s)",
            file=sys.stderr,
        )
        if on_epoch_end:
            on_epoch_end(epoch, row, improved)

    trainer.model.load_weights(checkpoint_dir / BEST_WEIGHTS)
    return TrainingResult(model=float32_inference_model(trainer.model, params), state=state)


def float32_inference_model(trained: keras.Model, params: Params) -> keras.Model:
    """Rebuild the inference graph in float32 and copy the weights in.

    Mixed precision is a training speed-up; a shipped model with bfloat16 layers
    would run slowly (or emulated) on CPUs without bf16 units.
    """
    m = params.model
    with precision_policy("float32"):
        fresh = build_dce_net(m.iterations, m.filters, m.variant)
    fresh.set_weights(trained.get_weights())
    return inference_model(fresh, m.scale_factor)
