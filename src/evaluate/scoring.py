"""Full-resolution evaluation of a trained model beside honest baselines.

Every method is scored on the same images with the same metrics, so the report can
say plainly whether the network beats one tuned gamma curve, and whether its denoiser
earns its place: `curves` is the model without it, `curves_tv` the curves followed by
skimage's TV with its weight fitted on validation, the classical filter it must beat.
`normal_light` feeds the model eval15's well-exposed ground truths, which a deployed
enhancer will meet too: a good one leaves them nearly alone instead of blowing them out.
`mixed_light` darkens part of each of them (`src.evaluate.mixed_light`): the photos with
dark regions beside lit ones that real low-light photography is full of.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import keras
import numpy as np
import pandas as pd
from tqdm import tqdm

from src.config import EvaluateConfig
from src.data.images import read_rgb, to_unit_float
from src.evaluate.baselines import apply_gamma, clahe, fit_gamma, fit_tv_weight, tv_denoise
from src.evaluate.metrics import PSNR_CAP_DB, psnr, ssim
from src.evaluate.mixed_light import MIXED_LIGHT, score_mixed_light, summarise_mixed_light
from src.infer.enhancer import Enhancer

Enhance = Callable[[np.ndarray], np.ndarray]

METHODS = ("zero_dce", "curves", "curves_tv", "input", "gamma", "clahe")
SCOPES = ("test", "eval15")
# The `subset` of per-image rows where eval15's ground truths were the input; kept out of SCOPES.
NORMAL_LIGHT = "normal_light"
NORMAL_LIGHT_METRICS = ("psnr_vs_input", "brightness", "brightness_in", "clipped_pct")
MIXED_LIGHT_METRICS = ("psnr", "ssim", "lit_psnr_vs_input", "lit_brightness_shift", "dark_psnr")
# Values that an 8-bit save rounds to 0 or 255: detail there is lost for good.
_CLIP_LOW, _CLIP_HIGH = 0.5 / 255, 254.5 / 255


def median_latency_ms(enhancer: Enhancer, height: int, width: int, runs: int) -> float:
    """Median wall time of one forward pass after two warm-up calls (tracing, XLA, allocator)."""
    image = np.full((height, width, 3), 0.2, np.float32)
    for _ in range(2):
        enhancer(image)
    times = []
    for _ in range(max(runs, 1)):
        start = time.perf_counter()
        enhancer(image)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def fit_gamma_on(pairs: pd.DataFrame) -> float:
    lows = [
        to_unit_float(read_rgb(p)) for p in tqdm(pairs["low"], desc="gamma fit: reading", file=sys.stderr)
    ]
    highs = [to_unit_float(read_rgb(p)) for p in pairs["high"]]
    return fit_gamma(lows, highs)


def remember_last(enhance: Enhance) -> Enhance:
    """`enhance`, answering a repeat call on the very same array from memory.

    score_images hands each low image to every method in turn; curves and
    curves_tv both start with the curves' output, and this runs them once for both.
    The last input is held (so its id cannot be reused) and compared by
    identity; nothing here mutates images in place.
    """
    last: list[np.ndarray | None] = [None, None]

    def call(image: np.ndarray) -> np.ndarray:
        if last[0] is not image:
            last[0], last[1] = image, enhance(image)
        return last[1]  # type: ignore[return-value]

    return call


def model_outputs_on(pairs: pd.DataFrame, enhance: Enhance) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The enhancer's outputs on the pairs' lows (clipped to [0, 1], as scored) and the highs."""
    outputs, highs = [], []
    for item in tqdm(
        pairs.itertuples(index=False), total=len(pairs), desc="tv fit: enhancing", file=sys.stderr
    ):
        outputs.append(np.clip(enhance(to_unit_float(read_rgb(item.low))), 0.0, 1.0))
        highs.append(to_unit_float(read_rgb(item.high)))
    return outputs, highs


def fit_tv_on(val: pd.DataFrame, enhance: Enhance, weights: tuple[float, ...], images: int) -> float:
    """The TV weight for curves_tv, fitted on the first `images` val pairs (0: all), never on test."""
    pairs = val.head(images) if images > 0 else val
    outputs, highs = model_outputs_on(pairs, enhance)
    return fit_tv_weight(outputs, highs, weights)


def _identity(image: np.ndarray) -> np.ndarray:
    return image


