"""The image grids: which rows and scores they show, their titles, and that they are written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.data.images import read_rgb
from src.evaluate.drawing import comparison_grid, comparison_panels, normal_light_grid, normal_light_panels
from src.evaluate.figures import low_light_examples, normal_light_examples, pick_examples
from src.evaluate.scoring import score_images, score_normal_light
from tests.support.evaluation import TEST, brighten, identity


@pytest.fixture(scope="module")
def per_image() -> pd.DataFrame:
    """As evaluate writes it: low-light rows, then normal-light rows reusing the eval15 names."""
    methods = {"zero_dce": brighten, "input": identity}
    return pd.concat([score_images(TEST, methods), score_normal_light(TEST, methods)], ignore_index=True)


def test_examples_are_low_light_rows_with_their_own_scores(per_image) -> None:
    assert pick_examples(per_image, 4) == ["eval15/1", "eval15/111", "eval15/146", "our485/2"]
    examples = low_light_examples(per_image, TEST.set_index("name"), brighten, 2)
    first = examples[0]
    row = per_image[(per_image["name"] == "eval15/1") & (per_image["subset"] == "eval15")]
    model, given = (row[row["method"] == m].iloc[0] for m in ("zero_dce", "input"))
    assert (first.psnr, first.ssim) == pytest.approx((model["psnr"], model["ssim"]))
    assert (first.input_psnr, first.input_ssim) == pytest.approx((given["psnr"], given["ssim"]))
    np.testing.assert_array_equal(first.enhanced, brighten(first.low))

    titles = [title for _, title in comparison_panels(first)]
    assert titles == [
        f"eval15/1: input ({given['psnr']:.2f} dB, SSIM {given['ssim']:.3f})",
        f"Zero-DCE ({model['psnr']:.2f} dB, SSIM {model['ssim']:.3f})",
        "ground truth",
    ]


def test_normal_light_examples_show_the_ground_truth_as_input(per_image) -> None:
    test = TEST.set_index("name")
    examples = normal_light_examples(per_image, test, brighten, 5)
    assert [ex.name for ex in examples] == ["eval15/1", "eval15/111", "eval15/146"]  # eval15 only
    first = examples[0]
    np.testing.assert_allclose(first.image * 255, read_rgb(test.loc["eval15/1", "high"]), atol=1e-3)
    assert first.brightness > first.brightness_in
    _, title = normal_light_panels(first)[1]
    assert f"{first.psnr_vs_input:.2f} dB vs input" in title
    assert f"brightness {first.brightness_in:.2f} -> {first.brightness:.2f}" in title


def test_grids_are_written_as_readable_jpegs(per_image, tmp_path: Path) -> None:
    test = TEST.set_index("name")
    low = comparison_grid(low_light_examples(per_image, test, brighten, 3), tmp_path / "test_examples.jpg")
    normal = normal_light_grid(
        normal_light_examples(per_image, test, brighten, 2), tmp_path / "normal_light_examples.jpg"
    )
    wide, narrow = read_rgb(low), read_rgb(normal)
    assert wide.shape[1] > narrow.shape[1]  # three panels a row against two
    assert narrow.std() > 10  # pictures, not a blank canvas
    assert sorted(p.name for p in tmp_path.iterdir()) == ["normal_light_examples.jpg", "test_examples.jpg"]
    with pytest.raises(ValueError, match="no examples"):
        normal_light_grid([], tmp_path / "empty.jpg")
