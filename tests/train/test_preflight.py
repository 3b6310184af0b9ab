"""src.preflight: params that validate but that the data cannot meet are refused in one line, by the
train, train_light, train_denoiser and evaluate stages, before TensorFlow or MLflow loads, so a refusal leaves
nothing behind."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from src.config import Params
from src.errors import PipelineError
from src.preflight import check_denoiser_fit, check_evaluation, check_training
from tests.support.data import REPO_ROOT
from tests.support.pipeline import tiny_params, tiny_params_dict, tiny_split

# The fixture: 120x80 images; the tiny split has 4 train, 2 val and 4 test pairs.
SMALLEST_SIDE = 80


def fitting(
    split: dict | None = None, evaluate: dict | None = None, denoiser: dict | None = None, **train: object
) -> Params:
    """Tiny params that fit the tiny split (all val pairs, not the first 25 of 2), with overrides."""
    params = tiny_params(**{"val_images": 0, **train})
    return dataclasses.replace(
        params,
        split=dataclasses.replace(params.split, **(split or {})),
        evaluate=dataclasses.replace(params.evaluate, **{"tv_fit_images": 0, **(evaluate or {})}),
        denoiser=dataclasses.replace(params.denoiser, **{"fit_images": 0, **(denoiser or {})}),
    )


@pytest.fixture
def split_dir(tmp_path: Path) -> Path:
    return tiny_split(tmp_path, fitting())


def refusal(check, params: Params, split_dir: Path) -> str:
    with pytest.raises(PipelineError) as caught:
        check(params, split_dir, "params.yaml")
    message = str(caught.value)
    assert "\n" not in message, "one line"
    return message


def test_params_that_fit_the_data_pass_up_to_the_limits(split_dir):
    check_training(fitting(crop_size=SMALLEST_SIDE, batch_size=4, val_images=2), split_dir)
    check_evaluation(fitting(evaluate={"tv_fit_images": 2}), split_dir)
    check_denoiser_fit(fitting(denoiser={"fit_images": 2}), split_dir)


def test_a_crop_larger_than_the_smallest_train_image_is_refused(split_dir):
    message = refusal(check_training, fitting(crop_size=84), split_dir)
    assert message == (
        "params.yaml: train.crop_size (84) is larger than the smallest train image (120x80); at most 80"
    )


def test_the_crop_limit_is_the_smallest_side_of_any_train_image(split_dir, tmp_path):
    small = tmp_path / "small.png"
    Image.new("RGB", (64, 48)).save(small)
    train = pd.read_csv(split_dir / "train.csv", dtype=str)
    train.loc[2, "low"] = str(small)
    train.to_csv(split_dir / "train.csv", index=False)
    message = refusal(check_training, fitting(crop_size=52), split_dir)
    assert message.endswith("smallest train image (64x48); at most 48")


def test_a_batch_larger_than_the_train_split_is_refused(split_dir):
    message = refusal(check_training, fitting(batch_size=5), split_dir)
    assert message == (
        f"params.yaml: train.batch_size (5) is more than the 4 train images ({split_dir / 'train.csv'}); "
        "at most 4"
    )


def test_more_val_images_than_val_pairs_are_refused(split_dir):
    message = refusal(check_training, fitting(val_images=3), split_dir)
    assert message.startswith("params.yaml: train.val_images (3) is more than the 2 val pairs (")
    assert message.endswith("at most 2 (0: all)")
    message = refusal(check_evaluation, fitting(evaluate={"tv_fit_images": 3}), split_dir)
    assert message.startswith("params.yaml: evaluate.tv_fit_images (3) is more than the 2 val pairs (")
    message = refusal(check_denoiser_fit, fitting(denoiser={"fit_images": 3}), split_dir)
    assert message.startswith("params.yaml: denoiser.fit_images (3) is more than the 2 val pairs (")


@pytest.mark.parametrize("check", [check_training, check_denoiser_fit, check_evaluation])
def test_a_missing_split_file_is_refused(split_dir, check):
    (split_dir / "val.csv").unlink()
    message = refusal(check, fitting(), split_dir)
    assert message == f"{split_dir / 'val.csv'}: split file not found (run the split stage first)"


@pytest.mark.parametrize(
    ("check", "split", "pairs"),
    [(check_training, "train", 4), (check_evaluation, "train", 4), (check_denoiser_fit, "val", 2)],
)
def test_a_split_that_does_not_match_the_split_params_is_refused(split_dir, check, split, pairs):
    message = refusal(check, fitting(split={split: 3}), split_dir)
    assert message == (
        f"params.yaml: split.{split} is 3 but {split_dir / f'{split}.csv'} lists {pairs} pairs; "
        "the split is stale: rerun it (dvc repro split)"
    )


@pytest.mark.parametrize(
    ("check", "split", "column"),
    [
        (check_training, "train", "low"),
        (check_denoiser_fit, "val", "high"),
        (check_evaluation, "test", "high"),
    ],
)
def test_a_listed_image_that_is_missing_is_refused(split_dir, tmp_path, check, split, column):
    csv = split_dir / f"{split}.csv"
    frame = pd.read_csv(csv, dtype=str)
    gone = tmp_path / "gone" / "7.png"
    frame.loc[1, column] = str(gone)
    frame.to_csv(csv, index=False)
    message = refusal(check, fitting(), split_dir)
    assert message == (
        f"{csv}: lists {gone}, which does not exist; "
        "restore the data (dvc checkout) or rerun the pipeline (dvc repro)"
    )


def test_a_listed_file_that_is_no_image_is_refused_by_name(split_dir, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    frame = pd.read_csv(split_dir / "val.csv", dtype=str)
    frame.loc[0, "high"] = str(broken)
    frame.to_csv(split_dir / "val.csv", index=False)
    assert refusal(check_training, fitting(), split_dir) == f"{broken}: not a readable image file"


# Runs a stage's main() as `python -m` would, then reports which heavy libraries were imported.
PROBE = """\
import runpy, sys
module = sys.argv.pop(1)
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
finally:
    print("loaded:", ",".join(m for m in ("tensorflow", "keras", "mlflow") if m in sys.modules))