def low_light_methods(
    enhance: Enhance, curves: Enhance, gamma: float, tv_weight: float, clip_limit: float
) -> dict[str, Enhance]:
    """Every method of METHODS, in that order, as a callable; the curves run once per image."""
    curves_once = remember_last(curves)
    return {
        "zero_dce": enhance,
        "curves": curves_once,
        "curves_tv": lambda x: tv_denoise(np.clip(curves_once(x), 0.0, 1.0), tv_weight),
        "input": _identity,
        "gamma": lambda x: apply_gamma(x, gamma),
        "clahe": lambda x: clahe(x, clip_limit),
    }


def score_images(test: pd.DataFrame, methods: dict[str, Enhance]) -> pd.DataFrame:
    """One row per (image, method): PSNR, SSIM and mean brightness of the output."""
    rows = []
    for item in tqdm(test.itertuples(index=False), total=len(test), desc="evaluating", file=sys.stderr):
        low = to_unit_float(read_rgb(item.low))
        high = to_unit_float(read_rgb(item.high))
        for method, enhance in methods.items():
            output = np.clip(enhance(low), 0.0, 1.0)
            rows.append(
                {
                    "name": item.name,
                    "subset": item.subset,
                    "method": method,
                    "psnr": psnr(output, high),
                    "ssim": ssim(output, high),
                    "brightness": float(output.mean()),
                    "target_brightness": float(high.mean()),
                }
            )
    return pd.DataFrame(rows)


def clipped_pct(image: np.ndarray) -> float:
    """Percent of all values (pixels x channels) that 8-bit rounds to 0 or 255: both tails."""
    unit = to_unit_float(image)
    return float(100.0 * np.mean((unit <= _CLIP_LOW) | (unit >= _CLIP_HIGH)))


def score_normal_light(test: pd.DataFrame, methods: dict[str, Enhance]) -> pd.DataFrame:
    """eval15's normal-light (`high`) images as the input: how far each method moves them.

    There is no ground truth for "enhancing" a well-exposed photo; the input itself
    is the reference, so PSNR is against the input (capped at PSNR_CAP_DB: the
    identity would be infinite) and the brightness before and after is kept.
    """
    eval15 = test[test["subset"] == "eval15"]
    rows = []
    for item in tqdm(eval15.itertuples(index=False), total=len(eval15), desc="normal light", file=sys.stderr):
        image = to_unit_float(read_rgb(item.high))
        for method, enhance in methods.items():
            output = np.clip(enhance(image), 0.0, 1.0)
            rows.append(
                {
                    "name": item.name,
                    "subset": NORMAL_LIGHT,
                    "method": method,
                    "brightness": float(output.mean()),
                    "psnr_vs_input": min(psnr(output, image), PSNR_CAP_DB),
                    "mse_vs_input": float(np.mean(np.square(output.astype(np.float64) - image))),
                    "brightness_in": float(image.mean()),
                    "clipped_pct": clipped_pct(output),
                }
            )
    return pd.DataFrame(rows)


