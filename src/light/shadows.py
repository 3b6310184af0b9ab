"""Synthetic shadows: smooth darkening fields for teaching a network where light is missing.

A normal-light image times a field in linear light looks like the same scene with part of it
in shadow (a wall's, a lamp falling off, a vignette), and the field is then a known target.
The shapes here (soft ramps at any angle, radial falloffs, elliptic blobs, and the union of two)
are drawn from their own seeded families: evaluate's mixed-light masks are a separate, fixed set
(src.evaluate.mixed_light), so the test does not score the training distribution's own shapes.
"""

from __future__ import annotations

import numpy as np

# Share of training examples left as they are: the network must also learn "no shadow here".
NO_SHADOW = 0.25


def _ramp(y: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    along = (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle)
    width = rng.uniform(0.02, 0.25)
    return 1 / (1 + np.exp(-(along - rng.uniform(-0.3, 0.3)) / width))


def _radial(y: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cy, cx = rng.uniform(0.2, 0.8, size=2)
    distance = np.hypot(x - cx, y - cy)
    start = rng.uniform(0.1, 0.5)
    t = np.clip((distance - start) / rng.uniform(0.1, 0.5), 0, 1)
    return t * t * (3 - 2 * t)  # dark outside a lit disc


def _blob(y: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cy, cx = rng.uniform(0.0, 1.0, size=2)
    sy, sx = rng.uniform(0.08, 0.4, size=2)
    return np.exp(-(((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2) / 2)


SHAPES = (_ramp, _radial, _blob)


def shadow_weight(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """[H, W] in [0, 1], 1 where the shadow is full: one shape, or the union of two."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    y, x = y / max(height - 1, 1), x / max(width - 1, 1)
    count = 2 if rng.random() < 0.3 else 1
    shapes = [SHAPES[rng.integers(len(SHAPES))](y, x, rng) for _ in range(count)]
    return np.maximum.reduce(shapes)


def shadow_log_field(
    height: int, width: int, factors: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """The natural log of a random field's linear-light factor ([H, W], ≤ 0; 0: untouched).

    The full shadow's factor is log-uniform in `factors`, so deep and faint shadows are equally
    common in log terms, which is how the network's target is measured.
    """
    if rng.random() < NO_SHADOW:
        return np.zeros((height, width))
    factor = float(np.exp(rng.uniform(*np.log(factors))))
    weight = shadow_weight(height, width, rng)
    return np.log1p(-weight * (1.0 - factor))
