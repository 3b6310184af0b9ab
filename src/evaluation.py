"""Full-resolution evaluation of a trained model beside honest baselines.

Every method is scored on the same images with the same metrics, so the report can
say plainly whether the network beats one tuned gamma curve.
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

from src.baselines import apply_gamma, clahe, fit_gamma
from src.config import EvaluateConfig
from src.images import read_rgb, to_unit_float
from src.inference import Enhancer
from src.metrics import psnr, ssim

METHODS = ("zero_dce", "input", "gamma", "clahe")
SCOPES = ("test", "eval15")


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


def score_images(test: pd.DataFrame, methods: dict[str, Callable[[np.ndarray], np.ndarray]]) -> pd.DataFrame:
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


def summarise(per_image: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """Means per scope (the whole test split, and eval15 alone) and method."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for scope in SCOPES:
        frame = per_image if scope == "test" else per_image[per_image["subset"] == "eval15"]
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


def evaluate(
    model: keras.Model, test: pd.DataFrame, train: pd.DataFrame, cfg: EvaluateConfig
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Score the model and the baselines on the test split; returns per-image rows and a summary."""
    enhancer = Enhancer(model, cfg.precision)
    gamma = fit_gamma_on(train)
    methods = {
        "zero_dce": enhancer,
        "input": lambda x: x,
        "gamma": lambda x: apply_gamma(x, gamma),
        "clahe": lambda x: clahe(x, cfg.clahe_clip_limit),
    }
    per_image = score_images(test, methods)
    summary: dict[str, object] = dict(summarise(per_image))
    summary["gamma"] = round(gamma, 4)
    summary["inference_ms_600x400"] = round(median_latency_ms(enhancer, 400, 600, cfg.timing_runs), 1)
    return per_image, summary


def flat_metrics(summary: dict[str, object]) -> dict[str, float]:
    """`eval15_zero_dce_psnr`-style names for MLflow, which wants flat numeric metrics."""
    flat: dict[str, float] = {}
    for scope in SCOPES:
        for method, values in summary[scope].items():  # type: ignore[union-attr]
            for metric in ("psnr", "ssim", "brightness"):
                flat[f"{scope}_{method}_{metric}"] = values[metric]
    flat["gamma_fitted"] = float(summary["gamma"])  # type: ignore[arg-type]
    flat["inference_ms_600x400"] = float(summary["inference_ms_600x400"])  # type: ignore[arg-type]
    return flat
