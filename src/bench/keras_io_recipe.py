"""The plain Keras Zero-DCE recipe: the baseline the benchmark's speed-up ratios are against.

This follows the keras-io example "Zero-DCE for low-light image enhancement" (Soumik
Rakshit) on purpose, quirks included: PNGs are decoded and resized every epoch (no
cache, no prefetch), the model is float32 only, trained by `Model.fit` with an
overridden `train_step`, and the losses are the example's own formulations, which
src/model/losses.py deliberately corrects. Do not "improve" it: a faster or more correct
baseline would make the benchmark's ratios say less about what our trainer changed.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers

ITERATIONS = 8
# Weights of the example's total loss: 200·smoothness + spatial + 5·color + 10·exposure.
WEIGHTS = {"smoothness": 200.0, "spatial": 1.0, "color": 5.0, "exposure": 10.0}


def reference_dataset(paths: list[str], size: int, batch_size: int) -> tf.data.Dataset:
    """read → decode → resize (aspect ratio not kept) → [0, 1], redone every epoch, as the example."""

    def load(path: tf.Tensor) -> tf.Tensor:
        image = tf.image.decode_png(tf.io.read_file(path), channels=3)
        return tf.image.resize(image, [size, size]) / 255.0

    dataset = tf.data.Dataset.from_tensor_slices(list(paths))
    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size, drop_remainder=True)


def build_reference_dce_net() -> keras.Model:
    """The example's DCE-Net: 7 3×3 convs, skips 3↔4, 2↔5, 1↔6, 24 tanh maps; 79,416 parameters.

    dtype is pinned to float32 so a mixed-precision global policy set elsewhere in the
    benchmark process cannot speed the baseline up behind its back.
    """
    image = keras.Input(shape=(None, None, 3), dtype="float32")

    def conv(channels: int = 32, activation: str = "relu") -> layers.Conv2D:
        return layers.Conv2D(channels, 3, padding="same", activation=activation, dtype="float32")

    c1 = conv()(image)
    c2 = conv()(c1)
    c3 = conv()(c2)
    c4 = conv()(c3)
    c5 = conv()(layers.Concatenate(dtype="float32")([c4, c3]))
    c6 = conv()(layers.Concatenate(dtype="float32")([c5, c2]))
    curves = conv(3 * ITERATIONS, "tanh")(layers.Concatenate(dtype="float32")([c6, c1]))
    return keras.Model(image, curves, name="reference_dce_net")


def enhance(image: tf.Tensor, curves: tf.Tensor) -> tf.Tensor:
    """LE(x) = x + α(x² − x), once per RGB triple of the 24 curve maps."""
    x = image
    for i in range(ITERATIONS):
        x = x + curves[..., 3 * i : 3 * i + 3] * (tf.square(x) - x)
    return x


def color_constancy(enhanced: tf.Tensor) -> tf.Tensor:
    """sqrt((R−G)⁴ + (R−B)⁴ + (G−B)⁴) of per-image channel means, batch-averaged.

    Quirk: the squared differences are squared again under the root, and tf.sqrt's
    gradient is infinite where all channel means agree (a grey image gives NaN).
    """
    mean = tf.reduce_mean(enhanced, axis=(1, 2))
    r, g, b = mean[:, 0], mean[:, 1], mean[:, 2]
    d_rg, d_rb, d_gb = tf.square(r - g), tf.square(r - b), tf.square(b - g)
    return tf.reduce_mean(tf.sqrt(tf.square(d_rg) + tf.square(d_rb) + tf.square(d_gb)))


def exposure(enhanced: tf.Tensor, level: float = 0.6) -> tf.Tensor:
    """Mean of (Y − 0.6)² over 16×16 average-pooled grey levels (needs crops of ≥ 16 px)."""
    grey = tf.reduce_mean(enhanced, axis=3, keepdims=True)
    return tf.reduce_mean(tf.square(tf.nn.avg_pool2d(grey, 16, 16, "VALID") - level))


def illumination_smoothness(curves: tf.Tensor) -> tf.Tensor:
    """Total variation of the curve maps, normalised as the example does.

    Quirk: the counts use shape[2] and shape[3], i.e. (W−1)·C and W·(C−1) of an NHWC
    tensor, where the authors' NCHW code meant (H−1)·W and H·(W−1). With C = 24 the
    term is weighted differently from the paper's, and it depends on the crop width only.
    """
    shape = tf.shape(curves)
    batch, width, channels = (tf.cast(shape[i], tf.float32) for i in (0, 2, 3))
    h_tv = tf.reduce_sum(tf.square(curves[:, 1:, :, :] - curves[:, :-1, :, :]))
    w_tv = tf.reduce_sum(tf.square(curves[:, :, 1:, :] - curves[:, :, :-1, :]))
    return 2.0 * (h_tv / ((width - 1.0) * channels) + w_tv / (width * (channels - 1.0))) / batch


def _kernel(*rows: list[float]) -> tf.Tensor:
    return tf.constant([[[row] for row in rows]], tf.float32)  # shape (1, 3, 1, 3): HWIO


# The example's kernels, written as if (out, in, 3, 3) but read by conv2d as a 1×3 filter
# with 3 output channels: see spatial_consistency for what they compute.
LEFT = _kernel([0, 0, 0], [-1, 1, 0], [0, 0, 0])
RIGHT = _kernel([0, 0, 0], [0, 1, -1], [0, 0, 0])
UP = _kernel([0, -1, 0], [0, 1, 0], [0, 0, 0])
DOWN = _kernel([0, 0, 0], [0, 1, 0], [0, -1, 0])


def spatial_consistency(enhanced: tf.Tensor, original: tf.Tensor) -> tf.Tensor:
    """Mean of Σ_k (K_k∗I − K_k∗Y)² over 4×4-pooled grey levels, k = left, right, up, down.

    Quirk: the HWIO kernels above are 1×3 with 3 output channels, so "left" and "right"
    give ±the region itself (no neighbour at all: they penalise (I − Y)², i.e. any
    brightening), "up" and "down" give differences to the left and right neighbours,
    nothing looks vertically, SAME zero padding invents contrast at the border, and the
    mean runs over the 3 output channels. Per region: (4(I − Y)² + Σ_left,right(ΔI − ΔY)²) / 3.
    """
    pooled = [
        tf.nn.avg_pool2d(tf.reduce_mean(image, axis=3, keepdims=True), 4, 4, "VALID")
        for image in (original, enhanced)
    ]
    total = 0.0
    for kernel in (LEFT, RIGHT, UP, DOWN):
        d_orig, d_enh = (tf.nn.conv2d(p, kernel, strides=1, padding="SAME") for p in pooled)
        total += tf.square(d_orig - d_enh)
    return tf.reduce_mean(total)


class ReferenceZeroDCE(keras.Model):
    """The example's subclassed model: `fit` calls train_step, which computes the four losses."""

    def __init__(self, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.dce_model = build_reference_dce_net()
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("total", *WEIGHTS)}

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())  # listed so fit resets them every epoch

    def call(self, images: tf.Tensor) -> tf.Tensor:
        return enhance(images, self.dce_model(images))

    def compute_losses(self, images: tf.Tensor, curves: tf.Tensor) -> dict[str, tf.Tensor]:
        """Weighted terms and their sum, as the example logs them."""
        enhanced = enhance(images, curves)
        raw = {
            "smoothness": illumination_smoothness(curves),
            "spatial": spatial_consistency(enhanced, images),
            "color": color_constancy(enhanced),
            "exposure": exposure(enhanced),
        }
        losses = {name: WEIGHTS[name] * value for name, value in raw.items()}
        losses["total"] = tf.add_n(list(losses.values()))
        return losses

    def train_step(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            losses = self.compute_losses(images, self.dce_model(images, training=True))
        weights = self.dce_model.trainable_weights
        self.optimizer.apply_gradients(zip(tape.gradient(losses["total"], weights), weights, strict=True))
        for name, tracker in self.trackers.items():
            tracker.update_state(losses[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}


class _EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch. Keras turns the epoch's logs into Python floats before
    on_epoch_end, which waits for the device, so queued GPU work is inside the time."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def measure_reference_training(
    paths: list[str],
    crop_size: int,
    batch_size: int,
    warmup_epochs: int = 1,
    timed_epochs: int = 2,
    learning_rate: float = 1e-4,
) -> dict[str, float]:
    """Train the reference with `fit` and time the epochs after the warm-up.

    Warm-up epochs (tracing, tf.data start-up) are excluded from images_per_s. `crop_size`
    is the example's resize target: whole images are squashed to crop_size², not cropped.
    final_loss is the last epoch's mean weighted total (the example's loss, not src/model/losses.py's).
    """
    if len(paths) < batch_size:
        raise ValueError(f"{len(paths)} images are fewer than one batch of {batch_size}")
    if warmup_epochs < 0 or timed_epochs < 1:
        raise ValueError("need warmup_epochs >= 0 and timed_epochs >= 1")
    model = ReferenceZeroDCE()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    timer = _EpochTimer()
    history = model.fit(
        reference_dataset(paths, crop_size, batch_size),
        epochs=warmup_epochs + timed_epochs,
        callbacks=[timer],
        shuffle=False,  # what fit does with a Dataset anyway; said so it does not warn
        verbose=0,
    )
    seconds = float(np.sum(timer.seconds[warmup_epochs:]))
    images = timed_epochs * (len(paths) // batch_size) * batch_size
    return {
        "images_per_s": images / seconds,
        "seconds": seconds,
        "images": images,
        "epochs": timed_epochs,
        "final_loss": float(history.history["total"][-1]),
    }
