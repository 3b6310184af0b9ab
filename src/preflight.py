"""Params checked against the data before a stage does any work.

params.yaml is validated on its own by `src.config`; what it cannot know is the data: a
`train.crop_size` larger than the images, a `train.batch_size` larger than the train split, or a
split CSV that no longer matches `split.*`. Those used to pass validation and then fail seconds later
as a TensorFlow traceback, after an MLflow run and a checkpoint folder had been created. The checks
here read only the split CSVs and the image headers (Pillow decodes no pixels), so a refusal is one
line in about a second, before TensorFlow or MLflow is imported: nothing is written on refusal.

Every message names the key or the file to fix, e.g.
`params.yaml: train.crop_size (512) is larger than the smallest train image (600x400); at most 400`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from PIL import Image

from src.config import Params
from src.data.images import image_errors
from src.data.split import read_split
from src.errors import PipelineError

SPLITS = ("train", "val", "test")  # unused.csv is read by no stage
STALE_SPLIT_HINT = "the split is stale: rerun it (dvc repro split)"
MISSING_DATA_HINT = "restore the data (dvc checkout) or rerun the pipeline (dvc repro)"


def check_training(params: Params, split_dir: Path, params_file: Path | str = "params.yaml") -> None:
    """What the train stage needs from the data: the train and val splits as `split.*` made them,
    every listed image on disk, a batch and a crop that fit them, enough val pairs."""
    where = str(params_file)
    train = _split(split_dir, "train", params.split.train, where)
    val = _split(split_dir, "val", params.split.val, where)
    cfg = params.train
    train_csv, val_csv = split_dir / "train.csv", split_dir / "val.csv"
    if cfg.batch_size > len(train):
        raise PipelineError(
            f"{where}: train.batch_size ({cfg.batch_size}) is more than the {len(train)} train images "
            f"({train_csv}); at most {len(train)}"
        )
    _at_most_pairs(where, "train.val_images", cfg.val_images, len(val), val_csv)
    # Training reads only the low-light train images (Zero-DCE needs no ground truth), at random
    # square crops: the crop must fit inside every one of them.
    sizes = image_sizes(train["low"], train_csv)
    image_sizes([*val["low"], *val["high"]], val_csv)  # validation reads both, at full resolution
    width, height = min(sizes, key=min)
    if cfg.crop_size > min(width, height):
        raise PipelineError(
            f"{where}: train.crop_size ({cfg.crop_size}) is larger than the smallest train image "
            f"({width}x{height}); at most {min(width, height)}"
        )


def check_evaluation(params: Params, split_dir: Path, params_file: Path | str = "params.yaml") -> None:
    """What the evaluate stage needs: the three splits as `split.*` made them (gamma is fitted on
    train, the TV weight on val, scores on test), every listed image on disk, enough val pairs."""
    where = str(params_file)
    frames = {name: _split(split_dir, name, getattr(params.split, name), where) for name in SPLITS}
    fit = params.evaluate.tv_fit_images
    _at_most_pairs(where, "evaluate.tv_fit_images", fit, len(frames["val"]), split_dir / "val.csv")
    for name, frame in frames.items():
        image_sizes([*frame["low"], *frame["high"]], split_dir / f"{name}.csv")


def image_sizes(paths: Iterable[str], listed_in: Path) -> list[tuple[int, int]]:
    """(width, height) of each image from its header alone: a few hundred files in milliseconds.
    A missing file is reported with the CSV that lists it, a broken header with the file's name."""
    paths = list(paths)
    _images_exist(paths, listed_in)
    sizes = []
    for path in paths:
        with image_errors(Path(path)), Image.open(path) as image:
            sizes.append(image.size)
    return sizes


def _split(split_dir: Path, name: str, expected: int, where: str) -> pd.DataFrame:
    """One split CSV, which must hold as many pairs as `split.<name>` asks for: a CSV left by an
    earlier split (or written by hand) would otherwise be trained on without anyone noticing."""
    path = split_dir / f"{name}.csv"
    frame = read_split(path)
    if len(frame) != expected:
        raise PipelineError(
            f"{where}: split.{name} is {expected} but {path} lists {len(frame)} pairs; {STALE_SPLIT_HINT}"
        )
    return frame


def _at_most_pairs(where: str, key: str, value: int, available: int, csv: Path) -> None:
    """`value` of the first val pairs (0: all of them) must exist: asking for more than there are
    would score fewer than the params (and the MLflow run) say."""
    if value > available:
        raise PipelineError(
            f"{where}: {key} ({value}) is more than the {available} val pairs ({csv}); "
            f"at most {available} (0: all)"
        )


def _images_exist(paths: Iterable[str], listed_in: Path) -> None:
    missing = [path for path in paths if not Path(path).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more listed there)" if len(missing) > 1 else ""
        raise PipelineError(
            f"{listed_in}: lists {missing[0]}, which does not exist{more}; {MISSING_DATA_HINT}"
        )


def check_denoiser_fit(params: Params, split_dir: Path, params_file: Path | str = "params.yaml") -> None:
    """What the train_denoiser stage needs: the val split as `split.val` made it, enough pairs
    for `denoiser.fit_images`, and each of them on disk."""
    where = str(params_file)
    val = _split(split_dir, "val", params.split.val, where)
    fit = params.denoiser.fit_images
    _at_most_pairs(where, "denoiser.fit_images", fit, len(val), split_dir / "val.csv")
    pairs = val.head(fit) if fit else val
    image_sizes([*pairs["low"], *pairs["high"]], split_dir / "val.csv")


def check_light_fit(params: Params, split_dir: Path, params_file: Path | str = "params.yaml") -> None:
    """What the train_light stage needs: a gate to weight the lift by, the train and val splits as
    `split.*` made them, enough val pairs for `light.fit_images`, and each image on disk."""
    where = str(params_file)
    if params.light.enabled and not params.model.exposure_gate:
        raise PipelineError(
            f"{where}: light.enabled needs model.exposure_gate: true (the lift fills in where the gate "
            "holds the curves back); set one of them"
        )
    train = _split(split_dir, "train", params.split.train, where)
    val = _split(split_dir, "val", params.split.val, where)
    fit = params.light.fit_images
    _at_most_pairs(where, "light.fit_images", fit, len(val), split_dir / "val.csv")
    pairs = val.head(fit) if fit else val
    image_sizes(train["high"], split_dir / "train.csv")
    image_sizes(pairs["high"], split_dir / "val.csv")
