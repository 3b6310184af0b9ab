"""Under `dvc repro`, a stage that refuses keeps the outputs of its last good run.

DVC deletes a stage's outputs before running it unless they are declared `persist: true`; the
stages replace their outputs whole, and only on success. In a scratch git + DVC project on the
committed fixture: a fetch from a source off the manifest, and a train (or split) or train_denoiser with
params the data cannot meet, each fail with one line while `data/raw/lol_dataset`, `models/` and the
reports stay as dvc.lock records them; a good run still replaces the outputs and records them in
dvc.lock and the cache.
"""

from __future__ import annotations

import hashlib
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

import pytest
import yaml

from tests.support.data import REPO_ROOT as REPO
from tests.support.fetch import FIXTURE_ROOT, altered, fixture_files, write_manifest
from tests.support.pipeline import tiny_params_dict
from tests.support.processes import Watched, gone

pytestmark = pytest.mark.slow
VENV_BIN = Path(sys.executable).parent
COPIED = ("dvc.yaml", ".dvcignore", ".gitignore", "src", "stages", "manifests")
MANIFEST = "manifests/fixture.sha256"
ALTERED = "lol_dataset/our485/low/2.png"
# What the train stage leaves (models/ is DVC-cached, the reports are git-tracked).
TRAIN_OUTPUTS = ("models", "reports/train")


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "GIT_"))}
    clean["PATH"] = f"{VENV_BIN}{os.pathsep}{clean.get('PATH', '')}"
    clean["DVC_NO_ANALYTICS"] = "1"
    return clean


def run(cwd: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)


