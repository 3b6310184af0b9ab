"""DVC used as its docs intend, in a scratch git + DVC project on the committed fixture.

A remote round trip (push, a fresh `git clone`, pull), a queued parameter sweep (`dvc exp run
--queue -S`, `dvc queue start`, `dvc exp show`), and what dvc.yaml declares for the model registry,
`dvc metrics show` and `dvc plots show`. Only the cheap stages run (fetch and split: no TensorFlow).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from stages.evaluate import headline_metrics, write_headline
from tests.support.data import REPO_ROOT as REPO
from tests.support.fetch import FIXTURE_ROOT, fixture_files
from tests.support.project import git as support_git
from tests.support.project import write_fixture_project

VENV_BIN = Path(sys.executable).parent
# What a stage run needs: the pipeline, its code, its settings (the manifest is the fixture's).
COPIED = ("dvc.yaml", ".dvcignore", ".gitignore", "src", "stages", "manifests")
TINY_SPLIT = {"seed": 1, "train": 4, "val": 2, "test": 4}
LOSS_PLOTS = {"loss_total", "loss_terms_train", "loss_terms_val", "val_psnr"}
# `dvc metrics show`'s columns: the train stage's best epoch, the denoiser fit, and the few keys each
# method's headline file shares with the others.
TRAIN_METRICS = {
    "best_epoch",
    "epochs",
    "val_score",
    "val_psnr",
    "val_ssim",
    "train_images_per_s",
    "input_wait_fraction",
}
DENOISER_METRICS = {
    "kind", "luma_weight", "chroma_weight", "gain_power", "val_psnr", "val_ssim", "val_score",
    "curves_val_psnr", "curves_val_ssim", "curves_val_score",
}  # fmt: skip
LIGHT_METRICS = {
    "reference_quantile", "threshold", "scene_region_low", "scene_region_high", "scene_share_low",
    "scene_share_high", "val_mixed_psnr", "val_normal_psnr_vs_input", "final_loss", "val_images",
}  # fmt: skip
HEADLINE_METRICS = {
    "test.psnr", "test.ssim", "eval15.psnr", "eval15.ssim", "normal_light.psnr_vs_input",
    "mixed_light.psnr", "mixed_light.ssim", "inference_ms_600x400", "tv_ms_600x400",
}  # fmt: skip


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "GIT_"))}
    clean["PATH"] = f"{VENV_BIN}{os.pathsep}{clean.get('PATH', '')}"
    clean["DVC_NO_ANALYTICS"] = "1"
    return clean


def dvc(cwd: Path, *args: str, timeout: int = 120) -> str:
    result = subprocess.run(
        [str(VENV_BIN / "dvc"), *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"dvc {' '.join(args)}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


def git(cwd: Path, *args: str) -> str:
    return support_git(cwd, *args, env=env())


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def fixture_params() -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["fetch"]["source"] = str(FIXTURE_ROOT)
    params["split"].update(TINY_SPLIT)
    return params


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A git + DVC repo holding the pipeline, with fetch and split reproduced and committed."""
    root = write_fixture_project(tmp_path_factory.mktemp("dvc_project"), COPIED, fixture_params())
    git(root, "init", "-q")
    dvc(root, "init", "-q")
    dvc(root, "repro", "split")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "fixture pipeline, fetch and split reproduced")
    return root


@pytest.mark.slow
def test_push_then_pull_into_a_fresh_clone_restores_the_data_bit_for_bit(project, tmp_path):
    remote = tmp_path / "remote"
    # --local: the path goes to .dvc/config.local (git-ignored), never into the committed config.
    dvc(project, "remote", "add", "--local", "-d", "store", str(remote))
    pushed = dvc(project, "push")
    raw = digests(project / "data/raw/lol_dataset")
    assert len(raw) == len(fixture_files()) == 22
    assert f"{len(raw) + 1} files pushed" in pushed  # the images and the directory's listing
    assert "store" not in (project / ".dvc/config").read_text()
    assert json.loads(dvc(project, "status", "--cloud", "--json")) == {}

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], env=env(), check=True)
    assert not (clone / "data/raw/lol_dataset").exists()  # the data is in no git commit
    dvc(clone, "remote", "add", "--local", "-d", "store", str(remote))
    dvc(clone, "pull", "fetch", "split")
    assert digests(clone / "data/raw/lol_dataset") == raw
    assert digests(clone / "data/split") == digests(project / "data/split")  # from git (cache: false)
    assert json.loads(dvc(clone, "status", "fetch", "split", "--json")) == {}
    # What a teammate runs next: nothing is fetched or split again, the pulled files stay as they are.
    pulled = (clone / "data/raw/lol_dataset").stat().st_mtime_ns
    reran = dvc(clone, "repro", "split")
    assert "Stage 'fetch' didn't change, skipping" in reran and "Stage 'split' didn't change" in reran, reran
    assert (clone / "data/raw/lol_dataset").stat().st_mtime_ns == pulled


