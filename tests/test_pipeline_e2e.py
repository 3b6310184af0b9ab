"""`dvc repro` of the whole pipeline in a scratch copy of the repo, on the committed fixture.

The real thing end to end: DVC runs every stage as a subprocess, MLflow writes to a
real sqlite store, and the assertions read what a user would look at afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from src.data.images import read_rgb
from src.data.split import read_split
from tests.support.fetch import fixture_files
from tests.support.pipeline import REPO, tiny_params_dict, use_store
from tests.support.project import git, write_fixture_project

pytestmark = pytest.mark.slow
VENV_BIN = Path(sys.executable).parent


def tracked_files(repo: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.split()
    return [f for f in listed if not f.startswith(("scratch/", "dvc.lock", "reports/", "data/split/"))]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh copy of the project whose params point at the fixture, at tiny sizes."""
    params = tiny_params_dict()
    params["fetch"]["source"] = str(REPO / "tests" / "fixtures" / "lol_tiny")
    root = write_fixture_project(tmp_path_factory.mktemp("project"), tracked_files(REPO), params)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "fixture project")
    return root


def params_tv_weights(project: Path) -> list[float]:
    return yaml.safe_load((project / "params.yaml").read_text())["evaluate"]["tv_weights"]


def psnr_db(output: np.ndarray, target: np.ndarray) -> float:
    mse = float(np.mean(np.square(output.astype(np.float64) - target)))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def run(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(VENV_BIN / "dvc"), *args], cwd=project, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def reproduced(project: Path) -> Path:
    result = run(project, "repro")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return project


def test_every_stage_wrote_its_outputs_and_each_agrees_with_the_stage_before(reproduced):
    raw = reproduced / "data/raw/lol_dataset"
    files = sorted(p for p in raw.rglob("*") if p.is_file())
    copied = {p.relative_to(raw.parent).as_posix(): p.read_bytes() for p in files}
    assert copied == fixture_files(), "fetch copies exactly the verified files"

    splits = {name: read_split(reproduced / f"data/split/{name}.csv") for name in ("train", "val", "test")}
    assert {name: len(frame) for name, frame in splits.items()} == {"train": 4, "val": 2, "test": 4}
    names = [set(frame["name"]) for frame in splits.values()]
    assert sum(map(len, names)) == len(set.union(*names)), "the splits are disjoint"
    assert {"eval15/1", "eval15/111", "eval15/146"} <= names[2], "eval15 is test data"
    summary = json.loads((reproduced / "reports/split.json").read_text())
    assert summary["counts"] == {"train": 4, "val": 2, "test": 4, "unused": 1}

    history = pd.read_csv(reproduced / "reports/train/history.csv")
    assert list(history["epoch"]) == [1, 2] and "phase" not in history  # the curves' epochs alone
    trained = json.loads((reproduced / "reports/train/metrics.json").read_text())
    best = history.loc[history["val_score"].idxmax()]
    assert trained["best_epoch"] == best["epoch"] and trained["epochs"] == 2
    assert trained["val_psnr"] == pytest.approx(best["val_psnr"], abs=1e-3)

    from src.infer.fast_path import architecture_of
    from src.model.loading import load_keras_model

    # The train stage's curves, and the shipped model: the same curves with the fitted denoiser
    # (the tiny params' grid has one point).
    curves = load_keras_model(reproduced / "models/curves.keras")
    shipped = load_keras_model(reproduced / "models/model.keras")
    assert shipped.name == curves.name == "zero_dce"  # the variant asked for
    assert architecture_of(curves).denoiser is None and architecture_of(shipped).denoiser == (0.05, 0.2, 1.0)
    for name in [f"conv{i}" for i in range(1, 8)]:
        pairs = zip(shipped.get_layer(name).get_weights(), curves.get_layer(name).get_weights(), strict=True)
        for ours, theirs in pairs:
            np.testing.assert_array_equal(ours, theirs)
    fitted = json.loads((reproduced / "reports/denoiser/metrics.json").read_text())
    assert (fitted["kind"], fitted["luma_weight"], fitted["chroma_weight"], fitted["gain_power"]) == (
        "tv",
        0.05,
        0.2,
        1.0,
    )
    run_id = json.loads((reproduced / "models/run.json").read_text())["run_id"]
    promoted = json.loads((reproduced / "reports/promote.json").read_text())
    metrics = json.loads((reproduced / "reports/eval/metrics.json").read_text())
    assert (promoted["run_id"], promoted["version"], promoted["alias"]) == (run_id, "1", "champion")
    assert promoted["value"] == pytest.approx(metrics["test"]["zero_dce"]["psnr"], abs=1e-4)

    plots = reproduced / "reports/plots"
    losses = sorted(p.name for p in plots.glob("loss_*.png"))
    assert losses == [
        f"loss_{n}.png" for n in sorted(["spatial", "exposure", "color", "smoothness", "total"])
    ]
    heights = {}
    for name in [*losses, "val_quality.png", "test_examples.jpg", "normal_light_examples.jpg"]:
        image = read_rgb(plots / name)  # decodes whole
        assert image.std() > 5, f"{name} is blank"
        heights[name] = image.shape[0]
    # One row per test image (4 of them) against one per eval15 ground truth (3).
    assert heights["test_examples.jpg"] > heights["normal_light_examples.jpg"]