def dvc(cwd: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return run(cwd, str(VENV_BIN / "dvc"), *args, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


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


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The pipeline on the fixture at tiny sizes, reproduced up to train_denoiser: data, split, the
    curves and the shipped model."""
    root = tmp_path_factory.mktemp("keeps_outputs")
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, root / name)
    write_manifest(root / MANIFEST, fixture_files())
    params = tiny_params_dict()
    params["fetch"].update(source=str(FIXTURE_ROOT), manifest=MANIFEST)
    # The least training that writes a model (what it learns does not matter here): one epoch;
    # all (2) of the tiny split's val pairs; the tiny params' one-point denoiser grid.
    params["train"].update(epochs=1, val_images=0)
    params["evaluate"]["tv_fit_images"] = 0
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ok(run(root, "git", "init", "-q"))
    ok(dvc(root, "init", "-q"))
    ok(dvc(root, "repro", "train_denoiser", timeout=600))
    return root


def test_a_good_run_records_its_persistent_outputs_in_the_lock_and_the_cache(project):
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    for stage, path in (("train", "models/curves.keras"), ("train_denoiser", "models/model.keras")):
        (model,) = [out for out in lock[stage]["outs"] if out["path"] == path]
        data = (project / path).read_bytes()
        assert model["md5"] == hashlib.md5(data).hexdigest()
        cached = project / ".dvc/cache/files/md5" / model["md5"][:2] / model["md5"][2:]
        assert cached.read_bytes() == data
    assert not (project / ".checkpoints/train").exists(), "cleared once the outputs are written"
    assert ok(dvc(project, "status", "train_denoiser", "--json")).strip() in ("{}", "")


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
def test_a_refused_fetch_keeps_the_verified_data(project, tmp_path, case, fetch_args):
    raw = project / "data/raw/lol_dataset"
    before, lock = digests(raw), (project / "dvc.lock").read_text()
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
        write_manifest(project / manifest, altered(fixture_files(), ALTERED))
        expected = f"error: {ALTERED}: sha256 mismatch (1 files differ, 0 missing)"
    with edited_params(project, fetch={"source": source, "manifest": manifest}):
        result = dvc(project, "repro", *fetch_args, "fetch")
    assert result.returncode != 0
    (line,) = stage_errors(result)
    assert line.startswith(expected), line
    assert "Traceback" not in result.stderr
    assert digests(raw) == before, "the verified data is still there, unchanged"
    assert (project / "dvc.lock").read_text() == lock
    assert not list(raw.parent.glob(".fetch-*")), "no staging folder left behind"
    assert ok(dvc(project, "status", "fetch", "--json")).strip() in ("{}", "")


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
def test_a_refused_train_keeps_the_model_and_starts_nothing(project, edits, expected):
    kept = (project / "models", project / "reports/train", project / "data/split")
    before, lock, runs = digests(*kept), (project / "dvc.lock").read_text(), mlflow_runs(project)
    with edited_params(project, **edits):
        started = time.perf_counter()
        result = dvc(project, "repro", "train")
        elapsed = time.perf_counter() - started
    assert result.returncode != 0
    (line,) = stage_errors(result)
    assert line.startswith(expected), line
    assert "Traceback" not in result.stderr
    assert digests(*kept) == before, "model, run file, reports and split are those of the last good run"
    assert (project / "dvc.lock").read_text() == lock
    assert mlflow_runs(project) == runs, "no MLflow run"
    assert not (project / ".checkpoints/train").exists(), "no checkpoint folder"
    assert elapsed < 60, f"took {elapsed:.0f} s to refuse"  # TensorFlow never loads: seconds
    assert ok(dvc(project, "status", "train", "--json")).strip() in ("{}", "")


def test_a_refused_denoiser_fit_keeps_the_shipped_model_and_logs_nothing(project):
    kept = (project / "models", project / "reports/denoiser")
    before, lock = digests(*kept), (project / "dvc.lock").read_text()
    runs, models = mlflow_runs(project), logged_models(project)
    with edited_params(project, denoiser={"fit_images": 3}):
        started = time.perf_counter()
        result = dvc(project, "repro", "train_denoiser")
        elapsed = time.perf_counter() - started
    assert result.returncode != 0
    (line,) = stage_errors(result)
    assert line.startswith("error: params.yaml: denoiser.fit_images (3) is more than the 2 val pairs"), line
    assert "Traceback" not in result.stderr
    assert digests(*kept) == before, "the curves, the shipped model and its metrics are the last good run's"
    assert (project / "dvc.lock").read_text() == lock
    assert (mlflow_runs(project), logged_models(project)) == (runs, models), "no run, no model logged"
    assert elapsed < 60, f"took {elapsed:.0f} s to refuse"  # TensorFlow never loads: seconds
    assert ok(dvc(project, "status", "train_denoiser", "--json")).strip() in ("{}", "")


def test_a_training_stops_when_its_dvc_repro_is_killed(project):
    """`kill <dvc pid>` ends DVC at once, and DVC passes no signal on to its stage: the training went
    on as an orphan and then replaced the model with no dvc.lock to match. It stops within seconds
    now (src.signals.stop_with_dvc), its MLflow run KILLED, the model and the lock untouched."""
    kept = (project / "models", project / "reports/train")
    before, lock, runs = digests(*kept), (project / "dvc.lock").read_text(), mlflow_runs(project)
    with edited_params(project, train={"epochs": 200}):
        repro = Watched(["dvc", "repro", "train"], cwd=project, env=env())
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
    assert digests(*kept) == before and (project / "dvc.lock").read_text() == lock
    with sqlite3.connect(project / "mlflow.db") as db:
        assert db.execute("select count(*) from runs").fetchone()[0] == runs + 1
        (status,) = db.execute("select status from runs order by start_time desc limit 1").fetchone()
    assert status == "KILLED"


def test_a_good_fetch_replaces_the_persistent_data_and_records_it(project, tmp_path):
    """Last: it changes the data. A verified new tree replaces the old one, and DVC records and
    caches it as it would a non-persistent output."""
    files = altered(fixture_files(), ALTERED)
    shutil.copytree(FIXTURE_ROOT, tmp_path / "lol")
    (tmp_path / "lol" / ALTERED).write_bytes(files[ALTERED])
    write_manifest(project / "manifests/fixture-next.sha256", files)
    lock_before = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["fetch"]["outs"][0]["md5"]
    new = {"source": str(tmp_path / "lol"), "manifest": "manifests/fixture-next.sha256"}
    with edited_params(project, fetch=new):
        ok(dvc(project, "repro", "fetch"))
        raw = project / "data/raw"
        tree = (raw / "lol_dataset").rglob("*")
        copied = {p.relative_to(raw).as_posix(): p.read_bytes() for p in tree if p.is_file()}
        assert copied == files
        (out,) = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["fetch"]["outs"]
        assert out["md5"] != lock_before and out["md5"].endswith(".dir")
        assert (project / ".dvc/cache/files/md5" / out["md5"][:2] / out["md5"][2:]).is_file()
        assert ok(dvc(project, "status", "fetch", "--json")).strip() in ("{}", "")
