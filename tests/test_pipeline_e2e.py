"""`dvc repro` of the whole pipeline in a scratch copy of the repo, on the committed fixture.

The real thing end to end: DVC runs every stage as a subprocess, MLflow writes to a
real sqlite store, and the assertions read what a user would look at afterwards.

The same reproduced project then shows that a stage that refuses keeps the outputs of its last
good run. DVC deletes a stage's outputs before running it unless they are declared
`persist: true`; the stages replace their outputs whole, and only on success. A fetch from a source
off the manifest, and a train (or split) or train_denoiser with params the data cannot meet, each
fail with one line while `data/raw/lol_dataset`, `models/` and the reports stay as dvc.lock records
them; a killed `dvc repro` stops its training; a good fetch still replaces the data and records it
(last, as it changes the data the earlier tests read).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from src.data.images import read_rgb
from src.data.split import read_split
from tests.support.fetch import FIXTURE_ROOT, altered, fixture_files, write_manifest
from tests.support.pipeline import REPO, tiny_params_dict, use_store
from tests.support.processes import Watched, gone
from tests.support.project import FIXTURE_MANIFEST as MANIFEST
from tests.support.project import git, write_fixture_project

pytestmark = pytest.mark.slow
VENV_BIN = Path(sys.executable).parent
ALTERED = "lol_dataset/our485/low/2.png"


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


def env() -> dict[str, str]:
    """This environment without the test's MLflow store or DVC and git settings: the project's own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "GIT_"))}
    clean["PATH"] = f"{VENV_BIN}{os.pathsep}{clean.get('PATH', '')}"
    clean["DVC_NO_ANALYTICS"] = "1"
    return clean


def dvc(project: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "dvc"), *args],
        cwd=project,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def reproduced(project: Path) -> Path:
    result = dvc(project, "repro")
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

    from src.infer.enhancer import architecture_of
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
    low_light = per_image[~per_image["subset"].isin(["normal_light", "mixed_light"])]
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
        pooled = min(10 * np.log10(1 / mse), 100.0) if mse else 100.0
        assert values["psnr_vs_input"] == pytest.approx(pooled, abs=1e-4)  # the report keeps 4 decimals
        assert values["worst_psnr_vs_input"] == pytest.approx(group["psnr_vs_input"].min(), abs=1e-3)
    assert normal["input"]["psnr_vs_input"] == 100.0  # the identity, capped
    assert normal["input"]["brightness"] == normal["input"]["brightness_in"]

    mixed = metrics["mixed_light"]
    rows = per_image[per_image["subset"] == "mixed_light"]
    assert set(mixed) == {"zero_dce", "input"}
    for method, values in mixed.items():
        group = rows[rows["method"] == method]
        assert values["images"] == len(group) == 3 * 3, "each eval15 image under each of the three masks"
        assert sorted(group["mask"].unique()) == ["blob", "half", "vignette"]
        for metric in ("psnr", "ssim", "lit_psnr_vs_input", "lit_brightness_shift", "dark_psnr"):
            assert values[metric] == pytest.approx(group[metric].mean(), abs=2e-4), (method, metric)
    assert mixed["input"]["lit_psnr_vs_input"] == 100.0 and mixed["input"]["worst_lit_brightness_shift"] == 0
    shown = dvc(reproduced, "metrics", "show")
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
    result = dvc(reproduced, "repro")
    assert result.returncode == 0
    assert "Running stage" not in result.stdout


# What a refused or stopped stage keeps: the outputs of the last good run, as dvc.lock records them.


