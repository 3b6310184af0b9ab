"""Mixed light: a paired test made from LOL itself for photos with dark regions beside lit ones.

eval15's normal-light images have part of the frame darkened by a smooth mask, in linear light
(as a real shadow or a falling-off lamp darkens), by a seeded factor. The original is the ground
truth. A good enhancer lifts the darkened part back towards it and leaves the lit part (and its
colours) as it was: the scores say both, separately. The masks are made by code from a seed,
so nothing but this file is needed to rebuild the test.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from src.data.images import read_rgb, to_unit_float
from src.evaluate.metrics import PSNR_CAP_DB, psnr, ssim

Enhance = Callable[[np.ndarray], np.ndarray]
MIXED_LIGHT = "mixed_light"  # the per-image rows' `subset`, and the summary's section
MASKS = ("half", "vignette", "blob")
# Pixels whose mask is below LIT (near-untouched) or above DARK (darkened by nearly the full factor):
# the two parts scored on their own; the smooth border between them counts in the whole-image scores.
LIT, DARK = 0.05, 0.95


def to_linear(srgb: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve undone (IEC 61966-2-1): values proportional to light."""
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def to_srgb(linear: np.ndarray) -> np.ndarray:
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


def mask(kind: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """[H, W] in [0, 1], 1 where the frame is darkened fully; smooth, so no edge is invented.

    half: one side of the frame (left, right, top or bottom) beyond a soft line near the middle;
    vignette: the border, falling off from a lit centre; blob: a Gaussian patch somewhere inside.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    y, x = y / (height - 1), x / (width - 1)  # both in [0, 1]
    if kind == "half":
        side = rng.integers(4)
        coordinate = (x, 1 - x, y, 1 - y)[side]
        edge = rng.uniform(0.4, 0.6)
        return 1 / (1 + np.exp(-(coordinate - edge) / 0.03))
    if kind == "vignette":
        radius = np.hypot(x - 0.5, y - 0.5) / np.hypot(0.5, 0.5)  # 0 at the centre, 1 in the corners
        start = rng.uniform(0.3, 0.5)
        t = np.clip((radius - start) / (0.85 - start), 0, 1)
        return t * t * (3 - 2 * t)
    if kind == "blob":
        cy, cx = rng.uniform(0.25, 0.75, size=2)
        sigma = rng.uniform(0.15, 0.25)
        aspect = width / height  # round in the image, not in the unit square
        return np.exp(-(((x - cx) * aspect) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
    raise ValueError(f"unknown mask {kind!r}; known: {', '.join(MASKS)}")


def darken(image: np.ndarray, weight: np.ndarray, factor: float) -> np.ndarray:
    """`image` with light multiplied by 1 - weight·(1 - factor): `factor` where weight is 1."""
    gain = 1.0 - weight[..., None] * (1.0 - factor)
    return to_srgb(to_linear(image.astype(np.float64)) * gain).astype(np.float32)


def _region_psnr(output: np.ndarray, reference: np.ndarray, where: np.ndarray) -> float:
    mse = float(np.mean(np.square(output[where].astype(np.float64) - reference[where])))
    return min(10.0 * np.log10(1.0 / mse), PSNR_CAP_DB) if mse > 0 else PSNR_CAP_DB


def score_mixed_light(
    pairs: pd.DataFrame, methods: dict[str, Enhance], factors: tuple[float, float], seed: int
) -> pd.DataFrame:
    """One row per (image, mask, method): the whole image against the original; the lit part
    against the input (and its brightness shift); the darkened part against the original."""
    rng = np.random.default_rng(seed)
    rows = []
    for item in tqdm(pairs.itertuples(index=False), total=len(pairs), desc="mixed light", file=sys.stderr):
        original = to_unit_float(read_rgb(item.high))
        for kind in MASKS:
            weight = mask(kind, *original.shape[:2], rng)
            factor = float(rng.uniform(*factors))
            mixed = darken(original, weight, factor)
            lit, dark = weight < LIT, weight > DARK
            for method, enhance in methods.items():
                output = np.clip(enhance(mixed), 0.0, 1.0)
                rows.append(
                    {
                        "name": item.name,
                        "subset": MIXED_LIGHT,
                        "mask": kind,
                        "factor": factor,
                        "method": method,
                        "psnr": psnr(output, original),
                        "ssim": ssim(output, original),
                        "lit_psnr_vs_input": _region_psnr(output, mixed, lit),
                        "lit_brightness_shift": float(output[lit].mean() - mixed[lit].mean()),
                        "dark_psnr": _region_psnr(output, original, dark),
                    }
                )
    return pd.DataFrame(rows)


def summarise_mixed_light(per_image: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per method: the means, and the largest brightness shift of a lit part (the 0.03 bar)."""
    frame = per_image[per_image["subset"] == MIXED_LIGHT]
    summary = {}
    for method, group in frame.groupby("method", sort=False):
        values = {
            metric: round(float(group[metric].mean()), 4)
            for metric in ("psnr", "ssim", "lit_psnr_vs_input", "lit_brightness_shift", "dark_psnr")
        }
        values["worst_lit_brightness_shift"] = round(float(group["lit_brightness_shift"].abs().max()), 4)
        values["images"] = len(group)
        summary[method] = values
    return summary
