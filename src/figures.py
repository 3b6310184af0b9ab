"""The plot stage's work: read the pipeline's outputs, draw every figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from src.errors import PipelineError
from src.evaluation import Enhancer
from src.images import read_rgb, to_unit_float
from src.model_io import load_keras_model
from src.plots import Example, comparison_grid, loss_curves
from src.split import read_split


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found (run the earlier stages first)") from None


def pick_examples(per_image: pd.DataFrame, count: int) -> list[str]:
    """eval15 images first (the ones the literature reports), in a fixed order."""
    model_rows = per_image[per_image["method"] == "zero_dce"]
    ordered = pd.concat(
        [model_rows[model_rows["subset"] == "eval15"], model_rows[model_rows["subset"] != "eval15"]]
    )
    return ordered["name"].head(count).tolist()


def write_figures(
    history_csv: Path, per_image_csv: Path, model_path: Path, split_dir: Path, out_dir: Path, examples: int
) -> list[Path]:
    history = _read_csv(history_csv)
    per_image = _read_csv(per_image_csv)
    paths = loss_curves(history, out_dir)

    test = read_split(split_dir / "test.csv").set_index("name")
    scores = per_image.set_index(["name", "method"])
    enhancer = Enhancer(load_keras_model(model_path))
    rows = []
    for name in pick_examples(per_image, examples):
        low = to_unit_float(read_rgb(test.loc[name, "low"]))
        rows.append(
            Example(
                name=name,
                low=low,
                enhanced=enhancer(low),
                high=to_unit_float(read_rgb(test.loc[name, "high"])),
                psnr=float(scores.loc[(name, "zero_dce"), "psnr"]),
                input_psnr=float(scores.loc[(name, "input"), "psnr"]),
            )
        )
    paths.append(comparison_grid(rows, out_dir / "test_examples.jpg"))
    return paths
