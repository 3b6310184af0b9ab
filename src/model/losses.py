"""The four zero-reference losses of Zero-DCE, on NHWC float32 tensors.

Semantics follow the paper (Guo et al., CVPR 2020, §3.3) and, where the paper is
silent about normalisation, the authors' released code. Two traps of the popular
Keras example are avoided on purpose: its smoothness loss normalises by the wrong
axes of NHWC tensors, and its spatial kernels differ from the paper's.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from src.config import LossConfig


def _luminance(image: tf.Tensor) -> tf.Tensor:
    """Mean over RGB, the intensity the paper's spatial and exposure terms use."""
    return tf.reduce_mean(image, axis=-1, keepdims=True)


def spatial_consistency(enhanced: tf.Tensor, original: tf.Tensor, region: int = 4) -> tf.Tensor:
    """L_spa = 1/K Σ_i Σ_{j∈Ω(i)} (|Y_i − Y_j| − |I_i − I_j|)²  (paper eq. 2).

    Y and I are the mean intensities of `region`×`region` regions of the enhanced
    and input images; Ω(i) are the regions left, right, above and below region i.
    Regions on the border simply have fewer neighbours (no zero padding, which
    would invent a contrast against black). Each adjacent pair appears twice in the
    double sum (i→j and j→i), hence the factor 2.
    """
    y = tf.nn.avg_pool2d(_luminance(enhanced), region, region, "VALID")
    i = tf.nn.avg_pool2d(_luminance(original), region, region, "VALID")

    def pair_terms(a: tf.Tensor, b: tf.Tensor, axis: int) -> tf.Tensor:
        da = tf.abs(tf.experimental.numpy.diff(a, axis=axis))
        db = tf.abs(tf.experimental.numpy.diff(b, axis=axis))
        return tf.reduce_sum(tf.square(da - db), axis=[1, 2, 3])

    regions = tf.cast(tf.shape(y)[1] * tf.shape(y)[2], tf.float32)
    per_image = 2.0 * (pair_terms(y, i, 1) + pair_terms(y, i, 2)) / regions
    return tf.reduce_mean(per_image)


def exposure_control(enhanced: tf.Tensor, level: float = 0.6, patch: int = 16) -> tf.Tensor:
    """L_exp = 1/M Σ_k (Y_k − E)²  over non-overlapping `patch`×`patch` patches (eq. 3)."""
    y = tf.nn.avg_pool2d(_luminance(enhanced), patch, patch, "VALID")
    return tf.reduce_mean(tf.square(y - level))


def color_constancy(enhanced: tf.Tensor) -> tf.Tensor:
    """L_col = Σ_{(p,q)} (J^p − J^q)²  over the channel pairs RG, RB, GB (eq. 4).

    Reduced as in the authors' code: the three squared differences are combined
    with a root-sum-square per image, then averaged over the batch.
    """
    mean_rgb = tf.reduce_mean(enhanced, axis=[1, 2])
    r, g, b = mean_rgb[:, 0], mean_rgb[:, 1], mean_rgb[:, 2]
    d_rg, d_rb, d_gb = tf.square(r - g), tf.square(r - b), tf.square(g - b)
    return tf.reduce_mean(tf.sqrt(tf.square(d_rg) + tf.square(d_rb) + tf.square(d_gb)))


def illumination_smoothness(curves: tf.Tensor) -> tf.Tensor:
    """L_tvA: total variation of the curve maps (eq. 5), normalised as the authors' code.

    Squared vertical and horizontal differences are summed over all channels and
    divided by the number of difference positions of one channel, ((H−1)·W and
    H·(W−1)), times 2, averaged over the batch. On NHWC tensors H and W are axes 1
    and 2 — the Keras example divides by axes 2 and 3 instead.
    """
    shape = tf.shape(curves)
    batch = tf.cast(shape[0], tf.float32)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    h_tv = tf.reduce_sum(tf.square(curves[:, 1:, :, :] - curves[:, :-1, :, :]))
    w_tv = tf.reduce_sum(tf.square(curves[:, :, 1:, :] - curves[:, :, :-1, :]))
    return 2.0 * (h_tv / ((height - 1.0) * width) + w_tv / (height * (width - 1.0))) / batch


LOSS_NAMES = ("spatial", "exposure", "color", "smoothness")


@dataclasses.dataclass(frozen=True)
class ZeroReferenceLoss:
    """The weighted sum of the four terms; also returns each raw (unweighted) term.

    Raw terms are what we log: they stay comparable between runs whose weights
    differ, which the weighted total does not.
    """

    config: LossConfig

    def __call__(self, original: tf.Tensor, enhanced: tf.Tensor, curves: tf.Tensor) -> dict[str, tf.Tensor]:
        c = self.config
        terms = {
            "spatial": spatial_consistency(enhanced, original, c.spatial_region),
            "exposure": exposure_control(enhanced, c.exposure_level, c.exposure_patch),
            "color": color_constancy(enhanced),
            "smoothness": illumination_smoothness(curves),
        }
        terms["total"] = (
            c.spatial_weight * terms["spatial"]
            + c.exposure_weight * terms["exposure"]
            + c.color_weight * terms["color"]
            + c.smoothness_weight * terms["smoothness"]
        )
        return terms
