"""Train the shadow network on synthetic shadows, then choose the lift's reference and threshold on val.

Inputs are the train split's normal-light images, box-filtered to the network's scale and darkened
by seeded fields (`src.light.shadows`); the target is each field's log factor, so no image is ever
a target. The lit-level quantile and the threshold are then chosen on val pairs' normal-light
images: evaluate's mixed-light test rebuilt with another seed (the lift's PSNR against the
originals), under a floor on the normal-light images themselves and dimmed copies of them (the
lift's PSNR against its input), so a lit photo, even a dim one, stays as it was.
"""

from __future__ import annotations

import dataclasses
import sys

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm import tqdm

from src.config import LightConfig
from src.data.images import read_rgb, to_unit_float
from src.errors import PipelineError
from src.evaluate.metrics import PSNR_CAP_DB, psnr
from src.evaluate.mixed_light import MASKS, darken, mask, to_linear, to_srgb
from src.light.network import (
    band_layer,
    brighten,
    brightest_region,
    build_light_gain,
    build_shadow_net,
    gain_from_darkening,
    lit_share,
    relative_darkening,
)
from src.light.shadows import shadow_log_field


def box_filter(image: np.ndarray, scale: int) -> np.ndarray:
    """The mean of each scale×scale block, partial blocks at the edges included: what
    `AveragePooling2D(scale, padding="same")` in front of the network computes."""
    return tf.nn.avg_pool2d(image[None], scale, scale, "SAME")[0].numpy()


def small_images(rows: pd.DataFrame, column: str, scale: int) -> list[np.ndarray]:
    return [
        box_filter(to_unit_float(read_rgb(path)), scale)
        for path in tqdm(rows[column], desc=f"reading {column}", file=sys.stderr, leave=False)
    ]


