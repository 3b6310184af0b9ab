"""Gamma fit, CLAHE and TV-denoise baselines on the fixture images."""

from __future__ import annotations

import time

import numpy as np
import pytest

from src.data.images import read_rgb, to_unit_float
from src.evaluate.baselines import (
    GAMMA_BOUNDS,
    apply_gamma,
    clahe,
    fit_gamma,
    fit_tv_weight,
    mean_psnr_for_gamma,
    tv_denoise,
)
from src.evaluate.metrics import psnr, ssim
from tests.support.data import SAMPLE_DATASET, fixture_pair, fixture_pairs

TV_GRID = (0.0, 0.02, 0.05, 0.1, 0.15)


def test_fit_recovers_gamma_of_synthetic_float_pair() -> None:
    _, high = fixture_pair("our485", 2)
    target = to_unit_float(high, np.float64)
    low = target ** (1 / 0.4)
    assert fit_gamma([low], [target]) == pytest.approx(0.4, abs=1e-3)


def test_fit_recovers_gamma_through_8bit_quantisation() -> None:
    pairs = fixture_pairs("our485")[:3]
    highs = [high for _, high in pairs]
    lows = [np.round(255 * to_unit_float(high, np.float64) ** (1 / 0.4)).astype(np.uint8) for high in highs]
    assert fit_gamma(lows, highs) == pytest.approx(0.4, abs=0.01)


def test_fit_on_real_pairs_beats_every_other_gamma_by_direct_psnr() -> None:
    """The sufficient-statistics objective must agree with PSNR computed pixel by pixel."""
    pairs = fixture_pairs("our485")
    lows, highs = [p[0] for p in pairs], [p[1] for p in pairs]
    gamma = fit_gamma(iter(lows), iter(highs))
    assert GAMMA_BOUNDS[0] < gamma < 1.0  # LOL lows are dark: the fit must brighten

    def direct(g: float) -> float:
        return float(np.mean([psnr(apply_gamma(low, g), high) for low, high in pairs]))

    assert mean_psnr_for_gamma(lows, highs, gamma) == pytest.approx(direct(gamma), abs=1e-4)
    best = direct(gamma)
    for other in (*np.linspace(*GAMMA_BOUNDS, 15), gamma - 0.01, gamma + 0.01):
        assert direct(float(other)) <= best + 1e-6
    assert best > direct(1.0) + 3.0  # far better than leaving the image alone


def test_float_copies_of_8bit_images_fit_the_same_gamma_as_uint8() -> None:
    """Callers pass to_unit_float output; it must take the exact 8-bit route and agree."""
    pairs = fixture_pairs("our485")
    lows, highs = [p[0] for p in pairs], [p[1] for p in pairs]
    want = fit_gamma(lows, highs)
    for dtype in (np.float32, np.float64):
        as_float = [to_unit_float(image, dtype) for image in lows]
        assert fit_gamma(as_float, [to_unit_float(h, dtype) for h in highs]) == pytest.approx(want, abs=1e-6)
    # One ulp off the 8-bit grid (0 stays 0): the general, sorting route must agree too.
    nudged = [np.nextafter(to_unit_float(image, np.float64), 0.0) for image in lows]
    assert fit_gamma(nudged, highs) == pytest.approx(want, abs=1e-4)


def test_fit_input_errors() -> None:
    low, high = fixture_pair("our485", 2)
    with pytest.raises(ValueError, match="no image pairs"):
        fit_gamma([], [])
    with pytest.raises(ValueError, match="shapes differ"):
        fit_gamma([low], [high[:, :-1]])
    with pytest.raises(ValueError):
        fit_gamma([low, low], [high])


def test_apply_gamma_is_monotonic() -> None:
    ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32).reshape(16, 16, 1).repeat(3, axis=2)
    for gamma in (0.25, 0.5, 1.0, 1.4):
        out = apply_gamma(ramp, gamma).ravel()
        assert out.dtype == np.float32
        assert np.all(np.diff(out[::3]) >= 0)  # brighter in, brighter out
        assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.all(apply_gamma(ramp, 0.3) >= apply_gamma(ramp, 0.6))  # smaller gamma brightens
    np.testing.assert_allclose(apply_gamma(ramp, 1.0), ramp)
    with pytest.raises(ValueError, match="positive"):
        apply_gamma(ramp, 0.0)


