"""The four zero-reference losses against plain-numpy computations written from the paper's equations."""

import numpy as np
import pytest
import tensorflow as tf

from src.config import LossConfig
from src.model.losses import (
    ZeroReferenceLoss,
    color_constancy,
    exposure_control,
    illumination_smoothness,
    spatial_consistency,
)

RNG = np.random.default_rng(0)


def region_means(image: np.ndarray, size: int) -> np.ndarray:
    """Mean intensity (over RGB) of each non-overlapping size×size region, by explicit loops."""
    h, w = image.shape[0] // size, image.shape[1] // size
    out = np.zeros((h, w))
    for r in range(h):
        for c in range(w):
            out[r, c] = image[r * size : (r + 1) * size, c * size : (c + 1) * size].mean()
    return out


def spatial_reference(enhanced: np.ndarray, original: np.ndarray, size: int) -> float:
    y, i = region_means(enhanced, size), region_means(original, size)
    total, regions = 0.0, y.shape[0] * y.shape[1]
    for r in range(y.shape[0]):
        for c in range(y.shape[1]):
            for dr, dc in ((0, -1), (0, 1), (-1, 0), (1, 0)):
                rr, cc = r + dr, c + dc
                if 0 <= rr < y.shape[0] and 0 <= cc < y.shape[1]:
                    total += (abs(y[r, c] - y[rr, cc]) - abs(i[r, c] - i[rr, cc])) ** 2
    return total / regions


def test_spatial_consistency_matches_paper_equation():
    original = RNG.random((2, 16, 24, 3)).astype(np.float32)
    enhanced = RNG.random((2, 16, 24, 3)).astype(np.float32)
    expected = np.mean([spatial_reference(enhanced[b], original[b], 4) for b in range(2)])
    got = float(spatial_consistency(tf.constant(enhanced), tf.constant(original), 4))
    assert got == pytest.approx(expected, rel=1e-4)


def test_spatial_consistency_is_zero_for_a_contrast_preserving_shift():
    original = RNG.random((1, 16, 16, 3)).astype(np.float32) * 0.5
    # Adding a constant keeps every neighbour difference, so nothing to penalise.
    assert float(spatial_consistency(tf.constant(original + 0.3), tf.constant(original))) == pytest.approx(
        0.0, abs=1e-10
    )


def test_exposure_control_matches_patch_loop():
    enhanced = RNG.random((2, 32, 48, 3)).astype(np.float32)
    expected = np.mean([((region_means(enhanced[b], 16) - 0.6) ** 2).mean() for b in range(2)])
    assert float(exposure_control(tf.constant(enhanced), 0.6, 16)) == pytest.approx(expected, rel=1e-5)


def test_exposure_control_is_zero_at_the_target_level():
    flat = np.full((1, 32, 32, 3), 0.45, np.float32)
    assert float(exposure_control(tf.constant(flat), 0.45, 16)) == pytest.approx(0.0, abs=1e-10)


def test_color_constancy_matches_hand_computation():
    image = np.zeros((1, 4, 4, 3), np.float32)
    image[..., 0], image[..., 1], image[..., 2] = 0.5, 0.2, 0.1
    d_rg, d_rb, d_gb = (0.5 - 0.2) ** 2, (0.5 - 0.1) ** 2, (0.2 - 0.1) ** 2
    expected = np.sqrt(d_rg**2 + d_rb**2 + d_gb**2)
    assert float(color_constancy(tf.constant(image))) == pytest.approx(expected, rel=1e-5)
    grey = np.full((1, 4, 4, 3), 0.3, np.float32)
    assert float(color_constancy(tf.constant(grey))) == pytest.approx(0.0, abs=1e-12)


def test_illumination_smoothness_normalises_over_height_and_width():
    curves = RNG.random((2, 5, 7, 24)).astype(np.float32)
    b, h, w, _ = curves.shape
    h_tv = sum(((curves[:, r + 1] - curves[:, r]) ** 2).sum() for r in range(h - 1))
    w_tv = sum(((curves[:, :, c + 1] - curves[:, :, c]) ** 2).sum() for c in range(w - 1))
    expected = 2 * (h_tv / ((h - 1) * w) + w_tv / (h * (w - 1))) / b
    assert float(illumination_smoothness(tf.constant(curves))) == pytest.approx(expected, rel=1e-5)


def test_illumination_smoothness_does_not_depend_on_image_size_for_the_same_texture():
    """Normalised per position, a bigger tile of the same pattern scores the same. The
    Keras example's axis mix-up makes it scale with the image instead."""
    tile = RNG.random((1, 8, 8, 24)).astype(np.float32)
    small = float(illumination_smoothness(tf.constant(np.tile(tile, (1, 4, 4, 1)))))
    large = float(illumination_smoothness(tf.constant(np.tile(tile, (1, 16, 16, 1)))))
    assert large == pytest.approx(small, rel=0.05)


def test_total_is_the_weighted_sum():
    config = LossConfig(spatial_weight=2.0, exposure_weight=3.0, color_weight=4.0, smoothness_weight=5.0)
    original = tf.constant(RNG.random((2, 32, 32, 3)).astype(np.float32))
    enhanced = tf.constant(RNG.random((2, 32, 32, 3)).astype(np.float32))
    curves = tf.constant(RNG.random((2, 32, 32, 24)).astype(np.float32))
    terms = {k: float(v) for k, v in ZeroReferenceLoss(config)(original, enhanced, curves).items()}
    expected = 2 * terms["spatial"] + 3 * terms["exposure"] + 4 * terms["color"] + 5 * terms["smoothness"]
    assert terms["total"] == pytest.approx(expected, rel=1e-5)
