"""PSNR and SSIM on images in [0, 1] (data range 1), per image and per batch.

The per-image functions serve the evaluation report; the batch ones serve the
training loop. Both go through the same definitions (SSIM: 11x11 Gaussian window,
sigma 1.5, K1 0.01, K2 0.03, as in Wang et al. 2004 and skimage with
`gaussian_weights=True, use_sample_covariance=False`), so validation numbers
during training and the final report measure the same thing. Integer images are
scaled to [0, 1] first: subtracting uint8 arrays wraps around and inflates PSNR.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from src.images import to_unit_float

SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB with data range 1, computed in float64.

    Identical images give `inf` (the MSE is zero), as skimage's
    `peak_signal_noise_ratio` does, but without its divide-by-zero warning;
    averaging over a set, callers should decide how to treat it.
    """
    pred64, target64 = _unit_pair(pred, target)
    mse = float(np.mean(np.square(pred64 - target64)))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(1.0 / mse))


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM over the valid window positions and the channels (TensorFlow's implementation).

    Images must be at least 11x11, the Gaussian window's size.
    """
    pred64, target64 = _unit_pair(pred, target)
    value = batch_ssim(pred64[np.newaxis], target64[np.newaxis])
    return float(value[0])


def batch_psnr(pred: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """PSNR per image of an NHWC batch, float32, data range 1 (inf where an image is exact)."""
    pred, target = _as_unit_float32(pred), _as_unit_float32(target)
    return tf.image.psnr(pred, target, max_val=1.0)


def batch_ssim(pred: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """SSIM per image of an NHWC batch, float32, data range 1."""
    pred, target = _as_unit_float32(pred), _as_unit_float32(target)
    return tf.image.ssim(
        pred,
        target,
        max_val=1.0,
        filter_size=SSIM_FILTER_SIZE,
        filter_sigma=SSIM_FILTER_SIGMA,
        k1=SSIM_K1,
        k2=SSIM_K2,
    )


def _as_unit_float32(images: tf.Tensor) -> tf.Tensor:
    """Integers are scaled by their dtype's range, floats (bfloat16 under mixed precision) only cast."""
    images = tf.convert_to_tensor(images)
    if images.dtype.is_integer:
        return tf.image.convert_image_dtype(images, tf.float32)
    return tf.cast(images, tf.float32)


def _unit_pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"image shapes differ: pred {pred.shape} vs target {target.shape}")
    if pred.ndim != 3:
        raise ValueError(f"expected HxWxC images, got shape {pred.shape}")
    return to_unit_float(pred, np.float64), to_unit_float(target, np.float64)
