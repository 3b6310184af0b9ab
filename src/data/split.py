"""Pair the LOL images and split them into train / val / test (/ unused).

The split is a DVC output of its own, written as CSVs, so that every later stage
(training, tuning, evaluation) sees exactly the same pairs, and a changed seed or
size shows up as a data change rather than a silent difference between runs.
The official eval15 pairs always land in test: they are the numbers papers
report, and training on them would make ours incomparable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from src.config import SplitConfig
from src.errors import PipelineError, first_line
from src.files import atomic_write_text

TRAIN_SUBSET, TEST_SUBSET = "our485", "eval15"
SUBSETS = (TEST_SUBSET, TRAIN_SUBSET)  # alphabetical: the order rows are sorted in
SPLITS = ("train", "val", "test", "unused")
PAIR_COLUMNS = ["name", "subset", "low", "high"]
CSV_COLUMNS = ["name", "subset", "split", "low", "high"]
IMAGE_SUFFIX = ".png"


def find_pairs(dataset_dir: Path | str) -> pd.DataFrame:
    """Every low/high pair of a LOL folder, one row each, sorted by subset then numeric id.

    Paths are joined onto `dataset_dir` as given (a relative folder gives relative
    paths), so the CSVs stay valid when the project folder moves. A low image
    without its high twin, or the reverse, is an error: silently dropping it would
    shrink the data without anyone noticing.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise PipelineError(f"{root}: dataset folder not found")
    frames = [_subset_pairs(root, subset) for subset in SUBSETS]
    return pd.concat(frames, ignore_index=True)


def _subset_pairs(root: Path, subset: str) -> pd.DataFrame:
    low_dir, high_dir = root / subset / "low", root / subset / "high"
    for folder in (low_dir, high_dir):
        if not folder.is_dir():
            raise PipelineError(
                f"{folder}: folder not found (expected the LOL layout: "
                f"{root}/{{{','.join(SUBSETS)}}}/{{low,high}}/N.png)"
            )
    low_names, high_names = _png_names(low_dir), _png_names(high_dir)
    if not low_names and not high_names:
        raise PipelineError(f"{root / subset}: no {IMAGE_SUFFIX} images in low/ or high/")
    _check_twins(low_names, high_names, low_dir, high_dir)
    _check_twins(high_names, low_names, high_dir, low_dir)
    rows = [
        (f"{subset}/{Path(file).stem}", subset, str(low_dir / file), str(high_dir / file))
        for file in sorted(low_names, key=_id_key)
    ]
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def _png_names(folder: Path) -> set[str]:
    return {
        entry.name
        for entry in folder.iterdir()
        if entry.suffix.lower() == IMAGE_SUFFIX and not entry.name.startswith(".")
    }


def _check_twins(have: set[str], other: set[str], have_dir: Path, other_dir: Path) -> None:
    """Name the first missing twin (and how many more), so the fix is obvious."""
    missing = sorted(have - other, key=_id_key)
    if missing:
        more = f"; {len(missing) - 1} more missing" if len(missing) > 1 else ""
        raise PipelineError(
            f"{other_dir / missing[0]}: missing (its pair {have_dir / missing[0]} exists{more})"
        )