def digests(*folders: Path) -> dict[str, str]:
    return {
        p.as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def mlflow_runs(project: Path) -> int:
    with sqlite3.connect(project / "mlflow.db") as db:
        return db.execute("select count(*) from runs").fetchone()[0]


def logged_models(project: Path) -> int:
    with sqlite3.connect(project / "mlflow.db") as db:
        return db.execute("select count(*) from logged_models").fetchone()[0]


def stage_errors(result: subprocess.CompletedProcess) -> list[str]:
    """The stage's own `error: ...` lines (DVC adds its `ERROR: failed to reproduce ...` after them)."""
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error: ")]


@contextmanager
def edited_params(project: Path, **sections: dict) -> Iterator[None]:
    """params.yaml with some keys changed, put back afterwards."""
    path = project / "params.yaml"
    original = path.read_text()
    raw = yaml.safe_load(original)
    for section, values in sections.items():
        raw[section].update(values)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    try:
        yield
    finally:
        path.write_text(original)


def test_a_good_run_records_its_persistent_outputs_in_the_lock_and_the_cache(reproduced):
    lock = yaml.safe_load((reproduced / "dvc.lock").read_text())["stages"]
    for stage, path in (("train", "models/curves.keras"), ("train_denoiser", "models/model.keras")):
        (model,) = [out for out in lock[stage]["outs"] if out["path"] == path]
        data = (reproduced / path).read_bytes()
        assert model["md5"] == hashlib.md5(data).hexdigest()
        cached = reproduced / ".dvc/cache/files/md5" / model["md5"][:2] / model["md5"][2:]
        assert cached.read_bytes() == data
    assert not (reproduced / ".checkpoints/train").exists(), "cleared once the outputs are written"
    assert ok(dvc(reproduced, "status", "train_denoiser", "--json")).strip() in ("{}", "")


@pytest.mark.parametrize(
    ("case", "fetch_args"),
    [
        # DVC runs fetch again whenever one of its deps changes (code in src/data, the manifest);
        # --force does the same here. fetch.source is not a dep: any source gives the same data.
        ("a source with one file altered", ("--force",)),
        ("a source that does not exist", ("--force",)),
        # A new fetch.manifest is a changed param: DVC runs fetch of its own accord.
        ("a manifest the source does not match", ()),
    ],
)
def test_a_refused_fetch_keeps_the_verified_data(reproduced, tmp_path, case, fetch_args):
    raw = reproduced / "data/raw/lol_dataset"
    before, lock = digests(raw), (reproduced / "dvc.lock").read_text()
    source, manifest = str(FIXTURE_ROOT), MANIFEST
    if case == "a source with one file altered":
        shutil.copytree(FIXTURE_ROOT, tmp_path / "lol")
        (tmp_path / "lol" / ALTERED).write_bytes(altered(fixture_files(), ALTERED)[ALTERED])
        source, expected = (
            str(tmp_path / "lol"),
            f"error: {ALTERED}: sha256 mismatch (1 files differ, 0 missing)",
        )
    elif case == "a source that does not exist":
        source = str(tmp_path / "nowhere")
        expected = f"error: {source}: fetch.source does not exist"
    else:
        manifest = "manifests/fixture-next.sha256"
        write_manifest(reproduced / manifest, altered(fixture_files(), ALTERED))
        expected = f"error: {ALTERED}: sha256 mismatch (1 files differ, 0 missing)"
    with edited_params(reproduced, fetch={"source": source, "manifest": manifest}):
        result = dvc(reproduced, "repro", *fetch_args, "fetch")
    assert result.returncode != 0
    (line,) = stage_errors(result)
    assert line.startswith(expected), line
    assert "Traceback" not in result.stderr
    assert digests(raw) == before, "the verified data is still there, unchanged"
    assert (reproduced / "dvc.lock").read_text() == lock
    assert not list(raw.parent.glob(".fetch-*")), "no staging folder left behind"
    assert ok(dvc(reproduced, "status", "fetch", "--json")).strip() in ("{}", "")


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        (
            {"train": {"crop_size": 96}},
            "error: params.yaml: train.crop_size (96) is larger than the smallest train image (120x80); "
            "at most 80",
        ),
        (
            {"train": {"batch_size": 5}},
            "error: params.yaml: train.batch_size (5) is more than the 4 train images",
        ),
        (
            {"train": {"val_images": 3}},
            "error: params.yaml: train.val_images (3) is more than the 2 val pairs",
        ),
        # Refused by split, upstream of train: the split CSVs survive as well as the model.
        ({"split": {"train": 50}}, "error: params split: train 50 + val 2 + test 1"),
    ],
    ids=["crop_size", "batch_size", "val_images", "split.train"],
)
def test_a_refused_train_keeps_the_model_and_starts_nothing(reproduced, edits, expected):
    kept = (reproduced / "models", reproduced / "reports/train", reproduced / "data/split")
    before, lock, runs = digests(*kept), (reproduced / "dvc.lock").read_text(), mlflow_runs(reproduced)
    with edited_params(reproduced, **edits):
        started = time.perf_counter()
        result = dvc(reproduced, "repro", "train")
        elapsed = time.perf_counter() - started
    assert result.returncode != 0
    (line,) = stage_errors(result)
    assert line.startswith(expected), line
    assert "Traceback" not in result.stderr
    assert digests(*kept) == before, "model, run file, reports and split are those of the last good run"
    assert (reproduced / "dvc.lock").read_text() == lock
    assert mlflow_runs(reproduced) == runs, "no MLflow run"
    assert not (reproduced / ".checkpoints/train").exists(), "no checkpoint folder"
    assert elapsed < 60, f"took {elapsed:.0f} s to refuse"  # TensorFlow never loads: seconds
    assert ok(dvc(reproduced, "status", "train", "--json")).strip() in ("{}", "")


