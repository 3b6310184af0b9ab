"""The images the parity check runs on: given files and folders, the test split's, or synthetic ones."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from src.errors import PipelineError, first_line
from src.infer.photos import format_of, read_photo

Sample = tuple[str, np.ndarray]  # (name for the report, HxWx3 float32 RGB in [0, 1])

DEFAULT_SPLIT = Path("data/split/test.csv")
DEFAULT_IMAGE_COUNT = 3
SYNTHETIC_SIZES = ((400, 600), (257, 331))  # (height, width): LOL's size, and an odd one


def load_images(
    paths: Sequence[Path] | None = None,
    split_csv: Path = DEFAULT_SPLIT,
    count: int = DEFAULT_IMAGE_COUNT,
) -> tuple[list[Sample], str]:
    """The parity images and where they came from: `paths` (files or folders), else the first
    `count` low-light images of the test split, else deterministic synthetic ones at two sizes.

    A split whose images are not on disk (data not pulled) falls back to the synthetic
    images rather than failing, and says so: parity is about the converter, and
    synthetic low-light gradients exercise it as well as photos do.
    """
    if paths:
        files = _expand(paths)
        return [(str(path), read_photo(path).rgb) for path in files], "--images"
    if split_csv.is_file():
        listed = _split_images(split_csv, count)
        present = [path for path in listed if path.is_file()]
        if present:
            return [(str(path), read_photo(path).rgb) for path in present], str(split_csv)
        if listed:
            return synthetic_images(), f"synthetic ({split_csv} lists images not on disk)"
    return synthetic_images(), "synthetic"


def _expand(paths: Sequence[Path]) -> list[Path]:
    # Not src.infer.enhance's `_expand`: that one collects error lines and goes on with the
    # other inputs; here the first bad path ends the export, before any model is loaded.
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and format_of(p))
            if not found:
                raise PipelineError(f"{path}: no PNG, JPEG, BMP or TIFF images in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise PipelineError(f"{path}: no such file or folder")
    return files


def _split_images(split_csv: Path, count: int) -> list[Path]:
    try:
        with open(split_csv, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise PipelineError(f"{split_csv}: cannot read ({first_line(err)})") from None
    if rows and "low" not in rows[0]:
        raise PipelineError(f"{split_csv}: no 'low' column (make it with python -m src.data.split)")
    return [Path(row["low"]) for row in rows[:count]]


def synthetic_images(sizes: Sequence[tuple[int, int]] = SYNTHETIC_SIZES) -> list[Sample]:
    """Dark, deterministic test images: gradients, a bright patch and seeded noise, values in [0, 0.45]."""
    rng = np.random.default_rng(0)
    samples = []
    for height, width in sizes:
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        base = 0.02 + 0.2 * x / max(width - 1, 1) + 0.08 * y / max(height - 1, 1)
        patch = ((np.abs(y - height / 3) < height / 8) & (np.abs(x - width / 2) < width / 6)) * 0.12
        rgb = base[..., None] * np.array([1.0, 0.9, 0.8], np.float32) + patch[..., None]
        rgb = rgb + rng.normal(0.0, 0.015, rgb.shape)
        samples.append((f"synthetic-{height}x{width}", np.clip(rgb, 0.0, 1.0).astype(np.float32)))
    return samples
