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
from src.data.pipeline import TrainingImages, paired_images
from src.errors import PipelineError
from src.evaluate.metrics import batch_psnr, batch_ssim, quality_score
from src.files import atomic_write_text
from src.model.losses import LOSS_NAMES, ZeroReferenceLoss
from src.model.neighbor2neighbor import neighbor2neighbor, pixel_unshuffle
from src.model.networks import (
    apply_curves,
    build_dce_net,
    build_denoiser,
    finish,
    gate_layer,
    inference_model,
    precision_policy,
    validation_model,
)

LOSS_KEYS = (*LOSS_NAMES, "total")
STATE_FILE = "state.json"
BEST_WEIGHTS = "best.weights.h5"
BEST_DENOISER_WEIGHTS = "best.denoiser.weights.h5"


@dataclasses.dataclass
class TrainingState:
    """What survives a kill: enough to resume the same run where it stopped."""

    fingerprint: str
    completed_epochs: int = 0
    best_epoch: int = -1
    best_val_score: float = -math.inf  # src.evaluate.metrics.quality_score of the best epoch
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

    def __init__(self, folder: Path, trainer: Trainer):
        self.folder = folder
        self.trainer = trainer
        parts = {"model": trainer.model, "optimizer": trainer.optimizer}
        if trainer.denoiser is not None:
            parts.update(denoiser=trainer.denoiser_core, denoiser_optimizer=trainer.denoiser_optimizer)
        self.checkpoint = tf.train.Checkpoint(**parts)
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
            if self.trainer.denoiser is not None:
                self._save_weights(self.trainer.denoiser, BEST_DENOISER_WEIGHTS)
        self.manager.save(checkpoint_number=state.completed_epochs)
        atomic_write_text(self.folder / STATE_FILE, json.dumps(dataclasses.asdict(state), indent=1))

    def _save_weights(self, model: keras.Model, name: str) -> None:
        tmp = self.folder / f"tmp-{name}"
        model.save_weights(tmp)
        tmp.replace(self.folder / name)

    def load_best_curves(self) -> None:
        """The curve weights of the best epoch so far: what the denoiser phase builds on."""
        self.trainer.model.load_weights(self.folder / BEST_WEIGHTS)

    def load_best(self) -> None:
        self.trainer.model.load_weights(self.folder / BEST_WEIGHTS)
        if self.trainer.denoiser is not None:
            self.trainer.denoiser.load_weights(self.folder / BEST_DENOISER_WEIGHTS)

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
            # The denoiser trains beside the curves, from their (detached) output, with its
            # own optimizer: the curve losses never see it, its loss never moves the curves.
            self.denoiser: keras.Model | None = None
            if m.denoiser != "none":
                # float32 even under mixed precision: its bf16 backward measured 5-6x slower
                # than float32's on an AVX2 CPU (not measured on bf16 hardware).
                with precision_policy("float32"):
                    # Trained on stride-s sub-images with plain dilations; deployed on whole
                    # images with dilations × s: the same weights (src.model.networks.build_denoiser).
                    self.denoiser_core = build_denoiser(m.denoiser_filters)
                    self.denoiser = build_denoiser(m.denoiser_filters, m.denoiser_stride)
                self.denoiser_optimizer = keras.optimizers.Adam(params.train.denoiser_learning_rate)
                self.denoiser_optimizer.build(self.denoiser_core.trainable_variables)
        self.gate = gate_layer(m.gate_band) if m.exposure_gate else None
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

    def sync_denoiser(self) -> None:
        """Copy the trained (sub-image) denoiser's weights into the deployed, dilated one."""
        if self.denoiser is not None:
            self.denoiser.set_weights(self.denoiser_core.get_weights())

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
        # Keras sums the replicas' gradients once more when it applies them.
        self.optimizer.apply_gradients(
            zip([g / replicas for g in grads], self.model.trainable_variables, strict=True)
        )
        return losses

    @tf.function(reduce_retracing=True)
    def denoiser_step(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """One step of the denoiser alone, on the output of the (frozen) trained curves."""
        per_replica = self.strategy.run(self._denoiser_replica_step, args=(images,))
        return {k: self.strategy.reduce("MEAN", v, axis=None) for k, v in per_replica.items()}

    def _denoiser_replica_step(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        enhanced = apply_curves(images, self.curve_net(images, training=False), self.params.model.iterations)
        losses, grads = self.denoiser_gradients(images, tf.stop_gradient(enhanced))
        replicas = self.strategy.num_replicas_in_sync
        variables = self.denoiser_core.trainable_variables
        self.denoiser_optimizer.apply_gradients(zip([g / replicas for g in grads], variables, strict=True))
        return losses

    def denoiser_gradients(
        self, images: tf.Tensor, enhanced: tf.Tensor
    ) -> tuple[dict[str, tf.Tensor], list[tf.Tensor]]:
        """Neighbor2Neighbor loss on the curves' output and the denoiser's summed gradient.

        Its random pixel pairs are drawn from (train.seed, step), so a resumed run
        draws the ones an uninterrupted run would have.
        """
        replicas = self.strategy.num_replicas_in_sync
        step = tf.cast(self.denoiser_optimizer.iterations, tf.int64)
        seed = tf.stack([tf.constant(self.params.train.seed, tf.int64), step])
        variables = self.denoiser_core.trainable_variables
        stride = self.params.model.denoiser_stride
        with tf.GradientTape() as tape:
            losses = neighbor2neighbor(
                lambda noisy, original: self.denoiser_core([noisy, original], training=True),
                pixel_unshuffle(enhanced, stride),
                pixel_unshuffle(images, stride),
                seed,
                self.params.loss.n2n_gamma,
            )
            share = losses["denoise"] / replicas
        grads = tape.gradient(share, variables)
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
        return losses, grads

    def batch_gradients(self, images: tf.Tensor) -> tuple[dict[str, tf.Tensor], list[tf.Tensor]]:
        """This replica's curve losses and the curve net's clipped gradient of the whole global batch.

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
        """Losses of the curves, and the quality of the curves' image (with the gate)."""
        return self._validate(low, high, None)

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3]), tf.TensorSpec([1, None, None, 3])])
    def val_step_denoised(self, low: tf.Tensor, high: tf.Tensor) -> dict[str, tf.Tensor]:
        """The same, for the finished image as deployed: curves, gate, denoiser."""
        return self._validate(low, high, self.denoiser)

    def _validate(
        self, low: tf.Tensor, high: tf.Tensor, denoiser: keras.Model | None
    ) -> dict[str, tf.Tensor]:
        enhanced, results = self.enhance_and_score(low, self.validated_curve_net(low, training=False))
        results = dict(results)
        finished = finish(low, enhanced, self.gate, denoiser)
        results["curve_psnr"] = batch_psnr(enhanced, high)[0]
        results["psnr"] = batch_psnr(finished, high)[0]
        results["ssim"] = batch_ssim(finished, high)[0]
        results["score"] = quality_score(results["psnr"], results["ssim"])
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