@pytest.mark.slow
def test_a_queued_sweep_runs_each_value_as_its_own_experiment(project):
    dvc(project, "exp", "run", "--queue", "-S", "split.seed=2,3", "split")
    # The worker it starts runs detached; it would hold captured pipes open until it exits.
    subprocess.run(
        [str(VENV_BIN / "dvc"), "queue", "start"],
        cwd=project,
        env=env(),
        check=True,
        timeout=60,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 150
        while any(word in dvc(project, "queue", "status") for word in ("Queued", "Running")):
            assert time.monotonic() < deadline, dvc(project, "queue", "status")
            time.sleep(3)
    finally:
        dvc(project, "queue", "stop")
    status = dvc(project, "queue", "status")
    assert status.count("Success") == 2 and "Failed" not in status, status

    shown = json.loads(dvc(project, "exp", "show", "--json"))
    (commit,) = [row for row in shown if row.get("experiments")]  # the rest: the workspace
    experiments = [rev["data"] for exp in commit["experiments"] for rev in exp["revs"]]
    seeds = [e["params"]["params.yaml"]["data"]["split"]["seed"] for e in experiments]
    assert sorted(seeds) == [2, 3]
    split_hashes = {e["outs"]["data/split"]["hash"] for e in experiments}
    baseline = commit["data"]["outs"]["data/split"]["hash"]
    assert len(split_hashes) == 2 and baseline not in split_hashes, "each seed splits differently"
    # The workspace is untouched: experiments live in refs until `dvc exp apply` / `branch`.
    assert yaml.safe_load((project / "params.yaml").read_text())["split"]["seed"] == TINY_SPLIT["seed"]


@pytest.mark.slow
def test_a_registered_version_of_the_model_downloads_by_name(project, tmp_path):
    """`dvc artifacts get` by version or stage (GTO git tags, as `gto register` / `assign` write
    them): the file of that commit's dvc.lock, from the DVC remote. Stand-ins for the trained
    curves and the shipped model are committed as the train and train_denoiser stages' outputs:
    training is not what is tested here."""
    model = b"a stand-in for models/model.keras"
    outs = {
        "models/curves.keras": b"a stand-in for models/curves.keras",
        "models/run.json": b"{}",
        "reports/train/history.csv": b"epoch\n",
        "reports/train/metrics.json": b"{}",
        "models/light.keras": b"a stand-in for models/light.keras",
        "reports/light/metrics.json": b"{}",
        "reports/light/thresholds.json": b"{}",
        "models/model.keras": model,
        "reports/denoiser/metrics.json": b"{}",
    }
    for name, data in outs.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_bytes(data)
    dvc(project, "commit", "--force", "train", "train_light", "train_denoiser")
    dvc(project, "remote", "add", "--local", "--force", "-d", "store", str(tmp_path / "remote"))
    dvc(project, "push", "train", "train_light", "train_denoiser")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "a model")
    for command in (
        ("register", "zero-dce", "--version", "v1.0.0"),
        ("assign", "zero-dce", "--stage", "prod"),
    ):
        subprocess.run(
            [str(VENV_BIN / "gto"), *command], cwd=project, env=env(), check=True, capture_output=True
        )
    shutil.rmtree(project / ".dvc/cache")  # so that the download can only come from the remote
    for selector in (("--rev", "v1.0.0"), ("--stage", "prod")):
        out = tmp_path / selector[1] / "model.keras"
        dvc(tmp_path, "artifacts", "get", str(project), "zero-dce", *selector, "-o", str(out))
        assert out.read_bytes() == model


