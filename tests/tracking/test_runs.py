"""MLflow plumbing against real temporary sqlite stores: where runs go, provenance, model logging."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
from pathlib import Path

import mlflow
import mlflow.tracking._tracking_service.utils as tracking_service
import mlflow.tracking.fluent as fluent
import numpy as np
import pytest

from src.config import MlflowConfig
from src.errors import PipelineError
from src.tracking import runs


@pytest.fixture(autouse=True)
def isolated_mlflow(tmp_path, monkeypatch):
    """MLflow keeps the store and experiment in module globals and mirrors them into the
    environment; put all of it back afterwards so no other test logs into these stores."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracking_service, "_tracking_uri", tracking_service._tracking_uri)
    monkeypatch.setattr(fluent, "_active_experiment_id", fluent._active_experiment_id)
    monkeypatch.chdir(tmp_path)  # artifacts of a sqlite store go to ./mlruns
    yield
    while mlflow.active_run():
        mlflow.end_run()


def store(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> str:
    """One sqlite store for the module (creating one costs seconds); tests use their own experiments."""
    uri = store(tmp_path_factory.mktemp("store"), "mlflow.db")
    mlflow.MlflowClient(uri).search_experiments()  # creates the schema
    return uri


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    """A git repository with one committed file."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "code.py").write_text("print('v1')\n")
    git(root, "add", "code.py")
    git(root, "commit", "-qm", "v1")
    return root


def test_git_commit_is_the_head_commit_and_dirty_once_a_tracked_file_changes(repo) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert re.fullmatch(r"[0-9a-f]{40}", head)
    assert runs.git_commit(repo) == head
    (repo / "notes.txt").write_text("untracked files do not change what was run\n")
    assert runs.git_commit(repo) == head
    (repo / "code.py").write_text("print('v2')\n")
    assert runs.git_commit(repo) == f"{head}-dirty"
    git(repo, "commit", "-qam", "v2")
    assert runs.git_commit(repo) == git(repo, "rev-parse", "HEAD") != head


def test_git_commit_is_unknown_outside_git_or_without_git(tmp_path, monkeypatch, repo) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # never look above tmp_path
    assert runs.git_commit(outside) == "unknown"
    assert runs.git_commit(tmp_path / "missing") == "unknown"
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert runs.git_commit(repo) == "unknown"


def test_provenance_tags_give_mlflow_the_clean_commit_and_keep_the_dirty_mark(repo, monkeypatch) -> None:
    head = git(repo, "rev-parse", "HEAD")
    (repo / "code.py").write_text("print('edited')\n")
    monkeypatch.chdir(repo)
    assert runs.provenance_tags("data123", "split456") == {
        "git_commit": f"{head}-dirty",
        "mlflow.source.git.commit": head,
        "data_version": "data123",
        "split_version": "split456",
    }


def test_configure_leaves_the_store_to_mlflow_and_follows_MLFLOW_TRACKING_URI(
    tmp_path, monkeypatch, shared
) -> None:
    """MLflow's own resolution: the default store in the working directory, else the variable;
    a second store chosen later in the same process is followed (the variable is never frozen)."""
    default = runs.configure(MlflowConfig(experiment="exp-a"))  # the working folder is tmp_path
    assert default == f"sqlite:///{tmp_path / 'mlflow.db'}" and (tmp_path / "mlflow.db").is_file()
    assert "MLFLOW_TRACKING_URI" not in os.environ, "configure must not write the variable"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared)
    assert runs.configure(MlflowConfig(experiment="exp-a")) == shared
    from_env = store(tmp_path, "env.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", from_env)
    assert runs.configure(MlflowConfig(experiment="exp-b")) == from_env
    with mlflow.start_run() as run:
        pass
    assert mlflow.MlflowClient(from_env).get_experiment(run.info.experiment_id).name == "exp-b"
    assert mlflow.MlflowClient(shared).get_experiment_by_name("exp-b") is None


def test_log_to_run_adds_metrics_and_artifacts_to_the_training_run(tmp_path, monkeypatch, shared) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared)
    cfg = MlflowConfig(experiment="exp-log")
    runs.configure(cfg)
    with mlflow.start_run() as training:
        mlflow.log_metric("train_total", 1.5)
    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps({"run_id": training.info.run_id}))
    report = tmp_path / "metrics.json"
    report.write_text("{}\n")

    got = runs.log_to_run(
        run_file, cfg, metrics={"test_psnr": 17.25}, artifacts=[report], artifact_dir="evaluation"
    )

    assert got == training.info.run_id and mlflow.active_run() is None
    client = mlflow.MlflowClient()
    run = client.get_run(training.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"train_total": 1.5, "test_psnr": 17.25}
    logged = client.list_artifacts(run.info.run_id, "evaluation")
    assert [artifact.path for artifact in logged] == ["evaluation/metrics.json"]
    assert len(client.search_runs([run.info.experiment_id])) == 1, "no new run was started"

    # The description gains the stage's section once; a rerun replaces it instead of repeating it.
    client.set_tag(run.info.run_id, runs.NOTE_TAG, "**Zero-DCE** trained")
    for psnr in ("17.25", "17.50"):
        runs.log_to_run(run_file, cfg, note=f"**Evaluation**\n\n- test {psnr} dB")
    note = client.get_run(run.info.run_id).data.tags[runs.NOTE_TAG]
    assert note == "**Zero-DCE** trained\n\n---\n\n**Evaluation**\n\n- test 17.50 dB"


def test_log_to_run_names_a_missing_broken_or_foreign_run_file(tmp_path, monkeypatch, shared) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared)
    cfg = MlflowConfig(experiment="exp-errors")
    run_file = tmp_path / "run.json"
    with pytest.raises(PipelineError, match="run file not found"):
        runs.log_to_run(run_file, cfg)
    run_file.write_text("not json")
    with pytest.raises(PipelineError, match="not a run file"):
        runs.log_to_run(run_file, cfg)
    run_file.write_text(json.dumps({"run": "abc"}))
    with pytest.raises(PipelineError, match="not a run file"):
        runs.read_run_id(run_file)
    run_file.write_text(json.dumps({"run_id": "0" * 32}))
    with pytest.raises(PipelineError, match=f"run {'0' * 32} is not in the store"):
        runs.log_to_run(run_file, cfg)


def test_pip_requirements_pin_the_installed_versions() -> None:
    pins = dict(req.split("==") for req in runs.pip_requirements())
    names = ("tensorflow", "keras", "numpy", "pandas", "pillow", "tifffile", "PyYAML", "pydantic")
    assert pins == {name: importlib.metadata.version(name) for name in names}


def test_the_logged_model_enhances_image_files_and_holds_the_network(monkeypatch, shared, tmp_path) -> None:
    """PNG bytes in, PNG bytes out of any size; `src.enhance` gets the Keras network back out."""
    import io

    import pandas as pd
    from PIL import Image

    from src.model.networks import build_dce_net, inference_model
    from src.tracking.logged_model import load_keras_model_from_mlflow

    model = inference_model(build_dce_net(iterations=2, filters=4))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared)
    runs.configure(MlflowConfig(experiment="exp-model"))
    with mlflow.start_run() as run:
        uri = runs.log_keras_model(model)
    assert uri.startswith("models:/")
    served = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/{runs.MODEL_ARTIFACT}")
    assert [spec.type.name for spec in served.metadata.get_input_schema().inputs] == ["binary"]
    rng = np.random.default_rng(0)
    for height, width in ((16, 24), (9, 13)):
        pixels = (rng.random((height, width, 3)) * 90).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        answer = served.predict(pd.DataFrame({"image": [buffer.getvalue()]}))
        out = np.asarray(Image.open(io.BytesIO(answer["image"][0]))).astype(np.int32)
        expected = np.rint(np.clip(np.asarray(model(pixels[None] / np.float32(255)))[0], 0, 1) * 255)
        assert np.abs(out - expected).max() <= 1
    with pytest.raises(mlflow.exceptions.MlflowException, match="not a PNG or JPEG file"):
        served.predict(pd.DataFrame({"image": [b"not an image"]}))
    network = load_keras_model_from_mlflow(uri)
    image = rng.random((1, 8, 8, 3), np.float32)
    np.testing.assert_allclose(network(image), model(image), atol=1e-6)


@pytest.mark.parametrize("users_setting", [None, "true"])
def test_the_artifact_bar_switch_is_put_back_as_the_user_had_it(monkeypatch, users_setting):
    """Logging and loading a model silence MLflow's copy bar for their block only; a setting of
    the user's own (or its absence) is back afterwards, also after an error inside the block."""
    from src.tracking.logged_model import _no_artifact_bars

    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    if users_setting is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, users_setting)
    with pytest.raises(RuntimeError), _no_artifact_bars():
        assert os.environ[name] == "false"
        raise RuntimeError("a failure inside the block")
    assert os.environ.get(name) == users_setting


def test_a_model_folder_without_the_keras_artifact_is_named_as_not_this_projects(tmp_path):
    """Another project's MLflow model (here a pyfunc with no network inside) is refused with its
    flavours named, not with a KeyError from deep inside the loader."""
    from src.tracking.logged_model import load_keras_model_from_mlflow

    (tmp_path / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: their.module\n")
    refused = r"^not this project's image model .*flavours: python_function\)$"
    with pytest.raises(PipelineError, match=refused):
        load_keras_model_from_mlflow(str(tmp_path))
