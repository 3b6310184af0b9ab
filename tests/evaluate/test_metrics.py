"""PSNR/SSIM against scikit-image on the real fixture images, per image and per batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from src.data.images import to_unit_float
from src.evaluate.metrics import batch_psnr, batch_ssim, psnr, ssim
from tests.support.data import fixture_pair, fixture_pairs


def skimage_psnr(pred: np.ndarray, target: np.ndarray) -> float:
    return float(peak_signal_noise_ratio(target, pred, data_range=1))


def skimage_ssim(pred: np.ndarray, target: np.ndarray) -> float:
    return float(
        structural_similarity(
            target,
            pred,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1,
            channel_axis=-1,
        )
    )


@pytest.fixture(scope="module")
def eval_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """The three eval15 fixture pairs as float64 in [0, 1]."""
    return [
        (to_unit_float(low, np.float64), to_unit_float(high, np.float64))
        for low, high in fixture_pairs("eval15")
    ]


def test_psnr_and_ssim_match_skimage_on_real_pairs(eval_pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for low, high in eval_pairs:
        assert psnr(low, high) == pytest.approx(skimage_psnr(low, high), abs=1e-6)
        assert ssim(low, high) == pytest.approx(skimage_ssim(low, high), abs=1e-3)


def test_metrics_match_skimage_on_a_closer_prediction(
    eval_pairs: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    """A low image brightened towards its target: the regime a trained model is evaluated in."""
    low, high = eval_pairs[0]
    pred = np.clip(0.5 * high + 0.5 * np.sqrt(low), 0.0, 1.0)
    assert psnr(pred, high) == pytest.approx(skimage_psnr(pred, high), abs=1e-6)
    assert ssim(pred, high) == pytest.approx(skimage_ssim(pred, high), abs=1e-3)
    assert psnr(pred, high) > psnr(low, high) and ssim(pred, high) > ssim(low, high)


def test_uint8_inputs_do_not_wrap_around() -> None:
    low, high = fixture_pair("our485", 2)
    assert (low.astype(int) - high.astype(int) < 0).any()  # a naive uint8 difference would wrap
    as_float = (to_unit_float(low, np.float64), to_unit_float(high, np.float64))
    assert psnr(low, high) == pytest.approx(psnr(*as_float), abs=1e-9)
    assert ssim(low, high) == pytest.approx(ssim(*as_float), abs=1e-6)
    naive_mse = np.mean(np.square((low - high).astype(np.float64) / 255.0))
    naive_psnr = 10 * math.log10(1.0 / naive_mse)
    assert abs(naive_psnr - psnr(low, high)) > 1.0


def test_identical_images_have_infinite_psnr_and_ssim_one() -> None:
    _, high = fixture_pair("eval15", 1)
    assert psnr(high, high) == math.inf
    assert ssim(high, high) == pytest.approx(1.0, abs=1e-6)


def test_psnr_known_value() -> None:
    target = np.full((16, 16, 3), 0.5)
    assert psnr(target + 0.1, target) == pytest.approx(20.0)  # MSE 0.01 → 20 dB


def test_shape_mismatch_names_both_shapes() -> None:
    a, b = np.zeros((20, 30, 3)), np.zeros((30, 20, 3))
    with pytest.raises(ValueError, match=r"\(20, 30, 3\) vs target \(30, 20, 3\)"):
        psnr(a, b)
    with pytest.raises(ValueError, match=r"\(20, 30, 3\) vs target \(30, 20, 3\)"):
        ssim(a, b)


def test_out_of_range_floats_are_rejected() -> None:
    """A float image in 0..255 would otherwise give a meaningless PSNR."""
    _, high = fixture_pair("eval15", 1)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        psnr(high.astype(np.float32), high.astype(np.float32))


def test_batch_versions_agree_with_per_image(eval_pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    lows = np.stack([low for low, _ in eval_pairs]).astype(np.float32)
    highs = np.stack([high for _, high in eval_pairs]).astype(np.float32)
    got_psnr, got_ssim = batch_psnr(lows, highs).numpy(), batch_ssim(lows, highs).numpy()
    assert got_psnr.shape == got_ssim.shape == (3,)
    assert got_psnr.dtype == got_ssim.dtype == np.float32
    want_psnr = [psnr(low, high) for low, high in eval_pairs]
    want_ssim = [ssim(low, high) for low, high in eval_pairs]
    np.testing.assert_allclose(got_psnr, want_psnr, atol=1e-3)
    np.testing.assert_allclose(got_ssim, want_ssim, atol=1e-4)


def test_batch_versions_scale_uint8_and_cast_float64() -> None:
    pairs = fixture_pairs("eval15")
    lows, highs = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    want = batch_psnr(lows.astype(np.float64) / 255.0, highs.astype(np.float64) / 255.0).numpy()
    np.testing.assert_allclose(batch_psnr(lows, highs).numpy(), want, atol=1e-3)
    np.testing.assert_allclose(
        batch_ssim(lows, highs).numpy(), batch_ssim(lows / 255.0, highs / 255.0).numpy(), atol=1e-5
    )
    assert np.isinf(batch_psnr(highs, highs).numpy()).all()


def test_batch_ssim_agrees_with_tensorflows_own_definition() -> None:
    """The separable implementation is a speed-up, not a different metric."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    pred = rng.random((2, 60, 70, 3)).astype(np.float32)
    target = np.clip(pred + rng.normal(0, 0.1, pred.shape), 0, 1).astype(np.float32)
    reference = tf.image.ssim(pred, target, 1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03)
    np.testing.assert_allclose(batch_ssim(pred, target).numpy(), reference.numpy(), atol=2e-5)