def shadowed_batch(
    images: list[np.ndarray], size: int, cfg: LightConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`size` random images (flipped at random), each under a random field: (inputs, log factors)."""
    inputs, targets = [], []
    for index in rng.integers(len(images), size=size):
        image = images[index]
        if rng.random() < 0.5:
            image = image[:, ::-1]
        log_field = shadow_log_field(*image.shape[:2], cfg.darkening, rng)
        inputs.append(to_srgb(to_linear(image.astype(np.float64)) * np.exp(log_field)[..., None]))
        targets.append(log_field[..., None])
    return np.asarray(inputs, np.float32), np.asarray(targets, np.float32)


def train_shadow_net(train_images: list[np.ndarray], cfg: LightConfig) -> tuple[keras.Model, list[float]]:
    """Adam (cosine decay) on the mean squared error of the log factor; returns the net and its
    mean loss per 100 steps."""
    keras.utils.set_random_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = build_shadow_net(cfg.filters)
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(cfg.learning_rate, cfg.steps))

    @tf.function
    def step(inputs: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(net(inputs, training=True) - targets))
        variables = net.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    losses, window = [], []
    with tqdm(range(cfg.steps), desc="shadow net", unit="step", file=sys.stderr) as bar:
        for i in bar:
            window.append(float(step(*shadowed_batch(train_images, cfg.batch_size, cfg, rng))))
            if (i + 1) % 100 == 0:
                losses.append(float(np.mean(window)))
                window = []
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return net, losses


@dataclasses.dataclass(frozen=True)
class LiftChoice:
    reference_quantile: float
    threshold: float
    # per (quantile, threshold): val mixed-light PSNR and normal-light PSNR (dimmed copies included)
    scores: dict[tuple[float, float], dict[str, float]]


def _lift(image: np.ndarray, darkening_small: np.ndarray, threshold: float) -> np.ndarray:
    """The shipped lift (src.light.network) in numpy, on one full-resolution image."""
    gain_small = keras.ops.convert_to_numpy(gain_from_darkening(darkening_small - threshold))
    gain = tf.image.resize(gain_small[None], image.shape[:2], "bilinear")[0].numpy()
    return np.clip(keras.ops.convert_to_numpy(brighten(image, gain)), 0.0, 1.0)


def _pooled_psnr(mses: list[float]) -> float:
    mse = float(np.mean(mses))
    return min(10.0 * np.log10(1.0 / mse), PSNR_CAP_DB) if mse > 0 else PSNR_CAP_DB


def choose_lift(
    net: keras.Model, originals: list[np.ndarray], cfg: LightConfig, factors: tuple[float, float]
) -> LiftChoice:
    """The (quantile, threshold) pair with the best mixed-light PSNR among those keeping normal
    light ≥ the floor.

    Normal light is every original as it is and dimmed by each of `cfg.dim_exposures` (in linear
    light, evenly): eval15 and real photos hold dim scenes that val's brighter ones do not show. It
    is scored as evaluate does (10·log10 of 1 / the MSE pooled over the images): an image left bit
    for bit as it was would make a mean of per-image PSNRs meaningless.
    """
    rng = np.random.default_rng(cfg.seed)
    grid = [(q, t) for q in cfg.reference_quantiles for t in cfg.thresholds]

    def darkenings(image: np.ndarray) -> dict[float, np.ndarray]:
        absolute = -net(box_filter(image, cfg.scale_factor)[None])
        return {q: relative_darkening(absolute, q)[0].numpy() for q in cfg.reference_quantiles}

    mixed_psnr = {key: [] for key in grid}
    normal_mse = {key: [] for key in grid}
    for original in tqdm(originals, desc="lift on val", file=sys.stderr, leave=False):
        for exposure in (1.0, *cfg.dim_exposures):
            normal = original if exposure == 1.0 else darken(original, np.ones(original.shape[:2]), exposure)
            own = darkenings(normal)
            for q, t in grid:
                lifted = _lift(normal, own[q], t)
                normal_mse[q, t].append(float(np.mean(np.square(lifted - normal.astype(np.float64)))))
        for kind in MASKS:
            weight = mask(kind, *original.shape[:2], rng)
            mixed = darken(original, weight, float(rng.uniform(*factors)))
            predicted = darkenings(mixed)
            for q, t in grid:
                mixed_psnr[q, t].append(psnr(_lift(mixed, predicted[q], t), original))
    scores = {
        key: {
            "mixed_psnr": float(np.mean(mixed_psnr[key])),
            "normal_psnr_vs_input": _pooled_psnr(normal_mse[key]),
        }
        for key in grid
    }
    allowed = [key for key in grid if scores[key]["normal_psnr_vs_input"] >= cfg.normal_floor_db]
    if not allowed:
        best = max(s["normal_psnr_vs_input"] for s in scores.values())
        raise PipelineError(
            f"light.thresholds: none keeps val normal-light images at light.normal_floor_db "
            f"({cfg.normal_floor_db} dB), the best reaches {best:.2f} dB; add larger thresholds"
        )
    q, t = max(allowed, key=lambda key: scores[key]["mixed_psnr"])
    return LiftChoice(q, t, scores)


# The scene gate's bands, from the train split. A region is lit across the band from the 95th
# percentile of the low-light images' brightest regions to the 5th of the normal-light images' (the
# exposure gate's rule). The lit share of the frame: from the low-light images' 99th percentile to
# the normal-light images' 10th. LOL's low-light images hold almost no lit region (their 95th
# percentile share is 0), where real night photos have lamps and windows; the wider quantiles keep
# a few lit blocks from turning a night photo's curves off.
REGION_QUANTILE, SHARE_QUANTILES = 0.95, (0.99, 0.10)


def scene_bands(
    low: list[np.ndarray], normal: list[np.ndarray]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """(region band, share band) of the scene gate, from train images (small)."""
    brightest = lambda images: [float(brightest_region(image[None])[0, 0]) for image in images]  # noqa: E731
    region = _rising(
        np.quantile(brightest(low), REGION_QUANTILE), np.quantile(brightest(normal), 1 - REGION_QUANTILE)
    )
    gate = band_layer(region, "region", log=True)
    shares = lambda images: [float(lit_share(image[None], gate)[0, 0]) for image in images]  # noqa: E731
    share = _rising(
        np.quantile(shares(low), SHARE_QUANTILES[0]), np.quantile(shares(normal), SHARE_QUANTILES[1])
    )
    return region, share


def _rising(low: float, high: float) -> tuple[float, float]:
    """A band that rises from `low` to `high`; overlapping sets (tiny ones) still get one."""
    low, high = float(low), float(high)
    if not low < high:
        low, high = min(low, high), max(low, high) * 1.1 + 1e-3
    return round(low, 4), round(high, 4)


@dataclasses.dataclass(frozen=True)
class LightFit:
    model: keras.Model  # what the stage saves
    metrics: dict  # flat: what `dvc metrics show` lists
    grid: dict[str, dict[str, dict[str, float]]]  # per quantile, per threshold: val mixed and normal PSNR


def fit_light(
    train: pd.DataFrame,
    val: pd.DataFrame,
    cfg: LightConfig,
    mixed_factors: tuple[float, float],
    gate_band: tuple[float, float],
) -> LightFit:
    """The train_light stage's work: the saved gain model, its metrics and the val grid.
    `gate_band` is the shipped model's exposure gate, which the scene gate reads on the lifted photo."""
    normal = small_images(train, "high", cfg.scale_factor)
    region_band, share_band = scene_bands(small_images(train, "low", cfg.scale_factor), normal)
    net, losses = train_shadow_net(normal, cfg)
    pairs = val.head(cfg.fit_images) if cfg.fit_images else val
    originals = [to_unit_float(read_rgb(path)) for path in pairs["high"]]
    choice = choose_lift(net, originals, cfg, mixed_factors)
    chosen = choice.scores[choice.reference_quantile, choice.threshold]
    metrics = {
        "reference_quantile": choice.reference_quantile,
        "threshold": choice.threshold,
        "scene_region_low": region_band[0],
        "scene_region_high": region_band[1],
        "scene_share_low": share_band[0],
        "scene_share_high": share_band[1],
        "val_mixed_psnr": round(chosen["mixed_psnr"], 4),
        "val_normal_psnr_vs_input": round(chosen["normal_psnr_vs_input"], 4),
        "final_loss": round(losses[-1], 5) if losses else None,
        "val_images": len(originals),
    }
    grid: dict[str, dict[str, dict[str, float]]] = {}
    for (q, t), values in choice.scores.items():
        grid.setdefault(str(q), {})[str(t)] = {k: round(v, 4) for k, v in values.items()}
    model = build_light_gain(
        net,
        choice.threshold,
        region_band,
        share_band,
        gate_band=gate_band,
        reference_quantile=choice.reference_quantile,
    )
    return LightFit(model, metrics, grid)