def test_metrics_are_the_means_of_the_per_image_scores_of_every_test_image(reproduced):
    metrics = json.loads((reproduced / "reports/eval/metrics.json").read_text())
    per_image = pd.read_csv(reproduced / "reports/eval/per_image.csv")
    test = read_split(reproduced / "data/split/test.csv")
    low_light = per_image[per_image["subset"] != "normal_light"]
    for scope in ("test", "eval15"):
        assert set(metrics[scope]) == {"zero_dce", "curves", "curves_tv", "input", "gamma", "clahe"}
        rows = low_light if scope == "test" else low_light[low_light["subset"] == "eval15"]
        for method, values in metrics[scope].items():
            group = rows[rows["method"] == method]
            expected = test if scope == "test" else test[test["subset"] == "eval15"]
            assert sorted(group["name"]) == sorted(expected["name"]), f"{scope}/{method}: one row per image"
            assert values["images"] == len(group)
            for metric in ("psnr", "ssim", "brightness"):
                mean = group[metric].mean()
                assert values[metric] == pytest.approx(mean, abs=2e-4), (scope, method, metric)
    assert metrics["eval15"]["zero_dce"]["images"] == 3
    assert metrics["test"]["zero_dce"]["images"] == 4
    # The fitted gamma brightens: it must beat the untouched dark input.
    assert metrics["eval15"]["gamma"]["psnr"] > metrics["eval15"]["input"]["psnr"]
    assert metrics["tv_weight"] in params_tv_weights(reproduced)
    assert metrics["inference_ms_600x400"] > 0 and metrics["tv_ms_600x400"] > 0

    normal = metrics["normal_light"]
    rows = per_image[per_image["subset"] == "normal_light"]
    assert set(normal) == {"zero_dce", "input"} and normal["zero_dce"]["images"] == 3
    for method, values in normal.items():
        group = rows[rows["method"] == method]
        for metric in ("brightness", "brightness_in", "clipped_pct"):
            assert values[metric] == pytest.approx(group[metric].mean(), abs=2e-4), (method, metric)
        mse = group["mse_vs_input"].mean()  # PSNR against the input is pooled over the images
        assert values["psnr_vs_input"] == pytest.approx(min(10 * np.log10(1 / mse), 100.0) if mse else 100.0)
        assert values["worst_psnr_vs_input"] == pytest.approx(group["psnr_vs_input"].min(), abs=1e-3)
    assert normal["input"]["psnr_vs_input"] == 100.0  # the identity, capped
    assert normal["input"]["brightness"] == normal["input"]["brightness_in"]
    shown = run(reproduced, "metrics", "show")
    assert (
        shown.returncode == 0
        and "reports/eval/headline/zero_dce.json" in shown.stdout
        and "reports/eval/headline/curves_tv.json" in shown.stdout
        and "reports/denoiser/metrics.json" in shown.stdout
        and "eval15.psnr" in shown.stdout
    )


