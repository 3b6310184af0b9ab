"""The zero-reference denoiser: total variation whose strength follows the curves' gain.

Brightening a dark pixel by a curve f multiplies its sensor noise by about f′(x), so the
noise left after the curves is strongest where they lifted the most. This denoiser is
Chambolle's total-variation projection (J. Math. Imaging Vis. 2004) with a weight per
pixel: `strength × (gain / TYPICAL_GAIN) ** gain_power`, where gain is how much the curves
brightened that pixel (output over input luminance). It runs in an orthonormal
luminance / opponent-colour basis, so the blotchy chroma noise of LOL can be smoothed
harder than luminance, where the detail is.

It learns nothing from clean images: three numbers (luminance and chroma strength, gain
power) are fitted on validation pairs by the train_denoiser stage (`src.train.denoiser_fit`).
The graph uses only `keras.ops` on plain floats, so a saved model needs no custom layer;
the three numbers travel in a frozen Dense layer, as the exposure gate's band does.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from keras import layers, ops

DENOISER = "denoiser"  # the layer holding (luma_weight, chroma_weight, gain_power)
# Fixed-step Chambolle: 20 iterations reach skimage's converged TV to 0.01 dB on LOL val, at
# a fixed cost (skimage iterates to a tolerance, up to 200 times).
TV_ITERATIONS = 20
TV_STEP = 0.25  # 1 / (2 · dimensions): the largest step that converges in 2-D
# Strengths are stated at this gain (LOL val: the curves' median gain is 7 to 10), so a
# strength reads like skimage's TV weight at a typical pixel.
TYPICAL_GAIN = 8.0
# (luma_weight, chroma_weight, gain_power) that training and tuning validate the curves with:
# fixed, so the curves never depend on the denoiser section. Near the fit on LOL val.
REFERENCE_STRENGTHS = (0.06, 0.15, 1.0)
# An output pixel depends on inputs this far away: each iteration reaches one pixel further.
DENOISER_RADIUS = TV_ITERATIONS + 1
_EPS = 1.0 / 255.0  # keeps the gain finite on black pixels
_R3, _R2, _R6 = math.sqrt(3.0), math.sqrt(2.0), math.sqrt(6.0)


def denoiser_layer(luma_weight: float, chroma_weight: float, gain_power: float) -> layers.Dense:
    """A frozen 1→3 Dense whose bias holds the three numbers, read back by `strengths_of`."""
    layer = layers.Dense(3, name=DENOISER, trainable=False, dtype="float32")
    layer.build((None, 1))
    bias = np.array([luma_weight, chroma_weight, gain_power], np.float32)
    layer.set_weights([np.zeros((1, 3), np.float32), bias])
    return layer


def strengths_of(layer: layers.Dense) -> tuple[float, float, float]:
    """(luma_weight, chroma_weight, gain_power) as stored by `denoiser_layer`."""
    luma, chroma, power = (round(float(v), 6) for v in layer.get_weights()[1])
    return luma, chroma, power


def _to_opponent(x):
    r, g, b = x[..., 0:1], x[..., 1:2], x[..., 2:3]
    return ops.concatenate([(r + g + b) / _R3, (r - b) / _R2, (r - 2.0 * g + b) / _R6], axis=-1)


def _from_opponent(x):
    y, c1, c2 = x[..., 0:1] / _R3, x[..., 1:2] / _R2, x[..., 2:3] / _R6
    return ops.concatenate([y + c1 + c2, y - 2.0 * c2, y - c1 + c2], axis=-1)


def _gradient(u):
    """Forward differences along rows and columns, 0 on the last row / column (Neumann)."""
    dy = ops.concatenate([u[:, 1:] - u[:, :-1], ops.zeros_like(u[:, :1])], axis=1)
    dx = ops.concatenate([u[:, :, 1:] - u[:, :, :-1], ops.zeros_like(u[:, :, :1])], axis=2)
    return dy, dx


def _divergence(py, px):
    """The negative adjoint of `_gradient` (backward differences)."""
    dy = ops.concatenate([py[:, :1], py[:, 1:-1] - py[:, :-2], -py[:, -2:-1]], axis=1)
    dx = ops.concatenate([px[:, :, :1], px[:, :, 1:-1] - px[:, :, :-2], -px[:, :, -2:-1]], axis=2)
    return dy + dx


def adaptive_tv(enhanced, original, luma_weight, chroma_weight, gain_power):
    """Denoise the curves' output `enhanced` of `original`, both NHWC in [0, 1].

    The weights and power are scalars or [N, 1, 1, 1] tensors. Images need at least 2 px
    on each side. Per channel of the opponent basis, p ← (p − τ∇u) / (1 + τ|∇u| / w) with
    u = f − div p, as skimage's `denoise_tv_chambolle` with a weight map w.
    """
    luminance = ops.mean(enhanced, axis=-1, keepdims=True)
    gain = luminance / (ops.mean(original, axis=-1, keepdims=True) + _EPS)
    amplification = ops.power(ops.maximum(gain, 1.0) / TYPICAL_GAIN, gain_power)
    ones = ops.ones_like(gain)
    per_channel = ops.concatenate([luma_weight * ones, chroma_weight * ones, chroma_weight * ones], axis=-1)
    weight = ops.maximum(amplification * per_channel, 1e-6)  # 0 turns a channel's smoothing off
    f = _to_opponent(enhanced)
    py = ops.zeros_like(f)
    px = ops.zeros_like(f)
    for _ in range(TV_ITERATIONS):
        gy, gx = _gradient(f - _divergence(py, px))
        shrink = 1.0 + TV_STEP * ops.sqrt(gy * gy + gx * gx) / weight
        py = (py - TV_STEP * gy) / shrink
        px = (px - TV_STEP * gx) / shrink
    return ops.clip(_from_opponent(f - _divergence(py, px)), 0.0, 1.0)


def denoise(enhanced, original, layer: layers.Dense):
    """`adaptive_tv` with the strengths held in `layer` (what a saved model runs)."""
    ones = ops.ones_like(ops.mean(original, axis=(1, 2, 3)))[:, None]
    strengths = ops.reshape(layer(ones), (-1, 1, 1, 3))
    return adaptive_tv(enhanced, original, strengths[..., 0:1], strengths[..., 1:2], strengths[..., 2:3])


@functools.cache
def compiled_tv():
    """`adaptive_tv` as one XLA kernel (the strengths are tensors, so trying others does not
    recompile it): op by op, each of its ~300 passes over the image costs as much as the kernel's
    whole iteration."""
    import tensorflow as tf  # here, not at import: the saved graph needs only keras.ops

    return tf.function(adaptive_tv, jit_compile=True)


def tv_function(strengths: tuple[float, float, float]):
    """(enhanced, original) → denoised with these strengths, compiled (the fast path's denoiser)."""
    import tensorflow as tf

    luma, chroma, power = (tf.constant(v, tf.float32) for v in strengths)
    return lambda enhanced, original: compiled_tv()(enhanced, original, luma, chroma, power)


def keras_denoiser(layer: layers.Dense):
    """(enhanced, original) → denoised, for `src.model.networks.finish` in a Keras graph."""
    return lambda enhanced, original: denoise(enhanced, original, layer)
