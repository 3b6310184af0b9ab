"""Neighbor2Neighbor: a denoiser trained from noisy images alone (Huang et al., CVPR 2021).

No clean image exists in a zero-reference setting, so the denoiser learns from pairs
of sub-images of the same noisy image. In every 2×2 cell one pixel goes to g1(y) and
one of its two 4-neighbours inside the cell to g2(y): the two half-size images show
nearly the same scene with (nearly) independent noise, so predicting g2(y) from g1(y)
in the least-squares sense converges to the noise-free image (Noise2Noise). Because
the scenes differ slightly (the pixels are one apart), the paper adds a regulariser
that asks the denoiser's own full-size output to show the same sub-image difference:

  L = ‖f(g1(y)) − g2(y)‖² + γ · ‖f(g1(y)) − g2(y) − (g1(f(y)) − g2(f(y)))‖²   (eq. 5)

with f(y) under stop-gradient. Here y is the curves' output (the noise the curves
amplified is what must go) and f also sees the original image, sub-sampled alike.
"""

from __future__ import annotations

import tensorflow as tf

# Index (0..3, row-major in the 2×2 cell) → its two 4-neighbours in the cell. Plain Python: a
# tensor made at import would start TensorFlow's runtime, after which a MultiWorkerMirroredStrategy
# (train.strategy: multi_worker) can no longer be made.
_NEIGHBOURS = ((1, 2), (0, 3), (0, 3), (1, 2))


def _cells(images: tf.Tensor) -> tf.Tensor:
    """NHWC (H, W even) → [N, H/2, W/2, 4, C], the four pixels of each 2×2 cell."""
    shape = tf.shape(images)
    n, h, w, c = shape[0], shape[1], shape[2], shape[3]
    cells = tf.reshape(images, [n, h // 2, 2, w // 2, 2, c])
    cells = tf.transpose(cells, [0, 1, 3, 2, 4, 5])
    return tf.reshape(cells, [n, h // 2, w // 2, 4, c])


def neighbour_indices(shape: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A random (pixel, neighbour) pair of cell indices per 2×2 cell, [N, H/2, W/2] each.

    Stateless in `seed`, so a resumed training draws the same pairs.
    """
    cell_shape = [shape[0], shape[1] // 2, shape[2] // 2]
    first = tf.random.stateless_uniform(cell_shape, seed, 0, 4, tf.int32)
    which = tf.random.stateless_uniform(cell_shape, seed + 1, 0, 2, tf.int32)
    second = tf.gather(tf.constant(_NEIGHBOURS, tf.int32), first)  # [..., 2]
    second = tf.gather(second, which[..., None], batch_dims=3)[..., 0]
    return first, second


def subsample(images: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """The half-size image that takes, in each 2×2 cell, the pixel `index` names."""
    return tf.gather(_cells(images), index[..., None], batch_dims=3)[..., 0, :]


def pixel_unshuffle(images: tf.Tensor, stride: int) -> tf.Tensor:
    """NHWC (H, W multiples of `stride`) → its stride² sub-images stacked on the batch axis.

    Sub-image (i, j) holds the pixels (i + stride·a, j + stride·b): neighbours in it are
    `stride` px apart in the image, where LOL's noise is far less correlated.
    """
    if stride == 1:
        return images
    shape = tf.shape(images)
    n, h, w, c = shape[0], shape[1], shape[2], shape[3]
    grid = tf.reshape(images, [n, h // stride, stride, w // stride, stride, c])
    grid = tf.transpose(grid, [2, 4, 0, 1, 3, 5])
    return tf.reshape(grid, [stride * stride * n, h // stride, w // stride, c])


def neighbor2neighbor(
    denoise, noisy: tf.Tensor, original: tf.Tensor, seed: tf.Tensor, gamma: float
) -> dict[str, tf.Tensor]:
    """The loss of eq. 5 for `denoise(noisy, original)`, with its two terms.

    Crops must have even sides. `noisy` and `original` are sub-sampled with the same
    indices so the conditioning stays aligned with the pixels it describes.
    """
    noisy = tf.stop_gradient(noisy)
    first, second = neighbour_indices(tf.shape(noisy), seed)
    g1, g2 = subsample(noisy, first), subsample(noisy, second)
    predicted = denoise(g1, subsample(original, first))
    full = tf.stop_gradient(denoise(noisy, original))
    gap = subsample(full, first) - subsample(full, second)
    reconstruction = tf.reduce_mean(tf.square(predicted - g2))
    regulariser = tf.reduce_mean(tf.square(predicted - g2 - gap))
    return {
        "n2n_rec": reconstruction,
        "n2n_reg": regulariser,
        "denoise": reconstruction + gamma * regulariser,
    }
