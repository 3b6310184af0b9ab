"""The mixed-light test: seeded smooth masks, darkening in linear light, and scores that tell
the lit part from the darkened one."""

import numpy as np
import pandas as pd
import pytest

from src.evaluate.metrics import PSNR_CAP_DB
from src.evaluate.mixed_light import (
    DARK,
    LIT,
    MASKS,
    darken,
    mask,
    score_mixed_light,
    summarise_mixed_light,
    to_linear,
    to_srgb,
)
from tests.support.data import FIXTURE_DATASET


@pytest.mark.parametrize("kind", MASKS)
def test_every_mask_is_smooth_and_has_a_lit_and_a_darkened_part(kind):
    for seed in range(20):
        weight = mask(kind, 400, 600, np.random.default_rng(seed))
        assert weight.shape == (400, 600) and weight.min() >= 0 and weight.max() <= 1
        assert (weight < LIT).mean() > 0.05 and (weight > DARK).mean() > 0.005, (kind, seed)
        steepest = max(np.abs(np.diff(weight, axis=0)).max(), np.abs(np.diff(weight, axis=1)).max())
        assert steepest < 0.1, f"{kind} mask {seed} has an edge: {steepest:.2f} between neighbours"


def test_masks_come_from_the_seed_alone():
    first = [mask(kind, 40, 60, np.random.default_rng(3)) for kind in MASKS]
    again = [mask(kind, 40, 60, np.random.default_rng(3)) for kind in MASKS]
    other = [mask(kind, 40, 60, np.random.default_rng(4)) for kind in MASKS]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_darkening_scales_light_by_the_factor_where_the_mask_is_full():
    image = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    weight = np.zeros((8, 8))
    weight[:, 4:] = 1.0
    out = darken(image, weight, 0.2)
    np.testing.assert_allclose(out[:, :4], image[:, :4], atol=1e-6)
    darkened = to_linear(out[:, 4:].astype(np.float64))
    np.testing.assert_allclose(darkened, 0.2 * to_linear(image[:, 4:]), atol=1e-6)
    np.testing.assert_allclose(to_srgb(to_linear(image.astype(np.float64))), image, atol=1e-6)


def test_scores_tell_the_lit_part_from_the_darkened_one():
    """The input left alone keeps the lit part exactly and leaves the dark part dark; doubling
    every value lifts the dark part closer to the original but moves the lit part."""
    pairs = pd.DataFrame(
        {"name": [1, 146], "high": [str(FIXTURE_DATASET / "eval15" / "high" / f"{i}.png") for i in (1, 146)]}
    )
    methods = {"input": lambda x: x, "double": lambda x: np.clip(2 * x, 0, 1)}
    rows = score_mixed_light(pairs, methods, (0.05, 0.3), seed=0)
    assert len(rows) == 2 * len(MASKS) * 2
    assert rows["factor"].between(0.05, 0.3).all()
    again = score_mixed_light(pairs, methods, (0.05, 0.3), seed=0)
    pd.testing.assert_frame_equal(rows, again)
    summary = summarise_mixed_light(rows)
    same, double = summary["input"], summary["double"]
    assert same["lit_psnr_vs_input"] == PSNR_CAP_DB and same["worst_lit_brightness_shift"] == 0
    assert double["lit_brightness_shift"] > 0.05 and double["lit_psnr_vs_input"] < 30
    assert double["dark_psnr"] > same["dark_psnr"]
    assert same["images"] == double["images"] == 2 * len(MASKS)
