"""Pairing and splitting of the LOL layout, and the `split` stage end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from src.config import SplitConfig
from src.data.split import CSV_COLUMNS, SPLITS, find_pairs, read_split, split_pairs, write_split
from src.errors import PipelineError
from tests.support.data import (
    FIXTURE_COUNTS,
    FIXTURE_DATASET,
    REPO_ROOT,
    SAMPLE_DATASET,
    TINY_PARAMS_YAML,
    copy_fixture,
)

TINY = SplitConfig(seed=1, train=3, val=2, test=5)  # 3 + 2 + (5 - 3 eval15) = 7 of 8 our485


def names(frame: pd.DataFrame) -> set[str]:
    return set(frame["name"])


def test_find_pairs_lists_every_pair_sorted_by_subset_then_numeric_id() -> None:
    pairs = find_pairs(FIXTURE_DATASET)
    assert list(pairs.columns) == ["name", "subset", "low", "high"]
    assert list(pairs["name"]) == [
        "eval15/1",
        "eval15/111",
        "eval15/146",
        *(f"our485/{i}" for i in (2, 18, 39, 52, 64, 80, 93, 104)),
    ]
    row = pairs.set_index("name").loc["our485/18"]
    assert row["subset"] == "our485"
    assert row["low"] == str(FIXTURE_DATASET / "our485" / "low" / "18.png")
    assert row["high"] == str(FIXTURE_DATASET / "our485" / "high" / "18.png")
    assert all(Path(path).is_file() for path in [*pairs["low"], *pairs["high"]])


def test_find_pairs_keeps_a_relative_folder_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy_fixture(tmp_path / "data" / "lol_dataset")
    monkeypatch.chdir(tmp_path)
    pairs = find_pairs("data/lol_dataset")
    assert pairs.loc[0, "low"] == os.path.join("data", "lol_dataset", "eval15", "low", "1.png")
    assert not any(Path(path).is_absolute() for path in pairs["high"])


def test_find_pairs_ignores_non_png_and_hidden_files(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path / "lol_dataset")
    (root / "our485" / "low" / "notes.txt").write_text("x")
    (root / "our485" / "high" / ".DS_Store").write_text("x")
    assert len(find_pairs(root)) == sum(FIXTURE_COUNTS.values())


def test_missing_high_image_is_named(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path / "lol_dataset")
    (root / "our485" / "high" / "52.png").unlink()
    with pytest.raises(PipelineError) as err:
        find_pairs(root)
    message = str(err.value)
    assert message.startswith(str(root / "our485" / "high" / "52.png"))
    assert "missing" in message and "\n" not in message


def test_missing_low_image_is_named(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path / "lol_dataset")
    (root / "eval15" / "low" / "111.png").unlink()
    (root / "eval15" / "low" / "146.png").unlink()
    with pytest.raises(PipelineError, match=r"eval15/low/111\.png: missing .*1 more missing"):
        find_pairs(root)


def test_wrong_layout_and_empty_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="dataset folder not found"):
        find_pairs(tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    with pytest.raises(PipelineError, match=r"eval15/low: folder not found \(expected the LOL layout"):
        find_pairs(tmp_path / "flat")
    for subset in ("our485", "eval15"):
        for side in ("low", "high"):
            (tmp_path / "empty" / subset / side).mkdir(parents=True)
    with pytest.raises(PipelineError, match=r"eval15: no \.png images"):
        find_pairs(tmp_path / "empty")


def test_split_counts_and_split_column() -> None:
    splits = split_pairs(find_pairs(FIXTURE_DATASET), TINY)
    assert list(splits) == list(SPLITS)
    assert {split: len(frame) for split, frame in splits.items()} == {
        "train": 3,
        "val": 2,
        "test": 5,
        "unused": 1,
    }
    for split, frame in splits.items():
        assert list(frame.columns) == CSV_COLUMNS
        assert set(frame["split"]) == {split}


def test_every_eval15_pair_is_in_test_and_splits_do_not_overlap() -> None:
    pairs = find_pairs(FIXTURE_DATASET)
    splits = split_pairs(pairs, TINY)
    eval15 = names(pairs[pairs["subset"] == "eval15"])
    assert eval15 <= names(splits["test"])
    assert all(set(frame["subset"]) == {"our485"} for key, frame in splits.items() if key != "test")
    seen = [name for frame in splits.values() for name in frame["name"]]
    assert len(seen) == len(set(seen)) == len(pairs)  # disjoint, and nothing lost


def test_same_seed_same_split_and_other_seed_differs() -> None:
    pairs = find_pairs(FIXTURE_DATASET)
    first, again = split_pairs(pairs, TINY), split_pairs(pairs, TINY)
    for split in SPLITS:
        pd.testing.assert_frame_equal(first[split], again[split])
    other = split_pairs(pairs, SplitConfig(seed=2, train=3, val=2, test=5))
    assert any(names(first[split]) != names(other[split]) for split in SPLITS)


def test_split_does_not_depend_on_row_order() -> None:
    pairs = find_pairs(FIXTURE_DATASET)
    shuffled = pairs.sample(frac=1.0, random_state=0).reset_index(drop=True)
    for split in SPLITS:
        pd.testing.assert_frame_equal(split_pairs(pairs, TINY)[split], split_pairs(shuffled, TINY)[split])


def test_too_few_pairs_says_needed_and_available() -> None:
    pairs = find_pairs(FIXTURE_DATASET)
    with pytest.raises(PipelineError) as err:
        split_pairs(pairs, SplitConfig(seed=1, train=5, val=2, test=5))
    message = str(err.value)
    assert "need 9 our485 pairs, but only 8 exist" in message
    assert "3 eval15" in message and "\n" not in message


def test_test_smaller_than_eval15_is_an_error() -> None:
    with pytest.raises(PipelineError, match="test is 2 but all 3 eval15 pairs go to test"):
        split_pairs(find_pairs(FIXTURE_DATASET), SplitConfig(seed=1, train=3, val=2, test=2))


def test_exact_fit_leaves_unused_empty() -> None:
    splits = split_pairs(find_pairs(FIXTURE_DATASET), SplitConfig(seed=1, train=4, val=2, test=5))
    assert len(splits["unused"]) == 0
    assert list(splits["unused"].columns) == CSV_COLUMNS


def test_write_split_round_trips_and_summarizes(tmp_path: Path) -> None:
    splits = split_pairs(find_pairs(FIXTURE_DATASET), TINY)
    summary = write_split(splits, tmp_path / "split", seed=TINY.seed)
    assert sorted(path.name for path in (tmp_path / "split").iterdir()) == [
        "test.csv",
        "train.csv",
        "unused.csv",
        "val.csv",
    ]  # and no temp files left behind
    for split in SPLITS:
        pd.testing.assert_frame_equal(read_split(tmp_path / "split" / f"{split}.csv"), splits[split])
    assert summary == {
        "seed": 1,
        "counts": {"train": 3, "val": 2, "test": 5, "unused": 1},
        "by_subset": {
            "train": {"eval15": 0, "our485": 3},
            "val": {"eval15": 0, "our485": 2},
            "test": {"eval15": 3, "our485": 2},
            "unused": {"eval15": 0, "our485": 1},
        },
        "total": 11,
    }


def test_read_split_names_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "train.csv"
    bad.write_text("name,low\nx,y\n")
    with pytest.raises(PipelineError, match=r"train\.csv: missing column\(s\) subset, split, high"):
        read_split(bad)
    with pytest.raises(PipelineError, match="split file not found"):
        read_split(tmp_path / "val.csv")


def run_stage(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "stages.split", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_stage_writes_csvs_and_summary(tmp_path: Path) -> None:
    copy_fixture(tmp_path / "data" / "raw" / "lol_dataset")
    (tmp_path / "params.yaml").write_text(TINY_PARAMS_YAML.format(seed=7))
    done = run_stage(
        tmp_path, "--data", "data/raw/lol_dataset", "--out", "data/split", "--summary", "reports/split.json"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1
    assert "train 3, val 2, test 5 (3 eval15), unused 1" in done.stdout
    summary = json.loads((tmp_path / "reports" / "split.json").read_text())
    assert summary["seed"] == 7 and summary["counts"]["test"] == 5
    test = pd.read_csv(tmp_path / "data" / "split" / "test.csv")
    assert list(test.columns) == CSV_COLUMNS
    assert test.loc[0, "low"] == os.path.join("data", "raw", "lol_dataset", "eval15", "low", "1.png")
    assert all((tmp_path / path).is_file() for path in test["high"])


def test_stage_bad_data_path_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(TINY_PARAMS_YAML.format(seed=7))
    done = run_stage(tmp_path, "--data", "no/such/dir", "--out", "split", "--summary", "split.json")
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["error: no/such/dir: dataset folder not found"]
    assert not (tmp_path / "split").exists()


@pytest.mark.skipif(not SAMPLE_DATASET.is_dir(), reason="real LOL sample not on this machine")
def test_real_sample_pairs_and_default_sized_request_fails_clearly() -> None:
    pairs = find_pairs(SAMPLE_DATASET)
    assert (pairs["subset"] == "eval15").sum() == 15
    assert (pairs["subset"] == "our485").sum() >= 30
    with pytest.raises(PipelineError, match=r"need 471 our485 pairs, but only \d+ exist"):
        split_pairs(pairs, SplitConfig())
    splits = split_pairs(pairs, SplitConfig(seed=42, train=20, val=5, test=20))
    assert len(splits["test"]) == 20 and (splits["test"]["subset"] == "eval15").sum() == 15