def test_a_refused_denoiser_fit_keeps_the_shipped_model_and_logs_nothing(reproduced):
    kept = (reproduced / "models", reproduced / "reports/denoiser")
    before, lock = digests(*kept), (reproduced / "dvc.lock").read_text()
    runs, models = mlflow_runs(reproduced), logged_models(reproduced)
    with edited_params(reproduced, denoiser={"fit_images": 3}):
        started = time.perf_counter()
        result = dvc(reproduced, "repro", "train_denoiser")
        elapsed = time.perf_counter() - started
    assert result.returncode != 0
    (line,) = stage_errors(result)
    assert line.startswith("error: params.yaml: denoiser.fit_images (3) is more than the 2 val pairs"), line
    assert "Traceback" not in result.stderr
    assert digests(*kept) == before, "the curves, the shipped model and its metrics are the last good run's"
    assert (reproduced / "dvc.lock").read_text() == lock
    assert (mlflow_runs(reproduced), logged_models(reproduced)) == (runs, models), "no run, no model logged"
    assert elapsed < 60, f"took {elapsed:.0f} s to refuse"  # TensorFlow never loads: seconds
    assert ok(dvc(reproduced, "status", "train_denoiser", "--json")).strip() in ("{}", "")


def test_a_training_stops_when_its_dvc_repro_is_killed(reproduced):
    """`kill <dvc pid>` ends DVC at once, and DVC passes no signal on to its stage: the training went
    on as an orphan and then replaced the model with no dvc.lock to match. It stops within seconds
    now (src.signals.stop_with_dvc), its MLflow run KILLED, the model and the lock untouched."""
    kept = (reproduced / "models", reproduced / "reports/train")
    before, lock, runs = digests(*kept), (reproduced / "dvc.lock").read_text(), mlflow_runs(reproduced)
    with edited_params(reproduced, train={"epochs": 200}):
        repro = Watched(["dvc", "repro", "train"], cwd=reproduced, env=env())
        stage = []
        try:
            repro.wait_for(r"epoch 1/200: loss ", timeout=300)
            stage = repro.descendants()
            repro.process.send_signal(signal.SIGTERM)  # DVC alone, as `kill` or a supervisor does
            killed = time.monotonic()
            assert repro.wait(timeout=30) != 0
            assert gone(stage, timeout=30), "the training outlived its dvc repro"
            stopped_in = time.monotonic() - killed
        finally:
            repro.kill(also=stage)
    err = "\n".join(repro.stderr)
    assert "stage train: dvc (pid " in err and "has exited; stopping as on SIGTERM" in err, err[-2000:]
    assert "Traceback" not in err
    assert stopped_in < 20, f"took {stopped_in:.0f} s"
    assert digests(*kept) == before and (reproduced / "dvc.lock").read_text() == lock
    with sqlite3.connect(reproduced / "mlflow.db") as db:
        assert db.execute("select count(*) from runs").fetchone()[0] == runs + 1
        (status,) = db.execute("select status from runs order by start_time desc limit 1").fetchone()
    assert status == "KILLED"


def test_a_good_fetch_replaces_the_persistent_data_and_records_it(reproduced, tmp_path):
    """Last: it changes the data. A verified new tree replaces the old one, and DVC records and
    caches it as it would a non-persistent output."""
    files = altered(fixture_files(), ALTERED)
    shutil.copytree(FIXTURE_ROOT, tmp_path / "lol")
    (tmp_path / "lol" / ALTERED).write_bytes(files[ALTERED])
    write_manifest(reproduced / "manifests/fixture-next.sha256", files)
    lock_before = yaml.safe_load((reproduced / "dvc.lock").read_text())["stages"]["fetch"]["outs"][0]["md5"]
    new = {"source": str(tmp_path / "lol"), "manifest": "manifests/fixture-next.sha256"}
    with edited_params(reproduced, fetch=new):
        ok(dvc(reproduced, "repro", "fetch"))
        raw = reproduced / "data/raw"
        tree = (raw / "lol_dataset").rglob("*")
        copied = {p.relative_to(raw).as_posix(): p.read_bytes() for p in tree if p.is_file()}
        assert copied == files
        (out,) = yaml.safe_load((reproduced / "dvc.lock").read_text())["stages"]["fetch"]["outs"]
        assert out["md5"] != lock_before and out["md5"].endswith(".dir")
        assert (reproduced / ".dvc/cache/files/md5" / out["md5"][:2] / out["md5"][2:]).is_file()
        assert ok(dvc(reproduced, "status", "fetch", "--json")).strip() in ("{}", "")