def summarise_normal_light(per_image: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per method over the normal-light rows: means, and PSNR against the input pooled.

    A method may return some photos exactly unchanged (the exposure gate does), whose
    PSNR is infinite; a mean of capped values would then say more about the cap than
    the method. So `psnr_vs_input` is 10·log10(1 / MSE averaged over all the images),
    which is never above the mean of per-image PSNRs, `worst_psnr_vs_input` is the
    lowest per-image value and `unchanged` counts photos returned bit for bit.
    """
    frame = per_image[per_image["subset"] == NORMAL_LIGHT]
    summary = {}
    for method, group in frame.groupby("method", sort=False):
        mse = float(group["mse_vs_input"].mean())
        values = {metric: round(float(group[metric].mean()), 4) for metric in NORMAL_LIGHT_METRICS}
        values["psnr_vs_input"] = round(
            min(10.0 * np.log10(1.0 / mse), PSNR_CAP_DB) if mse > 0 else PSNR_CAP_DB, 4
        )
        values["worst_psnr_vs_input"] = round(float(group["psnr_vs_input"].min()), 4)
        values["unchanged"] = int((group["mse_vs_input"] == 0).sum())
        values["images"] = len(group)
        summary[method] = values
    return summary


def low_light_rows(per_image: pd.DataFrame) -> pd.DataFrame:
    """The rows whose input was a low-light image: not the normal- or mixed-light ones, whose
    input was made from a ground truth."""
    return per_image[~per_image["subset"].isin((NORMAL_LIGHT, MIXED_LIGHT))]


def summarise(per_image: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """Means per scope (the whole test split, and eval15 alone) and method, over low-light inputs."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    low_light = low_light_rows(per_image)
    for scope in SCOPES:
        frame = low_light if scope == "test" else low_light[low_light["subset"] == "eval15"]
        summary[scope] = {
            method: {
                "psnr": round(float(group["psnr"].mean()), 4),
                "ssim": round(float(group["ssim"].mean()), 4),
                "brightness": round(float(group["brightness"].mean()), 4),
                "images": len(group),
            }
            for method, group in frame.groupby("method", sort=False)
        }
    return summary


def median_tv_ms(image: np.ndarray, weight: float, runs: int) -> float:
    """Median wall time of `tv_denoise` on a real curves output: skimage iterates to a tolerance,
    so a flat test image would time a few iterations only."""
    times = []
    for _ in range(max(runs, 1)):
        start = time.perf_counter()
        tv_denoise(image, weight)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def evaluate(
    model: keras.Model,
    curves: keras.Model,
    test: pd.DataFrame,
    train: pd.DataFrame,
    val: pd.DataFrame,
    cfg: EvaluateConfig,
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Score the model, its curves alone and the baselines on the test split; returns per-image
    rows and a summary.

    Everything fitted is fitted off test: the gamma on train, the TV weight on val.
    """
    enhancer = Enhancer(model, cfg.precision)
    curves_enhancer = Enhancer(curves, cfg.precision)
    gamma = fit_gamma_on(train)
    tv_weight = fit_tv_on(val, curves_enhancer, cfg.tv_weights, cfg.tv_fit_images)
    methods = low_light_methods(enhancer, curves_enhancer, gamma, tv_weight, cfg.clahe_clip_limit)
    low_light = score_images(test, methods)
    normal_light = score_normal_light(test, {"zero_dce": enhancer, "input": _identity})
    eval15 = test[test["subset"] == "eval15"]
    mixed_light = score_mixed_light(
        eval15, {"zero_dce": enhancer, "input": _identity}, cfg.mixed_light_factors, cfg.mixed_light_seed
    )
    per_image = pd.concat([low_light, normal_light, mixed_light], ignore_index=True)
    summary: dict[str, object] = dict(summarise(per_image))
    summary[NORMAL_LIGHT] = summarise_normal_light(per_image)
    summary[MIXED_LIGHT] = summarise_mixed_light(per_image)
    summary["gamma"] = round(gamma, 4)
    summary["tv_weight"] = tv_weight
    summary["inference_ms_600x400"] = round(median_latency_ms(enhancer, 400, 600, cfg.timing_runs), 1)
    # TV is timed on the first test image's curves output, 600x400 on LOL, beside the model.
    timed = np.clip(curves_enhancer(to_unit_float(read_rgb(test["low"].iloc[0]))), 0.0, 1.0)
    summary["tv_ms_600x400"] = round(median_tv_ms(timed, tv_weight, cfg.timing_runs), 1)
    return per_image, summary


def flat_metrics(summary: dict[str, object]) -> dict[str, float]:
    """`eval15_zero_dce_psnr`-style names for MLflow, which wants flat numeric metrics."""
    flat: dict[str, float] = {}
    for scope in SCOPES:
        for method, values in summary[scope].items():  # type: ignore[union-attr]
            for metric in ("psnr", "ssim", "brightness"):
                flat[f"{scope}_{method}_{metric}"] = values[metric]
    for method, values in summary[NORMAL_LIGHT].items():  # type: ignore[union-attr]
        for metric in (*NORMAL_LIGHT_METRICS, "worst_psnr_vs_input"):
            flat[f"{NORMAL_LIGHT}_{method}_{metric}"] = values[metric]
    for method, values in summary[MIXED_LIGHT].items():  # type: ignore[union-attr]
        for metric in (*MIXED_LIGHT_METRICS, "worst_lit_brightness_shift"):
            flat[f"{MIXED_LIGHT}_{method}_{metric}"] = values[metric]
    flat["gamma_fitted"] = float(summary["gamma"])  # type: ignore[arg-type]
    flat["tv_weight_fitted"] = float(summary["tv_weight"])  # type: ignore[arg-type]
    flat["inference_ms_600x400"] = float(summary["inference_ms_600x400"])  # type: ignore[arg-type]
    flat["tv_ms_600x400"] = float(summary["tv_ms_600x400"])  # type: ignore[arg-type]
    return flat