def test_apply_gamma_scales_uint8_first() -> None:
    low, _ = fixture_pair("eval15", 1)
    np.testing.assert_allclose(apply_gamma(low, 0.5), np.sqrt(low / 255.0), rtol=1e-6)


def test_clahe_keeps_shape_range_and_brightens_a_dark_image() -> None:
    low, high = fixture_pair("eval15", 1)
    out = clahe(low, clip_limit=0.01)
    assert out.shape == low.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.mean() > to_unit_float(low).mean() + 0.1
    assert psnr(out, high) > psnr(low, high)
    assert not np.allclose(clahe(low, clip_limit=0.05), out)  # the clip limit matters


def noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """A float32 copy in [0, 1] with Gaussian noise, like a brightened dark photo's sensor noise."""
    unit = to_unit_float(image)
    noise = np.random.default_rng(seed).normal(0.0, sigma, unit.shape)
    return np.clip(unit + noise, 0.0, 1.0).astype(np.float32)


def test_tv_denoise_brings_a_noisy_image_closer_to_the_clean_one() -> None:
    _, high = fixture_pair("eval15", 1)
    clean = to_unit_float(high)
    dirty = noisy(high, 0.08)
    out = tv_denoise(dirty, 0.1)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert psnr(out, clean) > psnr(dirty, clean) + 2.0
    assert ssim(out, clean) > ssim(dirty, clean)
    assert psnr(tv_denoise(dirty, 0.02), clean) < psnr(out, clean)  # the weight sets the strength


def test_tv_weight_zero_is_the_identity() -> None:
    low, _ = fixture_pair("eval15", 1)
    dirty = noisy(low, 0.05)
    np.testing.assert_array_equal(tv_denoise(dirty, 0.0), dirty)
    np.testing.assert_array_equal(tv_denoise(low, 0.0), to_unit_float(low))  # uint8 is scaled first
    with pytest.raises(ValueError, match=">= 0"):
        tv_denoise(dirty, -0.1)


def test_fit_tv_weight_denoises_noisy_pairs_and_leaves_clean_ones_alone() -> None:
    highs = [high for _, high in fixture_pairs("our485")[:3]]
    outputs = [noisy(high, 0.08, seed) for seed, high in enumerate(highs)]
    weight = fit_tv_weight(outputs, highs, TV_GRID)
    assert weight > 0

    def mean_psnr(w: float) -> float:
        return float(
            np.mean([psnr(tv_denoise(out, w), high) for out, high in zip(outputs, highs, strict=True)])
        )

    assert mean_psnr(weight) > mean_psnr(0.0) + 2.0
    # Outputs already equal to the truth: any smoothing only loses (capped PSNR keeps 0 comparable).
    clean = [to_unit_float(high) for high in highs]
    assert fit_tv_weight(iter(clean), iter(highs), TV_GRID) == 0.0
    assert fit_tv_weight(clean, highs, [0.1, 0.02]) == 0.02  # the grid's order does not matter


def test_fit_tv_weight_input_errors() -> None:
    _, high = fixture_pair("eval15", 1)
    with pytest.raises(ValueError, match="no image pairs"):
        fit_tv_weight([], [], TV_GRID)
    with pytest.raises(ValueError, match="non-empty"):
        fit_tv_weight([high], [high], [])
    with pytest.raises(ValueError, match=">= 0"):
        fit_tv_weight([high], [high], [0.1, -0.1])
    with pytest.raises(ValueError):
        fit_tv_weight([high, high], [high], TV_GRID)


@pytest.mark.skipif(not SAMPLE_DATASET.is_dir(), reason="real LOL sample not on this machine")
def test_fit_on_real_sample_is_fast_and_brightens() -> None:
    low_dir, high_dir = SAMPLE_DATASET / "our485" / "low", SAMPLE_DATASET / "our485" / "high"
    files = sorted(path.name for path in low_dir.glob("*.png"))
    lows, highs = [read_rgb(low_dir / f) for f in files], [read_rgb(high_dir / f) for f in files]
    start = time.perf_counter()
    gamma = fit_gamma(lows, highs)
    assert time.perf_counter() - start < 10.0
    assert 0.1 < gamma < 0.6