"""


def run_stage(tmp_path: Path, stage: str, params: dict, split_dir: Path) -> subprocess.CompletedProcess:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    common = ["--split", str(split_dir), "--run-file", "models/run.json"]
    args = {
        "stages.train": [
            *common,
            *("--model", "models/curves.keras", "--history", "reports/history.csv"),
            *("--metrics", "reports/metrics.json", "--checkpoints", ".checkpoints/train"),
        ],
        "stages.train_denoiser": [
            *common,
            *("--curves", "models/curves.keras", "--light", "models/light.keras"),
            *("--model", "models/model.keras", "--metrics", "reports/denoiser/metrics.json"),
        ],
        "stages.train_light": [
            "--split",
            str(split_dir),
            *("--model", "models/light.keras", "--metrics", "reports/light/metrics.json"),
            *("--grid", "reports/light/thresholds.json"),
        ],
        "stages.evaluate": [
            *common,
            *("--model", "models/model.keras", "--curves", "models/curves.keras"),
            *("--per-image", "reports/per_image.csv"),
            *("--metrics", "reports/metrics.json", "--headline", "reports/headline"),
        ],
    }[stage]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run(
        [sys.executable, "-c", PROBE, stage, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("stage", "section", "override", "expected"),
    [
        (
            "stages.train",
            "train",
            {"crop_size": 84},
            "error: params.yaml: train.crop_size (84) is larger than the smallest train image (120x80); "
            "at most 80",
        ),
        (
            "stages.train_denoiser",
            "denoiser",
            {"fit_images": 3},
            "error: params.yaml: denoiser.fit_images (3) is more than the 2 val pairs",
        ),
        (
            "stages.train_light",
            "light",
            {"fit_images": 3},
            "error: params.yaml: light.fit_images (3) is more than the 2 val pairs",
        ),
        (
            "stages.evaluate",
            "evaluate",
            {"tv_fit_images": 3},
            "error: params.yaml: evaluate.tv_fit_images (3) is more than the 2 val pairs",
        ),
    ],
)
def test_the_stage_refuses_before_tensorflow_mlflow_or_a_checkpoint(
    tmp_path, split_dir, stage, section, override, expected
):
    raw = tiny_params_dict()
    raw["train"]["val_images"] = 0
    raw["evaluate"]["tv_fit_images"] = 0
    raw[section].update(override)
    work = tmp_path / "work"
    work.mkdir()
    started = time.perf_counter()
    result = run_stage(work, stage, raw, split_dir)
    elapsed = time.perf_counter() - started
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(expected)
    assert result.stdout.strip() == "loaded:", "refused before TensorFlow, Keras or MLflow was imported"
    assert sorted(p.name for p in work.iterdir()) == ["params.yaml"], "no MLflow store, checkpoint or output"
    assert elapsed < 30, f"took {elapsed:.1f} s"  # ~1-2 s when the machine is idle
