"""The Zero-DCE trainer: the model and its optimizer under the distribution strategy, and
the custom steps (curves, validation) that the epoch loop in `src.train.loop` drives."""

from __future__ import annotations

import functools

import keras
import tensorflow as tf

from src.config import Params
from src.evaluate.metrics import batch_psnr, batch_ssim, quality_score
from src.model.denoise import REFERENCE_STRENGTHS, tv_function
from src.model.losses import ZeroReferenceLoss
from src.model.networks import apply_curves, build_dce_net, finish, gate_layer, validation_model
from src.train.cluster import tf_config_task


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy that `train.strategy` names.

    `default` is TensorFlow's one-device placement (a GPU if there is one); `mirrored`
    replicates the model on every visible GPU (on a CPU-only machine: the CPU) and
    splits each batch between them, so the same params train on one or eight GPUs.
    `multi_worker` does the same across hosts (`MultiWorkerMirroredStrategy`, every GPU of
    every worker that `TF_CONFIG` names), all-reducing gradients between them.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        tf_config_task()  # a missing or malformed TF_CONFIG: one line, not TensorFlow's traceback
        return _multi_worker_strategy()
    return tf.distribute.get_strategy()


@functools.cache
def _multi_worker_strategy() -> tf.distribute.Strategy:
    # One per process: it configures the collective ops and starts this worker's gRPC server,
    # which TensorFlow allows once, before its runtime starts. Later Trainers share it.
    return tf.distribute.MultiWorkerMirroredStrategy()


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
        # Validation scores the finished image, so it denoises with fixed reference strengths: the
        # denoiser's own are fitted later, on these curves (stage train_denoiser), and must not
        # change which curves are trained.
        self.reference_denoiser = tv_function(REFERENCE_STRENGTHS)
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

    def distribute(self, batches: tf.data.Dataset) -> tf.data.Dataset:
        """Global batches → per-replica shares (the dataset itself on one device)."""
        # Across workers, every worker builds the same seeded global batches (the same split,
        # shuffle and crops: TrainingImages) and keeps its replicas' slice of each one (DATA
        # sharding), so N workers take the step one device takes on that batch. Said outright:
        # AUTO tries FILE sharding first (each worker its own files: other batches than one
        # device's), and for these in-memory paths falls back to DATA with a warning. On one host
        # there is nothing to shard.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(batches.with_options(options))

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
        """Losses of the curves, and the quality of the finished image (gate, reference denoiser)."""
        enhanced, results = self.enhance_and_score(low, self.validated_curve_net(low, training=False))
        results = dict(results)
        finished = finish(low, enhanced, self.gate, self.reference_denoiser)
        results["curve_psnr"] = batch_psnr(enhanced, high)[0]
        results["psnr"] = batch_psnr(finished, high)[0]
        results["ssim"] = batch_ssim(finished, high)[0]
        results["score"] = quality_score(results["psnr"], results["ssim"])
        return results