def train_epoch(
    trainer: Trainer, images: TrainingImages, epoch: int, desc: str = "", step: Callable | None = None
) -> EpochRun:
    """One pass over the training images, timing how long each step waited for its batch.

    `step` is the trainer's `train_step` (the curves) unless given (`denoiser_step`).
    """
    step = step or trainer.train_step
    started = time.perf_counter()
    batches = iter(trainer.distribute(images.epoch(epoch)))
    rows: list[dict[str, float]] = []
    input_wait = 0.0
    bar = tqdm(range(images.steps_per_epoch), desc=desc, unit="batch", leave=False, file=sys.stderr)
    for index in bar:
        waited = time.perf_counter()
        batch = next(batches)
        input_wait += time.perf_counter() - waited
        values = {k: float(v) for k, v in step(batch).items()}
        _check_finite(values, epoch, index)
        rows.append(values)
        bar.set_postfix(loss=f"{values.get('total', values.get('denoise', 0.0)):.4f}")
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
    checkpoints = Checkpoints(checkpoint_dir, trainer)
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
    # Every epoch is scored on the same first `val_images` val pairs at full resolution:
    # on a 2-core CPU scoring all 100 costs more than the epoch's training.
    keep = cfg.val_images or len(val_pairs[0])
    val = paired_images(val_pairs[0][:keep], val_pairs[1][:keep])

    # Two phases: the curves for `epochs`, then the denoiser alone for `denoiser_epochs` on
    # the best epoch's (frozen) curves. Training it beside moving curves was tried first: it
    # chased a moving target and, in the same wall time, removed a third as much noise.
    total = cfg.epochs + (cfg.denoiser_epochs if trainer.denoiser is not None else 0)
    for epoch in range(state.completed_epochs, total):
        started = time.perf_counter()
        denoising = epoch >= cfg.epochs
        if denoising and epoch == cfg.epochs:
            checkpoints.load_best_curves()
        epoch_run = train_epoch(
            trainer,
            images,
            epoch,
            desc=f"{'denoiser ' if denoising else ''}epoch {epoch + 1}/{total}",
            step=trainer.denoiser_step if denoising else trainer.train_step,
        )
        rows, train_seconds = epoch_run.losses, epoch_run.seconds
        trainer.sync_denoiser()
        validate = trainer.val_step_denoised if denoising else trainer.val_step
        val_rows = [validate(low, high) for low, high in val]
        row = {
            "epoch": epoch + 1,
            "phase": 2 if denoising else 1,
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
        if improved:
            state.best_epoch, state.best_val_score = epoch, row["val_score"]
        state.history.append(row)
        state.completed_epochs = epoch + 1
        checkpoints.save(state, improved)
        loss = f"denoiser loss {row['train_denoise']:.5f}" if denoising else f"loss {row['train_total']:.4f}"
        print(
            f"epoch {epoch + 1}/{total}: {loss} / val {row['val_total']:.4f}, "
            f"val PSNR {row['val_psnr']:.2f} dB, SSIM {row['val_ssim']:.3f}"
            f"{' (best)' if improved else ''}, {row['epoch_seconds']:.0f}s "
            f"({row['train_images_per_s']:.1f} img/s)",
            file=sys.stderr,
        )
        if on_epoch_end:
            on_epoch_end(epoch, row, improved)

    checkpoints.load_best()
    return TrainingResult(model=float32_inference_model(trainer.model, params, trainer.denoiser), state=state)


def float32_inference_model(
    trained: keras.Model, params: Params, trained_denoiser: keras.Model | None = None
) -> keras.Model:
    """Rebuild the inference graph in float32 and copy the weights in.

    Mixed precision is a training speed-up; a shipped model with bfloat16 layers
    would run slowly (or emulated) on CPUs without bf16 units.
    """
    m = params.model
    with precision_policy("float32"):
        fresh = build_dce_net(m.iterations, m.filters, m.variant)
        denoiser = (
            build_denoiser(m.denoiser_filters, m.denoiser_stride) if trained_denoiser is not None else None
        )
    fresh.set_weights(trained.get_weights())
    if denoiser is not None:
        denoiser.set_weights(trained_denoiser.get_weights())
    return inference_model(fresh, m.scale_factor, denoiser, m.gate_band if m.exposure_gate else None)