@pytest.fixture
def committed_reports(tmp_path) -> Path:
    """The pipeline and the committed reports of a full run; headline files made from its summary."""
    shutil.copy2(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    reports = ("train", "light", "denoiser", "eval/metrics.json", "plots")
    for name in (f"reports/{report}" for report in reports):
        source, target = REPO / name, tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
    summary = json.loads((tmp_path / "reports/eval/metrics.json").read_text())
    write_headline(summary, tmp_path / "reports/eval/headline")
    dvc(tmp_path, "init", "--no-scm", "-q")
    return tmp_path


def test_the_model_is_a_registry_artifact_and_a_stage_output(committed_reports):
    # DVC's own reader, in a child process: DVC configures logging for the process that opens a Repo,
    # and inside pytest's process that took sys.stderr away from later tests.
    read = (
        "import json, sys; from dvc.repo import Repo; repo = Repo(sys.argv[1]); "
        "print(json.dumps({n: [a.path, a.type, a.desc, a.labels] "
        "for n, a in repo.artifacts.read()['dvc.yaml'].items()})); repo.close()"
    )
    shown = subprocess.run(
        [sys.executable, "-c", read, str(committed_reports)], capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    ((name, (path, kind, desc, labels)),) = json.loads(shown.stdout.strip().splitlines()[-1]).items()
    assert (path, kind) == ("models/model.keras", "model") and desc and labels
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert name == yaml.safe_load((REPO / "params.yaml").read_text())["promote"]["model_name"]

    def outs(stage: str) -> list[str]:  # an out is `path` or `path: {persist: true}`
        return [out if isinstance(out, str) else next(iter(out)) for out in spec["stages"][stage]["outs"]]

    # The shipped model is the train_denoiser stage's; the train stage's curves are its input.
    assert "models/model.keras" in outs("train_denoiser") and "models/model.keras" not in outs("train")
    assert "models/curves.keras" in outs("train")
    assert "models/curves.keras" in spec["stages"]["train_denoiser"]["deps"]


def test_plots_show_charts_history_only_against_the_epoch(committed_reports):
    stage_plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"].get("plots", [])
    assert stage_plots == [], "a stage-level plot of history.csv charts every column against the row"
    rendered = json.loads(dvc(committed_reports, "plots", "show", "--json", "-o", "dvc_plots"))["data"]
    curves = {pid for pid, plots in rendered.items() if plots[0]["type"] == "vega"}
    assert curves == LOSS_PLOTS
    for pid in curves:
        (plot,) = rendered[pid]
        assert plot["content"]["encoding"]["x"]["field"] == "epoch", pid
        assert len(plot["content"]["data"]["values"]) > 0, pid
    images = {pid for pid, plots in rendered.items() if plots[0]["type"] == "image"}
    assert {Path(p).name for p in images} >= {"loss_total.png", "test_examples.jpg"}
    # `dvc plots show` writes dvc_plots/ (the HTML and copies of the images) into the project root.
    assert subprocess.run(["git", "check-ignore", "-q", "dvc_plots/index.html"], cwd=REPO).returncode == 0


def test_metrics_show_prints_one_row_per_method_under_a_few_columns(committed_reports):
    summary = json.loads((REPO / "reports/eval/metrics.json").read_text())
    methods = headline_metrics(summary)
    methods_expected = {"zero_dce", "curves", "curves_tv", "input", "gamma", "clahe"}
    assert set(methods) == set(summary["test"]) == methods_expected
    assert methods["zero_dce"]["test"] == {k: summary["test"]["zero_dce"][k] for k in ("psnr", "ssim")}
    shown = json.loads(dvc(committed_reports, "metrics", "show", "--json"))
    files = shown[""]["data"] if "" in shown else shown["workspace"]["data"]
    rows = {path: entry["data"] for path, entry in files.items()}
    assert set(rows) == {
        "reports/train/metrics.json",
        "reports/light/metrics.json",
        "reports/denoiser/metrics.json",
        *(f"reports/eval/headline/{m}.json" for m in methods),
    }
    header, _, *lines = dvc(committed_reports, "metrics", "show", "--md").strip().splitlines()
    assert len(lines) == len(rows)
    columns = [cell.strip() for cell in header.strip().strip("|").split("|")]
    # Path and 35 metrics (of ~100 values): exactly these, each once.
    expected = {"Path"} | TRAIN_METRICS | LIGHT_METRICS | DENOISER_METRICS | HEADLINE_METRICS
    assert sorted(columns) == sorted(expected), header