def test_the_saved_model_reproduces_the_scores_evaluate_wrote_for_it(reproduced):
    """Re-score two test images here, with the model files and the input alone: the numbers must
    be the per-image rows of the evaluate stage for the model, its curves alone and the input (the
    input's too: the scoring itself is right)."""
    import keras

    from src.evaluate.metrics import ssim
    from src.model.loading import load_keras_model

    per_image = pd.read_csv(reproduced / "reports/eval/per_image.csv").set_index(["name", "subset", "method"])
    test = read_split(reproduced / "data/split/test.csv").set_index("name")
    model = load_keras_model(reproduced / "models/model.keras")
    curves = load_keras_model(reproduced / "models/curves.keras")
    our485 = next(name for name in test.index if name.startswith("our485/"))
    for name in ("eval15/1", our485):
        low = read_rgb(reproduced / test.loc[name, "low"]).astype(np.float32) / 255
        high = read_rgb(reproduced / test.loc[name, "high"]).astype(np.float32) / 255
        enhanced = np.clip(keras.ops.convert_to_numpy(model(low[None]))[0], 0, 1)
        brightened = np.clip(keras.ops.convert_to_numpy(curves(low[None]))[0], 0, 1)
        for method, output in (("zero_dce", enhanced), ("curves", brightened), ("input", low)):
            row = per_image.loc[(name, test.loc[name, "subset"], method)]
            assert row["psnr"] == pytest.approx(psnr_db(output, high), abs=2e-3), (name, method)
            assert row["ssim"] == pytest.approx(ssim(output, high), abs=1e-3), (name, method)
            assert row["brightness"] == pytest.approx(output.mean(), abs=1e-4), (name, method)
    truth = read_rgb(reproduced / test.loc["eval15/1", "high"]).astype(np.float32) / 255
    kept = np.clip(keras.ops.convert_to_numpy(model(truth[None]))[0], 0, 1)
    row = per_image.loc[("eval15/1", "normal_light", "zero_dce")]
    assert row["brightness"] == pytest.approx(kept.mean(), abs=1e-4)
    assert row["psnr_vs_input"] == pytest.approx(min(psnr_db(kept, truth), 100.0), abs=0.01)


def test_mlflow_run_holds_curves_psnr_and_a_loadable_model(reproduced, monkeypatch):
    monkeypatch.chdir(reproduced)
    use_store(monkeypatch, reproduced)
    run_id = json.loads((reproduced / "models/run.json").read_text())["run_id"]
    client = mlflow.MlflowClient()
    run_info = client.get_run(run_id)
    assert run_info.info.status == "FINISHED"
    # Two epochs of the curves (train and val losses); no denoiser phase.
    for loss in ("spatial", "exposure", "color", "smoothness", "total"):
        assert [m.step for m in client.get_metric_history(run_id, f"train_{loss}")] == [1, 2]
        assert [m.step for m in client.get_metric_history(run_id, f"val_{loss}")] == [1, 2]
    assert "train_denoise" not in run_info.data.metrics
    # The train_denoiser stage logged its fit (and the shipped model) to the same run.
    fitted = json.loads((reproduced / "reports/denoiser/metrics.json").read_text())
    for key in ("luma_weight", "chroma_weight", "gain_power", "val_score", "curves_val_score"):
        assert run_info.data.metrics[f"denoiser_{key}"] == pytest.approx(fitted[key]), key
    assert "**Denoiser**" in run_info.data.tags["mlflow.note.content"]
    metrics = json.loads((reproduced / "reports/eval/metrics.json").read_text())
    logged = run_info.data.metrics
    assert logged["eval15_zero_dce_psnr"] == pytest.approx(metrics["eval15"]["zero_dce"]["psnr"])
    assert logged["test_gamma_ssim"] == pytest.approx(metrics["test"]["gamma"]["ssim"])
    for key in (
        "tv_weight_fitted",
        "tv_ms_600x400",
        "test_curves_psnr",
        "test_curves_tv_ssim",
        "normal_light_zero_dce_psnr_vs_input",
        "normal_light_input_brightness",
    ):
        assert key in run_info.data.metrics
    assert run_info.data.tags["git_commit"] != "unknown"
    artifacts = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert "plots/loss_total.png" in artifacts
    champion = client.get_model_version_by_alias("zero-dce", "champion")
    assert champion.run_id == run_id, "the first evaluated model becomes the champion"
    # The champion serves image files (PNG in, PNG out): the same pixels as the shipped model file.
    import io

    from PIL import Image

    from src.model.loading import load_keras_model

    model = mlflow.pyfunc.load_model("models:/zero-dce@champion")
    pixels = (np.random.default_rng(0).random((40, 56, 3)) * 80).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    answer = model.predict(pd.DataFrame({"image": [buffer.getvalue()]}))
    out = np.asarray(Image.open(io.BytesIO(answer["image"][0]))).astype(np.int32)
    shipped = load_keras_model(reproduced / "models/model.keras")
    expected = np.rint(np.clip(np.asarray(shipped(pixels[None] / np.float32(255)))[0], 0, 1) * 255)
    assert out.shape == pixels.shape
    assert np.abs(out - expected).max() <= 1, "the champion is the model file"


def test_second_repro_has_nothing_to_do(reproduced):
    result = run(reproduced, "repro")
    assert result.returncode == 0
    assert "Running stage" not in result.stdout
