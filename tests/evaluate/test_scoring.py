"""Evaluation bookkeeping: the normal-light check, clipping, TV fitting and the summaries, with
plain callables standing in for the model (the network itself is tested elsewhere)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.data.images import read_rgb, to_unit_float
from src.evaluate.metrics import PSNR_CAP_DB, psnr
from src.evaluate.mixed_light import MIXED_LIGHT, score_mixed_light, summarise_mixed_light
from src.evaluate.scoring import (
    METHODS,
    NORMAL_LIGHT,
    clipped_pct,
    fit_tv_on,
    flat_metrics,
    low_light_methods,
    remember_last,
    score_images,
    score_normal_light,
    summarise,
    summarise_normal_light,
)
from tests.support.data import FIXTURE_DATASET
from tests.support.evaluation import TEST, Counting, brighten, identity, split_frame


def test_clipped_pct_counts_both_tails_of_all_values() -> None:
    image = np.full((4, 5, 3), 0.5, np.float32)  # 60 values
    image[0, 0] = 0.0  # 3 values at black
    image[1, 0, 0] = 0.5 / 255  # rounds to 0: counts
    image[1, 1, 0] = 0.6 / 255  # rounds to 1: does not
    image[2, :, :] = 1.0  # 15 values at white
    image[3, 0, 1] = 254.5 / 255  # rounds to 255: counts
    image[3, 1, 1] = 254.4 / 255  # does not
    assert clipped_pct(image) == pytest.approx(100 * (3 + 1 + 15 + 1) / 60)
    assert clipped_pct(np.full((4, 4, 3), 0.5, np.float32)) == 0.0
    assert clipped_pct(np.zeros((4, 4, 3), np.uint8)) == 100.0  # uint8 is scaled first


def test_normal_light_scores_eval15_ground_truths_as_input() -> None:
    rows = score_normal_light(TEST, {"zero_dce": brighten, "input": identity})
    assert len(rows) == 3 * 2  # the 3 eval15 rows of TEST, our485 left out, 2 methods
    assert set(rows["subset"]) == {NORMAL_LIGHT}
    assert set(rows["name"]) == {"eval15/1", "eval15/111", "eval15/146"}

    image = to_unit_float(read_rgb(FIXTURE_DATASET / "eval15" / "high" / "111.png"))
    model = rows[(rows["name"] == "eval15/111") & (rows["method"] == "zero_dce")].iloc[0]
    out = brighten(image)
    assert model["psnr_vs_input"] == pytest.approx(psnr(out, image))
    assert model["brightness_in"] == pytest.approx(image.mean())
    assert model["brightness"] == pytest.approx(out.mean())
    assert model["clipped_pct"] == pytest.approx(clipped_pct(out))

    same = rows[rows["method"] == "input"]
    assert (same["psnr_vs_input"] == PSNR_CAP_DB).all()  # identical: capped, not inf
    np.testing.assert_allclose(same["brightness"], same["brightness_in"])


def test_normal_light_summary_shows_a_brightener_blowing_images_out() -> None:
    rows = score_normal_light(TEST, {"zero_dce": brighten, "input": identity})
    summary = summarise_normal_light(rows)
    assert list(summary) == ["zero_dce", "input"]
    model, same = summary["zero_dce"], summary["input"]
    assert model["images"] == same["images"] == 3
    assert model["brightness_in"] == same["brightness_in"] == same["brightness"]
    assert model["brightness"] > model["brightness_in"] + 0.1
    assert model["clipped_pct"] > same["clipped_pct"] + 1.0
    assert model["psnr_vs_input"] < 25.0 and same["psnr_vs_input"] == PSNR_CAP_DB


def test_the_curves_run_once_per_image_for_curves_and_curves_tv() -> None:
    model, curves = Counting(brighten), Counting(brighten)
    methods = low_light_methods(model, curves, gamma=0.5, tv_weight=0.0, clip_limit=0.01)
    assert tuple(methods) == METHODS
    rows = score_images(TEST, methods)
    assert model.calls == len(TEST) and curves.calls == len(TEST)
    plain, denoised = (rows[rows["method"] == m].reset_index(drop=True) for m in ("curves", "curves_tv"))
    pd.testing.assert_frame_equal(plain.drop(columns="method"), denoised.drop(columns="method"))  # weight 0


def test_zero_dce_scores_the_model_and_curves_the_curves_alone() -> None:
    methods = low_light_methods(brighten, identity, gamma=0.5, tv_weight=0.0, clip_limit=0.01)
    rows = score_images(TEST, methods)
    model, curves, given = (
        rows[rows["method"] == m].reset_index(drop=True) for m in ("zero_dce", "curves", "input")
    )
    pd.testing.assert_frame_equal(curves.drop(columns="method"), given.drop(columns="method"))
    assert (model["psnr"] != curves["psnr"]).all()


def test_remember_last_recomputes_for_a_new_array_even_with_equal_values() -> None:
    model = Counting(brighten)
    once = remember_last(model)
    image = np.full((4, 4, 3), 0.2, np.float32)
    first = once(image)
    assert once(image) is first and model.calls == 1
    once(image.copy())
    assert model.calls == 2


def test_summaries_keep_normal_and_mixed_light_rows_out_of_test_and_eval15() -> None:
    methods = {"zero_dce": brighten, "input": identity}
    low_light = score_images(TEST, methods)
    normal = score_normal_light(TEST, methods)
    mixed = score_mixed_light(TEST[TEST["subset"] == "eval15"], methods, (0.05, 0.3), seed=0)
    every = summarise(pd.concat([low_light, normal, mixed], ignore_index=True))
    assert every == summarise(low_light)
    assert every["test"]["zero_dce"]["images"] == 5 and every["eval15"]["zero_dce"]["images"] == 3

    summary = {**every, NORMAL_LIGHT: summarise_normal_light(normal)}
    summary[MIXED_LIGHT] = summarise_mixed_light(mixed)
    summary.update(gamma=0.3, tv_weight=0.04, inference_ms_600x400=12.5, tv_ms_600x400=40.5)
    flat = flat_metrics(summary)
    for method in ("zero_dce", "input"):
        for metric in ("psnr_vs_input", "brightness", "brightness_in", "clipped_pct"):
            assert flat[f"normal_light_{method}_{metric}"] == summary[NORMAL_LIGHT][method][metric]
    assert (
        flat["tv_weight_fitted"] == 0.04
        and flat["tv_ms_600x400"] == 40.5
        and flat["eval15_zero_dce_psnr"] == every["eval15"]["zero_dce"]["psnr"]
        and flat["mixed_light_zero_dce_dark_psnr"] == summary[MIXED_LIGHT]["zero_dce"]["dark_psnr"]
    )
    assert all(np.isfinite(value) for value in flat.values())


def test_fit_tv_on_uses_the_first_val_pairs_and_denoises_a_noisy_model() -> None:
    val = split_frame([("our485", ident) for ident in ("2", "18", "39", "52")])
    # The stand-in models look the truth up by the low image they are given.
    highs = {
        read_rgb(low).tobytes(): to_unit_float(read_rgb(high))
        for low, high in zip(val["low"], val["high"], strict=True)
    }
    rng = np.random.default_rng(0)

    def noisy_model(low: np.ndarray) -> np.ndarray:
        """Outputs the truth plus noise: what a good curve model does to a dark photo's grain."""
        truth = highs[np.rint(low * 255).astype(np.uint8).tobytes()]
        return np.clip(truth + rng.normal(0.0, 0.08, truth.shape), 0.0, 1.0).astype(np.float32)

    model = Counting(noisy_model)
    assert fit_tv_on(val, model, (0.0, 0.05, 0.1), images=2) > 0
    assert model.calls == 2
    perfect = Counting(lambda low: highs[np.rint(low * 255).astype(np.uint8).tobytes()])
    assert fit_tv_on(val, perfect, (0.0, 0.05, 0.1), images=0) == 0.0
    assert perfect.calls == 4
