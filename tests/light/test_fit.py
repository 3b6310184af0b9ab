"""The train_light stage's work on the fixture: the shadow net learns, and the lit-level quantile and
threshold are the grid pair the rule picks on val (best mixed light under the normal-light floor)."""

import dataclasses

import numpy as np
import pytest

from src.data.images import read_rgb, to_unit_float
from src.errors import PipelineError
from src.light.fit import choose_lift, shadowed_batch, small_images, train_shadow_net
from tests.support.pipeline import tiny_params, tiny_split

FACTORS = (0.05, 0.3)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from src.data.split import read_split

    params = tiny_params()
    split = tiny_split(tmp_path_factory.mktemp("split"), params)
    cfg = dataclasses.replace(params.light, steps=300, batch_size=8, filters=8, scale_factor=4)
    train = small_images(read_split(split / "train.csv"), "high", cfg.scale_factor)
    net, losses = train_shadow_net(train, cfg)
    originals = [to_unit_float(read_rgb(p)) for p in read_split(split / "val.csv")["high"]]
    return cfg, train, net, losses, originals


def test_the_loss_falls_and_shadows_are_predicted_deeper_than_none(fitted):
    cfg, train, net, losses, _ = fitted
    assert losses[-1] < 0.8 * losses[0], losses
    inputs, targets = shadowed_batch(train, 64, cfg, np.random.default_rng(9))
    predicted = net(inputs).numpy()
    shadowed, clear = targets < np.log(0.3), targets == 0.0
    assert predicted[shadowed].mean() < predicted[clear].mean() - 0.3


def test_the_pair_is_the_best_mixed_light_value_above_the_floor(fitted):
    cfg, _, net, _, originals = fitted
    grid = dataclasses.replace(
        cfg,
        thresholds=(0.1, 0.5, 1.5),
        reference_quantiles=(0.0, 0.5),
        dim_exposures=(0.5,),
        normal_floor_db=0.0,
    )
    fit = choose_lift(net, originals, grid, FACTORS)
    assert set(fit.scores) == {(q, t) for q in (0.0, 0.5) for t in (0.1, 0.5, 1.5)}
    best = max(fit.scores, key=lambda key: fit.scores[key]["mixed_psnr"])
    assert (fit.reference_quantile, fit.threshold) == best
    # Larger thresholds and a higher lit level lift less, so they keep normal light closer to its input.
    for q in (0.0, 0.5):
        normal = [fit.scores[q, t]["normal_psnr_vs_input"] for t in (0.1, 0.5, 1.5)]
        assert normal == sorted(normal)
    for t in (0.1, 0.5, 1.5):
        assert fit.scores[0.5, t]["normal_psnr_vs_input"] >= fit.scores[0.0, t]["normal_psnr_vs_input"]
    scores = [s["normal_psnr_vs_input"] for s in fit.scores.values()]
    floor = (min(scores) + max(scores)) / 2
    strict = choose_lift(net, originals, dataclasses.replace(grid, normal_floor_db=floor), FACTORS)
    assert fit.scores[strict.reference_quantile, strict.threshold]["normal_psnr_vs_input"] >= floor
    with pytest.raises(PipelineError, match=r"light\.thresholds: none keeps"):
        choose_lift(net, originals, dataclasses.replace(grid, normal_floor_db=101.0), FACTORS)


def test_dimmed_copies_count_as_normal_light(fitted):
    """An evenly dimmed photo is no shadow: scoring the dimmed copies changes the normal-light score."""
    cfg, _, net, _, originals = fitted
    grid = dataclasses.replace(cfg, thresholds=(0.1,), reference_quantiles=(0.0,), normal_floor_db=0.0)
    alone = choose_lift(net, originals, dataclasses.replace(grid, dim_exposures=(1.0,)), FACTORS)
    dimmed = choose_lift(net, originals, dataclasses.replace(grid, dim_exposures=(0.3,)), FACTORS)
    assert alone.scores[0.0, 0.1]["mixed_psnr"] == dimmed.scores[0.0, 0.1]["mixed_psnr"]
    assert alone.scores[0.0, 0.1]["normal_psnr_vs_input"] != dimmed.scores[0.0, 0.1]["normal_psnr_vs_input"]
