"""The train_denoiser stage's work: fit the denoiser on the trained curves, build the shipped model.

The curves are frozen; only the denoiser's three strengths (`src.model.denoise`) are chosen,
by grid search on validation pairs, never test: the same protocol that fits evaluate's TV
weight, so the two are compared on equal terms. The curves' outputs on those pairs are
computed once and every candidate is scored on them.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm import tqdm

from src.config import DenoiserConfig
from src.data.images import read_rgb, to_unit_float
from src.evaluate.metrics import batch_psnr, batch_ssim, quality_score
from src.infer.enhancer import Enhancer, architecture_of
from src.model.denoise import compiled_tv, denoiser_layer
from src.model.networks import CURVE_NET, build_dce_net, inference_model, precision_policy

Strengths = tuple[float, float, float]
STRENGTH_NAMES = ("luma_weight", "chroma_weight", "gain_power")


@dataclasses.dataclass(frozen=True)
class Case:
    """One val pair as the denoiser sees it: the gate's strength, the curves' output, the input."""

    low: tf.Tensor
    enhanced: tf.Tensor
    high: tf.Tensor
    strength: float  # the exposure gate's (1 without a gate): finish() scales the denoiser by it


@dataclasses.dataclass(frozen=True)
class Fit:
    strengths: Strengths | None  # None: denoiser.kind none
    scores: dict[str, float]  # val_psnr, val_ssim, val_score of the finished image; curves_* without it
    grid: pd.DataFrame  # every candidate's scores


def curve_cases(curves: keras.Model, pairs: pd.DataFrame) -> list[Case]:
    """The curves' outputs (gate included) on the pairs, computed once."""
    enhancer = Enhancer(curves)
    cases = []
    for item in tqdm(pairs.itertuples(index=False), total=len(pairs), desc="curves on val", file=sys.stderr):
        low = to_unit_float(read_rgb(item.low))
        strength = enhancer.strength_of(low)
        cases.append(
            Case(
                low=tf.constant(low[None]),
                enhanced=tf.constant(np.clip(enhancer(low), 0.0, 1.0)[None]),
                high=tf.constant(to_unit_float(read_rgb(item.high))[None]),
                strength=1.0 if strength is None else strength,
            )
        )
    return cases


def _scores(cases: list[Case], strengths: Strengths | None) -> dict[str, float]:
    psnrs, ssims = [], []
    for case in cases:
        out = case.enhanced
        if strengths is not None:
            denoised = compiled_tv()(out, case.low, *(tf.constant(v, tf.float32) for v in strengths))
            out = out + case.strength * (denoised - out)
        psnrs.append(float(batch_psnr(out, case.high)[0]))
        ssims.append(float(batch_ssim(out, case.high)[0]))
    psnr, ssim = float(np.mean(psnrs)), float(np.mean(ssims))
    return {"val_psnr": psnr, "val_ssim": ssim, "val_score": quality_score(psnr, ssim)}


def fit_denoiser(cases: list[Case], cfg: DenoiserConfig) -> Fit:
    """The grid point of `cfg` with the best mean PSNR + 25·SSIM on the cases (ties: the first)."""
    alone = _scores(cases, None)
    curves = {f"curves_{k}": v for k, v in alone.items()}
    if cfg.kind == "none":
        return Fit(None, {**alone, **curves}, pd.DataFrame())
    rows = []
    grid = list(itertools.product(cfg.luma_weights, cfg.chroma_weights, cfg.gain_powers))
    for strengths in tqdm(grid, desc="denoiser fit", file=sys.stderr):
        rows.append({**dict(zip(STRENGTH_NAMES, strengths, strict=True)), **_scores(cases, strengths)})
    table = pd.DataFrame(rows)
    best = table.iloc[int(np.argmax(table["val_score"].to_numpy()))]
    strengths = tuple(float(best[name]) for name in STRENGTH_NAMES)
    scores = {k: float(best[k]) for k in ("val_psnr", "val_ssim", "val_score")}
    return Fit(strengths, {**scores, **curves}, table)


def with_denoiser(curves: keras.Model, strengths: Strengths | None) -> keras.Model:
    """The curves model's graph rebuilt in float32 with the denoiser added (or without one)."""
    arch = architecture_of(curves)
    with precision_policy("float32"):
        fresh = build_dce_net(arch.iterations, arch.filters, arch.variant)
    names = [CURVE_NET] if arch.variant == "zero_dce_pp" else [f"conv{i}" for i in range(1, 8)]
    for name in names:
        fresh.get_layer(name).set_weights(curves.get_layer(name).get_weights())
    layer = denoiser_layer(*strengths) if strengths is not None else None
    return inference_model(fresh, arch.scale_factor, layer, arch.gate_band)