def _id_key(file_or_name: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order (2 before 10), anything else after them by name."""
    stem = Path(file_or_name).stem
    return (0, int(stem), stem) if stem.isdigit() else (1, 0, stem)


def split_pairs(pairs: pd.DataFrame, cfg: SplitConfig) -> dict[str, pd.DataFrame]:
    """Split pairs into train / val / test / unused, reproducibly from `cfg.seed`.

    All eval15 pairs go to test; the rest of test, and all of train and val, are
    drawn from our485 by one seeded permutation (taken in that order), and what is
    left over is kept as `unused` so that nothing disappears unaccounted. The
    our485 pairs are sorted before permuting, so the split depends only on the
    seed and the set of pairs, not on the order they were listed in.
    """
    _check_columns(pairs)
    pool = _sorted(pairs[pairs["subset"] == TRAIN_SUBSET])
    held_out = _sorted(pairs[pairs["subset"] == TEST_SUBSET])
    test_drawn = _check_sizes(cfg, available=len(pool), held_out=len(held_out))
    order = np.random.default_rng(cfg.seed).permutation(len(pool))
    bounds = np.cumsum([0, cfg.train, cfg.val, test_drawn])
    parts = {
        "train": pool.iloc[order[bounds[0] : bounds[1]]],
        "val": pool.iloc[order[bounds[1] : bounds[2]]],
        "test": pd.concat([held_out, pool.iloc[order[bounds[2] : bounds[3]]]]),
        "unused": pool.iloc[order[bounds[3] :]],
    }
    return {split: _sorted(frame).assign(split=split)[CSV_COLUMNS] for split, frame in parts.items()}


def _check_columns(pairs: pd.DataFrame) -> None:
    missing = [column for column in PAIR_COLUMNS if column not in pairs.columns]
    if missing:
        raise ValueError(f"pairs frame lacks column(s) {', '.join(missing)}; make it with find_pairs")


def _check_sizes(cfg: SplitConfig, available: int, held_out: int) -> int:
    """How many test pairs to draw from our485; a request the data cannot meet is an error."""
    if min(cfg.train, cfg.val, cfg.test) < 0:
        raise PipelineError(f"params split: sizes must not be negative (got {cfg})")
    if cfg.test < held_out:
        raise PipelineError(
            f"params split: test is {cfg.test} but all {held_out} {TEST_SUBSET} pairs go to test; "
            f"set split.test to at least {held_out}"
        )
    test_drawn = cfg.test - held_out
    needed = cfg.train + cfg.val + test_drawn
    if needed > available:
        raise PipelineError(
            f"params split: train {cfg.train} + val {cfg.val} + test {test_drawn} (besides the "
            f"{held_out} {TEST_SUBSET} pairs) need {needed} {TRAIN_SUBSET} pairs, but only {available} exist"
        )
    return test_drawn


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    """Subset (alphabetical), then numeric id: a stable, readable order for the CSVs."""
    pairs = zip(frame["subset"], frame["name"], strict=True)
    keys = [(SUBSETS.index(subset), *_id_key(name)) for subset, name in pairs]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return frame.iloc[order].reset_index(drop=True)


def write_split(splits: dict[str, pd.DataFrame], out_dir: Path | str, *, seed: int) -> dict[str, Any]:
    """Write `{train,val,test,unused}.csv` into `out_dir` atomically; return the summary.

    The summary (counts per split and per subset, and the seed) is what the stage
    writes as JSON, small enough to diff in review and to read as DVC metrics.
    Unused is written even when empty so the outputs DVC tracks never vary.
    """
    unknown = sorted(set(splits) - set(SPLITS))
    absent = [split for split in SPLITS if split not in splits]
    if unknown or absent:
        raise ValueError(f"splits must have exactly the keys {', '.join(SPLITS)}")
    out = Path(out_dir)
    for split in SPLITS:
        atomic_write_text(out / f"{split}.csv", splits[split][CSV_COLUMNS].to_csv(index=False))
    return summarize(splits, seed=seed)


def summarize(splits: dict[str, pd.DataFrame], *, seed: int) -> dict[str, Any]:
    """Counts per split and per (split, subset), plus the seed that made them."""
    return {
        "seed": seed,
        "counts": {split: len(splits[split]) for split in SPLITS},
        "by_subset": {
            split: {subset: int((splits[split]["subset"] == subset).sum()) for subset in SUBSETS}
            for split in SPLITS
        },
        "total": sum(len(splits[split]) for split in SPLITS),
    }


def read_split(path: Path | str) -> pd.DataFrame:
    """Read one split CSV back; a missing or malformed file is a one-line PipelineError.

    Provided here so that training and evaluation agree with `write_split` on the
    format instead of each parsing it their own way.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise PipelineError(f"{path}: split file not found (run the split stage first)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise PipelineError(f"{path}: not a valid split CSV ({first_line(err)})") from None
    missing = [column for column in CSV_COLUMNS if column not in frame.columns]
    if missing:
        raise PipelineError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame[CSV_COLUMNS]
