"""Non-learned baselines for the evaluation report: a fitted gamma curve, CLAHE, and
a classical denoiser (total variation) to put after the model.

A learned enhancer is only worth its training if it beats what one global
exponent or a classic contrast equalizer does on the same test pairs. The gamma
is fitted on the train split only (with the targets, so it is a strong,
supervised baseline); CLAHE uses no targets at all. Brightening a dark image
lifts its sensor noise too, which costs SSIM; the TV denoiser measures how much
of that a textbook post-filter wins back, with its strength fitted on validation.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from skimage.exposure import equalize_adapthist
from skimage.restoration import denoise_tv_chambolle
from tqdm import tqdm

from src.data.images import to_unit_float
from src.evaluate.metrics import PSNR_CAP_DB, psnr, quality_score, ssim

GAMMA_BOUNDS = (0.05, 1.5)
# A coarse grid first, so the bounded search refines the best basin rather than
# whichever local optimum it happens to meet; the objective is cheap (see fit_gamma).
_GRID_POINTS = 30
_GAMMA_XATOL = 1e-5
# An exactly reproduced pair would have infinite PSNR and swamp the mean; 1e-10 is 100 dB.
_MSE_FLOOR = 1e-10


def apply_gamma(img: np.ndarray, gamma: float) -> np.ndarray:
    """Apply output = input ** gamma to an image, as float32 in [0, 1] (gamma < 1 brightens)."""
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    return np.power(to_unit_float(img), np.float32(gamma))


def clahe(img: np.ndarray, clip_limit: float) -> np.ndarray:
    """CLAHE (skimage `equalize_adapthist`, on the HSV value channel) as float32 in [0, 1].

    skimage stretches the input to its full range before equalizing and the
    result after, so the output always spans [0, 1]; that is part of the method.
    """
    unit = to_unit_float(img)
    if unit.ndim != 3 or unit.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {unit.shape}")
    return np.clip(equalize_adapthist(unit, clip_limit=clip_limit), 0.0, 1.0).astype(np.float32)


def tv_denoise(img: np.ndarray, weight: float) -> np.ndarray:
    """Total-variation denoising (Chambolle, all channels jointly) as float32 in [0, 1].

    A larger weight smooths more (and flattens fine texture with the noise);
    weight 0 returns the input unchanged, so a fitted 0 means "do not denoise".
    """
    if not weight >= 0:
        raise ValueError(f"TV weight must be >= 0, got {weight}")
    unit = to_unit_float(img)
    if weight == 0:
        return unit
    return np.clip(denoise_tv_chambolle(unit, weight=weight, channel_axis=-1), 0.0, 1.0).astype(np.float32)


def fit_tv_weight(
    outputs: Iterable[np.ndarray], highs: Iterable[np.ndarray], weights: Sequence[float]
) -> float:
    """The weight of `weights` whose `tv_denoise` maximises mean `quality_score` over the pairs.

    Fit it on VALIDATION pairs only (the model's outputs on val lows against val
    highs), never on test or eval15: the weight is a hyperparameter of the
    method, and choosing it on the images it is scored on would flatter it.
    A grid rather than a search because each point costs a denoise and an SSIM
    of every image, and the optimum is broad. Ties go to the smaller weight
    (less processing). PSNR is capped at PSNR_CAP_DB so that an exactly
    reproduced pair cannot make every candidate infinite.
    """
    pairs = [(to_unit_float(out), to_unit_float(high)) for out, high in zip(outputs, highs, strict=True)]
    if not pairs:
        raise ValueError("no image pairs to fit the TV weight on")
    grid = sorted({float(w) for w in weights})
    if not grid or grid[0] < 0:
        raise ValueError(f"TV weights must be a non-empty list of values >= 0, got {list(weights)}")
    scores = [_mean_quality(pairs, weight) for weight in tqdm(grid, desc="tv fit", file=sys.stderr)]
    return grid[int(np.argmax(scores))]  # argmax takes the first of equal maxima: the smallest weight


def _mean_quality(pairs: Sequence[tuple[np.ndarray, np.ndarray]], weight: float) -> float:
    total = 0.0
    for output, high in pairs:
        denoised = tv_denoise(output, weight)
        total += quality_score(min(psnr(denoised, high), PSNR_CAP_DB), ssim(denoised, high))
    return total / len(pairs)


def fit_gamma(
    lows: Iterable[np.ndarray],
    highs: Iterable[np.ndarray],
    bounds: tuple[float, float] = GAMMA_BOUNDS,
) -> float:
    """The single gamma (output = low ** gamma) maximising mean PSNR over the pairs.

    No downsampling: the pairs are first reduced to exact sufficient statistics.
    Pixels sharing a low value v all map to v ** gamma, so a pair's squared error
    is sum_v count_v * (v ** gamma - mean_high_v) ** 2 plus a constant (the
    spread of the high values within each level). For 8-bit lows that is at most
    256 terms a pair, which makes each evaluation of the objective microseconds
    and the fit exact at full resolution. Float lows that are exactly k / 255
    (8-bit images put through to_unit_float) take the same route; other float
    lows are grouped by their distinct values (a sort: slower, same result).
    The inputs may be generators, so a caller can stream images from disk; only
    the statistics are kept. Measured: 350 LOL train pairs at 600x400 fit in about
    2 s on 2 CPU cores, after reading.
    """
    objective = _GammaObjective.from_pairs(lows, highs)
    grid = np.linspace(bounds[0], bounds[1], _GRID_POINTS)
    scores = [objective.mean_psnr(gamma) for gamma in grid]
    best = int(np.argmax(scores))
    bracket = (grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)])
    result = minimize_scalar(
        lambda gamma: -objective.mean_psnr(gamma),
        bounds=bracket,
        method="bounded",
        options={"xatol": _GAMMA_XATOL},
    )
    refined = float(result.x)
    return refined if objective.mean_psnr(refined) >= scores[best] else float(grid[best])


def mean_psnr_for_gamma(lows: Iterable[np.ndarray], highs: Iterable[np.ndarray], gamma: float) -> float:
    """Mean PSNR (dB, data range 1) of low ** gamma against high, through the same statistics as the fit."""
    return _GammaObjective.from_pairs(lows, highs).mean_psnr(gamma)


@dataclasses.dataclass(frozen=True)
class _GammaObjective:
    """The per-level statistics of all pairs, concatenated, with the pair each level belongs to."""

    levels: np.ndarray  # distinct low values in [0, 1]
    counts: np.ndarray  # pixels (x channels) at that level
    means: np.ndarray  # mean high value over those pixels
    pair_index: np.ndarray
    residual: np.ndarray  # per pair: sum of (high - mean of its level) ** 2, independent of gamma
    pixels: np.ndarray  # per pair: number of values

    @classmethod
    def from_pairs(cls, lows: Iterable[np.ndarray], highs: Iterable[np.ndarray]) -> _GammaObjective:
        stats = [_pair_stats(i, low, high) for i, (low, high) in enumerate(zip(lows, highs, strict=True))]
        if not stats:
            raise ValueError("no image pairs to fit gamma on")
        levels, counts, means, residual, pixels = zip(*stats, strict=True)
        return cls(
            levels=np.concatenate(levels),
            counts=np.concatenate(counts),
            means=np.concatenate(means),
            pair_index=np.repeat(np.arange(len(stats)), [len(level) for level in levels]),
            residual=np.asarray(residual),
            pixels=np.asarray(pixels, dtype=np.float64),
        )

    def mean_psnr(self, gamma: float) -> float:
        errors = self.counts * np.square(np.power(self.levels, gamma) - self.means)
        sse = np.bincount(self.pair_index, weights=errors, minlength=len(self.pixels)) + self.residual
        mse = np.maximum(sse / self.pixels, _MSE_FLOOR)
        return float(np.mean(-10.0 * np.log10(mse)))


def _pair_stats(
    index: int, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    low, high = np.asarray(low), np.asarray(high)
    if low.shape != high.shape:
        raise ValueError(f"pair {index}: shapes differ, low {low.shape} vs high {high.shape}")
    target = to_unit_float(high, np.float64).ravel()
    levels, inverse = _levels(low)
    counts = np.bincount(inverse, minlength=len(levels))
    sums = np.bincount(inverse, weights=target, minlength=len(levels))
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    residual = float(np.sum(np.square(target - means[inverse])))
    used = counts > 0
    return levels[used], counts[used].astype(np.float64), means[used], residual, target.size


def _levels(low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct low values in [0, 1] and each pixel's index into them (8-bit data: no sort needed)."""
    codes = _eight_bit_codes(low)
    if codes is not None:
        return np.arange(256, dtype=np.float64) / 255.0, codes
    return np.unique(to_unit_float(low, np.float64).ravel(), return_inverse=True)


def _eight_bit_codes(low: np.ndarray) -> np.ndarray | None:
    """The 0..255 codes of uint8 data, or of floats that are exactly k / 255 (uint8 put through
    to_unit_float, which is how callers usually hand images over); None for anything else."""
    if low.dtype == np.uint8:
        return low.ravel()
    if not np.issubdtype(low.dtype, np.floating):
        return None
    unit = to_unit_float(low, low.dtype.type)
    codes = np.rint(unit * 255).astype(np.uint8)
    if np.array_equal(codes.astype(low.dtype) / low.dtype.type(255), unit):
        return codes.ravel()
    return None
