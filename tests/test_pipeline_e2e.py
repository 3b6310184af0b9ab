"""`dvc repro` of the whole pipeline in a scratch copy of the repo, on the committed fixture.

The real thing end to end: DVC runs every stage as a subprocess, MLflow writes to a
real sqlite store, and the assertions read what a user would look at afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from tests.support.fetch import fixture_files, write_manifest
from tests.support.pipeline import REPO, tiny_params_dict

pytestmark = pytest.mark.slow
VENV_BIN = Path(sys.executable).parent


def tracked_files(repo: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.split()
    return [f for f in listed if not f.startswith(("scratch/", "dvc.lock", "reports/", "data/split/"))]


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh copy of the project whose params point at the fixture, at tiny sizes."""
    root = tmp_path_factory.mktemp("project")
    for name in tracked_files(REPO):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    write_manifest(root / "manifests" / "fixture.sha256", fixture_files())
    params = tiny_params_dict("sqlite:///mlflow.db")
    params["fetch"]["source"] = str(REPO / "tests" / "fixtures" / "lol_tiny")
    params["fetch"]["manifest"] = "manifests/fixture.sha256"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(root, "init", "-q")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fixture project")
    return root


def params_tv_weights(project: Path) -> list[float]:
    return yaml.safe_load((project / "params.yaml").read_text())["evaluate"]["tv_weights"]


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


def test_every_stage_wrote_its_outputs(reproduced):
    for path in (
        "data/raw/lol_dataset/eval15/low/1.png",
        "data/split/train.csv",
        "models/model.keras",
        "models/run.json",
        "reports/train/history.csv",
        "reports/eval/per_image.csv",
        "reports/plots/loss_total.png",
        "reports/plots/test_examples.jpg",
        "reports/plots/normal_light_examples.jpg",
        "reports/promote.json",
    ):
        assert (reproduced / path).is_file(), path
    losses = sorted(p.name for p in (reproduced / "reports/plots").glob("loss_*.png"))
    assert losses == [
        f"loss_{n}.png" for n in sorted(["spatial", "exposure", "color", "smoothness", "total", "denoiser"])
    ]


def test_metrics_cover_model_and_baselines_on_test_and_eval15(reproduced):
    metrics = json.loads((reproduced / "reports/eval/metrics.json").read_text())
    for scope in ("test", "eval15"):
        assert set(metrics[scope]) == {"zero_dce", "zero_dce_tv", "input", "gamma", "clahe"}
        for values in metrics[scope].values():
            assert 0 < values["psnr"] < 60 and -1 <= values["ssim"] <= 1
    assert metrics["eval15"]["zero_dce"]["images"] == 3
    assert metrics["test"]["zero_dce"]["images"] == 4
    # The fitted gamma brightens: it must beat the untouched dark input.
    assert metrics["eval15"]["gamma"]["psnr"] > metrics["eval15"]["input"]["psnr"]
    assert metrics["tv_weight"] in params_tv_weights(reproduced)
    normal = metrics["normal_light"]
    assert set(normal) == {"zero_dce", "input"} and normal["zero_dce"]["images"] == 3
    assert normal["input"]["psnr_vs_input"] == 100.0  # the identity, capped
    assert normal["input"]["brightness"] == normal["input"]["brightness_in"]
    shown = run(reproduced, "metrics", "show")
    assert shown.returncode == 0 and "eval15.zero_dce.psnr" in shown.stdout


def test_mlflow_run_holds_curves_psnr_and_a_loadable_model(reproduced, monkeypatch):
    monkeypatch.chdir(reproduced)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri("sqlite:///mlflow.db")
    run_id = json.loads((reproduced / "models/run.json").read_text())["run_id"]
    client = mlflow.MlflowClient()
    run_info = client.get_run(run_id)
    assert run_info.info.status == "FINISHED"
    # Two curve epochs (train and val losses), then one denoiser epoch (its loss; val again).
    for loss in ("spatial", "exposure", "color", "smoothness", "total"):
        assert [m.step for m in client.get_metric_history(run_id, f"train_{loss}")] == [1, 2]
        assert [m.step for m in client.get_metric_history(run_id, f"val_{loss}")] == [1, 2, 3]
    assert [m.step for m in client.get_metric_history(run_id, "train_denoise")] == [3]
    assert "eval15_zero_dce_psnr" in run_info.data.metrics
    assert "test_gamma_ssim" in run_info.data.metrics
    for key in ("tv_weight_fitted", "normal_light_zero_dce_psnr_vs_input", "normal_light_input_brightness"):
        assert key in run_info.data.metrics
    assert run_info.data.tags["git_commit"] != "unknown"
    artifacts = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert "plots/loss_total.png" in artifacts
    champion = client.get_model_version_by_alias("zero-dce", "champion")
    assert champion.run_id == run_id, "the first evaluated model becomes the champion"
    model = mlflow.pyfunc.load_model("models:/zero-dce@champion")
    image = np.random.default_rng(0).random((1, 40, 56, 3)).astype(np.float32)
    out = np.asarray(model.predict(image))
    assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1


def test_second_repro_has_nothing_to_do(reproduced):
    result = run(reproduced, "repro")
    assert result.returncode == 0
    assert "Running stage" not in result.stdout
