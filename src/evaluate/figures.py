"""The plot stage's work: read the pipeline's outputs, draw every figure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from src.data.images import read_rgb, to_unit_float
from src.data.split import read_split
from src.errors import PipelineError
from src.evaluate.drawing import Example, NormalLightExample, comparison_grid, loss_curves, normal_light_grid
from src.evaluate.scoring import NORMAL_LIGHT, low_light_rows
from src.infer.enhancer import Enhancer
from src.model.loading import load_keras_model


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found (run the earlier stages first)") from None


def pick_examples(per_image: pd.DataFrame, count: int) -> list[str]:
    """eval15 images first (the ones the literature reports), in a fixed order; low-light rows only."""
    low_light = low_light_rows(per_image)
    model_rows = low_light[low_light["method"] == "zero_dce"]
    ordered = pd.concat(
        [model_rows[model_rows["subset"] == "eval15"], model_rows[model_rows["subset"] != "eval15"]]
    )
    return ordered["name"].head(count).tolist()


def low_light_examples(
    per_image: pd.DataFrame, test: pd.DataFrame, enhance: Callable[[np.ndarray], np.ndarray], count: int
) -> list[Example]:
    """The grid's rows: images from `pick_examples`, scores as evaluate wrote them."""
    scores = low_light_rows(per_image).set_index(["name", "method"])
    rows = []
    for name in pick_examples(per_image, count):
        low = to_unit_float(read_rgb(test.loc[name, "low"]))
        rows.append(
            Example(
                name=name,
                low=low,
                enhanced=np.clip(enhance(low), 0.0, 1.0),
                high=to_unit_float(read_rgb(test.loc[name, "high"])),
                psnr=float(scores.loc[(name, "zero_dce"), "psnr"]),
                ssim=float(scores.loc[(name, "zero_dce"), "ssim"]),
                input_psnr=float(scores.loc[(name, "input"), "psnr"]),
                input_ssim=float(scores.loc[(name, "input"), "ssim"]),
            )
        )
    return rows


def normal_light_examples(
    per_image: pd.DataFrame, test: pd.DataFrame, enhance: Callable[[np.ndarray], np.ndarray], count: int
) -> list[NormalLightExample]:
    """The first `count` normal-light rows of the model (eval15 ground truths given as input)."""
    model_rows = per_image[(per_image["subset"] == NORMAL_LIGHT) & (per_image["method"] == "zero_dce")]
    rows = []
    for item in model_rows.head(count).itertuples(index=False):
        image = to_unit_float(read_rgb(test.loc[item.name, "high"]))
        rows.append(
            NormalLightExample(
                name=item.name,
                image=image,
                enhanced=np.clip(enhance(image), 0.0, 1.0),
                psnr_vs_input=float(item.psnr_vs_input),
                brightness_in=float(item.brightness_in),
                brightness=float(item.brightness),
            )
        )
    return rows


def write_figures(
    history_csv: Path, per_image_csv: Path, model_path: Path, split_dir: Path, out_dir: Path, examples: int
) -> list[Path]:
    history = _read_csv(history_csv)
    per_image = _read_csv(per_image_csv)
    paths = loss_curves(history, out_dir)

    test = read_split(split_dir / "test.csv").set_index("name")
    enhancer = Enhancer(load_keras_model(model_path))
    paths.append(
        comparison_grid(
            low_light_examples(per_image, test, enhancer, examples), out_dir / "test_examples.jpg"
        )
    )
    normal = normal_light_examples(per_image, test, enhancer, examples)
    if normal:  # a test split without eval15 has no normal-light rows
        paths.append(normal_light_grid(normal, out_dir / "normal_light_examples.jpg"))
    return paths
