"""The Optuna search at tiny size on the fixture: trials, resuming, workers, MLflow, results."""

from __future__ import annotations

import inspect
import io
import math
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import mlflow
import optuna
import pytest
import yaml

import src.tune.study
import src.tune.trial
from src import runtime, signals
from src.config import Params, TuneConfig, load_params, params_from_dict, with_overrides
from src.errors import PipelineError
from src.evaluate.metrics import quality_score
from src.model.losses import LOSS_NAMES
from src.train.checkpoints import TrainingState
from src.train.loop import EpochCallback, PreviewCallback, TrainingResult
from src.train.run import run_training
from src.tune.cli import default_outputs, main, parse_args
from src.tune.params_file import apply_to_params
from src.tune.progress import StudyProgress
from src.tune.search import run_search
from src.tune.study import Heartbeat, counted_trials, load_or_create_study, shown_storage
from tests.support.pipeline import REPO, tiny_params_dict, tiny_split, use_store
from tests.support.processes import Watched, gone


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A working directory with tiny params (3 trials of 2 epochs) and a split of the fixture."""
    monkeypatch.chdir(tmp_path)
    use_store(monkeypatch, tmp_path)
    raw = tiny_params_dict()
    raw["tune"].update(n_trials=3, epochs=2, storage=f"sqlite:///{tmp_path / 'optuna.db'}", pruner="none")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = params_from_dict(raw)
    runtime.configure(params.train)
    tiny_split(tmp_path, params)
    yield tmp_path
    while mlflow.active_run():
        mlflow.end_run()


# What each epoch's row holds besides the loss terms (`src.train.loop.train`); the objective logs
# them all as metrics, then the best epoch's score, PSNR and SSIM.
EPOCH_EXTRAS = ("val_curve_psnr", "val_psnr", "val_ssim", "val_score")
EPOCH_TIMINGS = ("train_images_per_s", "input_wait_fraction", "epoch_seconds")
TRIAL_BEST = ("best_val_score", "best_val_psnr", "best_val_ssim")


def fake_train(
    params: Params,
    train_paths: list[str],
    val_pairs: tuple[list[str], list[str]],
    checkpoint_dir: Path,
    fingerprint_value: str,
    on_start: Callable[[TrainingState, bool], None] | None = None,
    on_epoch_end: EpochCallback | None = None,
    on_preview: PreviewCallback | None = None,
) -> TrainingResult:
    """`src.train.loop.train` as a trial sees it, in milliseconds: the real loop's rows, stop checks
    and deferred epoch end (where pruning raises), with scores set by the trial's params."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    lr, level = params.train.learning_rate, params.loss.exposure_level
    weights = {name: getattr(params.loss, f"{name}_weight") for name in LOSS_NAMES}
    state = TrainingState(fingerprint=fingerprint_value)
    if on_start:
        on_start(state, False)
    for epoch in range(params.train.epochs):
        signals.check()  # where the real loop checks for a stop: before each step
        terms = {name: (0.1 + abs(level - 0.6) + lr * i) / (epoch + 1) for i, name in enumerate(LOSS_NAMES)}
        terms["total"] = sum(weights[name] * terms[name] for name in LOSS_NAMES)
        psnr = 12.0 + 2.0 * epoch + 10.0 * level - abs(math.log10(lr) + 4.0)  # best at lr 1e-4, E 0.7
        ssim = 0.5 + 0.1 * level + 0.01 * epoch
        row = {
            "epoch": epoch + 1,
            **{f"train_{name}": value for name, value in terms.items()},
            **{f"val_{name}": 1.1 * value for name, value in terms.items()},
            "val_curve_psnr": psnr - 0.5,
            "val_psnr": psnr,
            "val_ssim": ssim,
            "val_score": quality_score(psnr, ssim),
            **dict.fromkeys(EPOCH_TIMINGS, 0.01),
        }
        improved = row["val_score"] > state.best_val_score
        with signals.deferred():  # as in the real loop: a stop waits for the epoch's writes
            if improved:
                state.best_epoch, state.best_val_score = epoch, row["val_score"]
            state.history.append(row)
            state.completed_epochs = epoch + 1
            if on_epoch_end:
                on_epoch_end(epoch, row, improved)
    return TrainingResult(model=None, state=state)  # no trial reads the model


@pytest.fixture
def stub_training(monkeypatch):
    """Trials train with `fake_train`: for the study's bookkeeping (the three-trials test trains for real)."""
    # The same signature as the real one, so a call the real training would refuse fails here too.
    assert inspect.signature(fake_train) == inspect.signature(src.tune.trial.train)
    monkeypatch.setattr(src.tune.trial, "train", fake_train)


def search(project: Path, pruner=None, show_progress_bar=None, **tune_overrides):
    overrides = {f"tune.{k}": v for k, v in tune_overrides.items()}
    params = with_overrides(load_params(project / "params.yaml"), overrides)
    return run_search(
        params,
        project / "params.yaml",
        overrides,
        project / "split",
        project / "best.yaml",
        project / "plots",
        pruner,
        show_progress_bar,
    )


def child_runs(parent_id: str) -> list:
    return mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        output_format="list",
    )


def parent_runs() -> list:
    return mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.`optuna.storage` != ''", output_format="list"
    )


@pytest.mark.slow
def test_three_trials_are_tracked_and_the_best_params_train(project):
    study = search(project)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3

    (parent,) = parent_runs()
    assert parent.data.metrics["best_val_score"] == pytest.approx(study.best_value)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"best.yaml", "optimization_history.png", "param_importances.png"} <= artifacts
    children = {run.data.tags["optuna.trial"]: run for run in child_runs(parent.info.run_id)}
    assert sorted(children) == ["0", "1", "2"]
    for trial in study.trials:
        # The curves' learning rate, the four loss weights and E: the denoiser has its own stage.
        assert set(trial.params) == {
            "train.learning_rate",
            *(f"loss.{name}_weight" for name in ("spatial", "exposure", "color", "smoothness")),
            "loss.exposure_level",
        }
        run = children[str(trial.number)]
        assert run.data.tags["trial_state"] == "complete"
        assert float(run.data.params["train.learning_rate"]) == pytest.approx(
            trial.params["train.learning_rate"]
        )
        assert float(run.data.params["loss.exposure_level"]) == pytest.approx(
            trial.params["loss.exposure_level"]
        )
        steps = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_psnr")
        assert [m.step for m in steps] == [1, 2]  # the curves' two epochs; no denoiser phase
        # What `fake_train` reports, so the tests that stub the training see what a real one logs.
        losses = [f"{split}_{name}" for split in ("train", "val") for name in (*LOSS_NAMES, "total")]
        assert set(run.data.metrics) == {*losses, *EPOCH_EXTRAS, *EPOCH_TIMINGS, *TRIAL_BEST}

    overlay = yaml.safe_load((project / "best.yaml").read_text())
    assert set(overlay) == {"train", "loss"}
    raw = yaml.safe_load((project / "params.yaml").read_text())
    for section, values in overlay.items():
        raw[section].update(values)
    tuned = params_from_dict(raw)
    assert tuned.train.learning_rate == pytest.approx(study.best_params["train.learning_rate"], rel=1e-3)
    _, run_id = run_training(tuned, project / "split", project / "ckpt")
    assert mlflow.get_run(run_id).info.status == "FINISHED"


@pytest.mark.slow
def test_a_second_invocation_adds_trials_to_the_same_study(project, stub_training, capsys):
    search(project, n_trials=2)
    study = search(project, n_trials=2, show_progress_bar=True)
    assert "2/2" in capsys.readouterr().err, "the bar counts this invocation's trials, not the study's"
    assert len(study.trials) == 4
    drawn = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(drawn) == 4, "a resumed study must not replay earlier draws"
    assert len(parent_runs()) == 2


@pytest.mark.slow
def test_two_worker_processes_share_one_study(project):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.tune",
            "--split",
            "split",
            "--best",
            "best.yaml",
            "--plots",
            "plots",
            "--workers",
            "2",
            "--n-trials",
            "2",
            "--storage",
            "journal/study.log",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "best params written to best.yaml" in result.stdout
    cfg = load_params(project / "params.yaml").tune
    from dataclasses import replace

    study = load_or_create_study(replace(cfg, storage=str(project / "journal/study.log")))
    assert len(study.trials) == 2
    assert len({t.user_attrs["worker_pid"] for t in study.trials}) == 2, "each worker ran one trial"


@pytest.mark.slow
def test_pruned_trials_are_recorded_as_pruned(project, stub_training):
    always = optuna.pruners.ThresholdPruner(lower=1000.0)
    with pytest.raises(PipelineError, match="no trial completed"):
        search(project, pruner=always, n_trials=2)
    study = load_or_create_study(load_params(project / "params.yaml").tune)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    (parent,) = parent_runs()
    assert {r.data.tags["trial_state"] for r in child_runs(parent.info.run_id)} == {"pruned"}


@pytest.mark.slow
def test_a_crashing_trial_fails_alone_and_the_study_goes_on(project, monkeypatch):
    def crash_first(*args, **kwargs):
        if kwargs["fingerprint_value"] == "trial-0":
            raise PipelineError("training diverged at epoch 1, step 1: total loss is not finite")
        return fake_train(*args, **kwargs)

    monkeypatch.setattr(src.tune.trial, "train", crash_first)
    study = search(project, n_trials=2)
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]
    (parent,) = parent_runs()
    failed = [r for r in child_runs(parent.info.run_id) if r.data.tags["trial_state"] == "failed"]
    assert len(failed) == 1 and failed[0].info.status == "FAILED"
    assert "not finite" in failed[0].data.tags["failure_reason"]


def test_apply_only_writes_the_studys_best_into_params(project, stub_training):
    study = search(project, n_trials=1)
    from src.tune.cli import main

    main(["--apply-only", "--params", str(project / "params.yaml")])
    applied = load_params(project / "params.yaml")
    assert applied.loss.exposure_level == pytest.approx(study.best_params["loss.exposure_level"], rel=1e-3)
    assert len(load_or_create_study(applied.tune).trials) == 1, "--apply-only runs no trial"


def test_apply_writes_values_and_keeps_comments(tmp_path):
    target = tmp_path / "params.yaml"
    target.write_text((REPO / "params.yaml").read_text())
    apply_to_params({"train": {"learning_rate": 0.0003}, "loss": {"exposure_level": 0.47}}, target)
    params = load_params(target)
    assert params.train.learning_rate == 0.0003 and params.loss.exposure_level == 0.47
    assert "# Well-exposedness level E." in target.read_text()


# The child of the test below: one worker that dies (SIGKILL: no handler runs, as under the OOM
# killer) in the middle of its trial, after its heartbeat thread has recorded a beat.
DYING_WORKER = """
import os, signal, sys, time
from src.config import TuneConfig
from src.tune.study import Heartbeat, load_or_create_study

def objective(trial):
    trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr("mlflow_run_id", sys.argv[2])
    time.sleep(1.0)  # the heartbeat thread beats as the trial starts
    os.kill(os.getpid(), signal.SIGKILL)

cfg = TuneConfig(study_name="s", storage=sys.argv[1])
load_or_create_study(cfg, heartbeat=Heartbeat(interval_s=1, grace_s=1)).optimize(objective, n_trials=1)
"""


class FakeMlflowClient:
    """The calls `_close_dead_attempt` makes, on one RUNNING run: a real store costs ~10 s to create."""

    def __init__(self):
        self.status, self.tags = "RUNNING", {}

    def __call__(self):
        return self

    def get_run(self, run_id):
        assert run_id == "dead-run"
        return SimpleNamespace(info=SimpleNamespace(status=self.status))

    def set_tag(self, run_id, key, value):
        self.tags[key] = value

    def set_terminated(self, run_id, status):
        self.status = status


def test_a_trial_whose_worker_died_is_failed_and_retried_with_its_params(tmp_path, monkeypatch):
    from src.tune.trial import _close_dead_attempt

    tracking = FakeMlflowClient()
    monkeypatch.setattr(mlflow, "MlflowClient", tracking)
    cfg = TuneConfig(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    child = subprocess.run(
        [sys.executable, "-c", DYING_WORKER, cfg.storage, "dead-run"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -9, child.stderr[-2000:]
    study = load_or_create_study(cfg, heartbeat=Heartbeat(interval_s=1, grace_s=1))
    assert study.trials[0].state == optuna.trial.TrialState.RUNNING, "left running by the dead worker"

    deadline = time.monotonic() + 30
    while study.trials[0].state == optuna.trial.TrialState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.3)  # the grace period (1 s; SQLite's clock counts whole seconds) runs out
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # what every worker does before each trial
    retried_as = []

    def objective(trial):
        retried_as.append(_close_dead_attempt(trial))
        return trial.suggest_float("x", 0.0, 1.0)

    study.optimize(objective, n_trials=1)
    dead, retry = study.trials
    assert dead.state == optuna.trial.TrialState.FAIL
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.params == dead.params
    assert retried_as == [0]
    assert [t.number for t in counted_trials(study.trials)] == [1], "a retried trial counts once"
    assert tracking.status == "KILLED" and tracking.tags["trial_state"] == "stale", "the dead run is closed"


def test_study_progress_counts_this_invocations_finished_trials():
    study = optuna.create_study(direction="maximize")
    for value in (9.0, 1.0, 5.0):
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": value / 10},
                distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
                value=value,
            )
        )
    out = io.StringIO()
    progress = StudyProgress(study, first_number=1, n_trials=4, file=out)
    progress.refresh()
    progress.close()
    assert progress.bar.n == 2
    assert "best trial 0: 9" in out.getvalue() and "2/4" in out.getvalue()


def test_default_outputs_are_not_the_committed_search():
    args = parse_args([])
    assert args.best is None and args.plots is None
    best, plots = default_outputs("zero-dce-lol")
    assert best != Path("tune/best_params.yaml") and plots != Path("tune/plots")
    for path in (best, plots / "optimization_history.png"):
        ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=REPO)
        assert ignored.returncode == 0, f"{path} must be git-ignored"
    stage = yaml.safe_load((REPO / "tune/dvc.yaml").read_text())["stages"]["tune"]
    assert "--best tune/best_params.yaml --plots tune/plots" in stage["cmd"], "the stage asks by name"


@pytest.mark.parametrize("flag", ["--n-trials", "--workers", "--epochs"])
def test_a_count_below_one_names_its_flag(flag, capsys):
    with pytest.raises(SystemExit) as exited:
        main([flag, "-1"])
    assert exited.value.code == 1
    assert capsys.readouterr().err == f"error: {flag} must be positive (got -1)\n"


@pytest.mark.slow
def test_ctrl_c_stops_the_parent_and_its_workers_within_seconds(project):
    """SIGINT to the parent's process group (a terminal's Ctrl-C): every process gone within
    seconds, each running trial FAIL with the reason, every run KILLED."""
    flags = "--split split --best best.yaml --plots plots --workers 2 --n-trials 2 --epochs 50"
    tune = Watched(["src.tune", *flags.split()], cwd=project)
    workers = []
    try:
        # Unanchored: the other worker's progress bar can share the piece of the pipe this line is in.
        tune.wait_for(r"epoch 1/50: loss ", count=2, timeout=300)  # both workers mid-trial
        workers = tune.descendants()
        assert len(workers) == 2
        signalled = time.monotonic()
        # Covers `kill -INT <parent>` too: the workers have sessions of their own, so only the parent gets it.
        os.killpg(tune.process.pid, signal.SIGINT)
        code = tune.wait(timeout=30)
        assert gone(workers, timeout=5)
        stopped_in = time.monotonic() - signalled
    finally:
        tune.kill(also=workers)
    print(f"\nSIGINT to the group: exit {code} in {stopped_in:.1f} s; lines:", *tune.stderr[-3:], sep="\n")
    assert code == 130, "\n".join(tune.stderr[-40:])
    assert stopped_in < 10
    err = "\n".join(tune.stderr)
    assert "Traceback" not in err and "failed with parameters" not in err
    # Found anywhere in a piece, not only at its start: the other worker's bar may precede it there.
    stop = re.compile(
        r"tune worker (\d): interrupted \(SIGINT\); "
        r"trial \d marked FAIL, its MLflow run KILLED"
    )
    assert sorted(m for piece in tune.segments for m in stop.findall(piece)) == ["0", "1"], err[-3000:]
    assert re.fullmatch(
        r"interrupted \(SIGINT\); 2 worker\(s\) stopped in \d+\.\d s; parent MLflow run \w{8} marked KILLED; "
        r"the study is saved in sqlite:///.*, run again to continue",
        tune.stderr[-1],
    )

    study = load_or_create_study(load_params(project / "params.yaml").tune)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"], "no trial left RUNNING"
    assert {t.user_attrs["failure_reason"] for t in study.trials} == {"interrupted by SIGINT"}
    assert {t.user_attrs["worker_pid"] for t in study.trials} == {w.pid for w in workers}, "one per worker"
    (parent,) = parent_runs()
    assert parent.info.status == "KILLED" and parent.data.tags["failure_reason"] == "interrupted by SIGINT"
    children = child_runs(parent.info.run_id)
    assert [(r.info.status, r.data.tags["trial_state"]) for r in children] == [("KILLED", "interrupted")] * 2


def test_a_storage_password_is_never_printed_or_logged():
    url = "postgresql+psycopg2://optuna:s3cret@db.internal:5432/studies"
    assert shown_storage(url) == "postgresql+psycopg2://optuna:***@db.internal:5432/studies"
    assert shown_storage("sqlite:///optuna.db") == "sqlite:///optuna.db"
    assert shown_storage("/shared/optuna-journal.log") == "/shared/optuna-journal.log"


def test_a_worker_that_loses_the_race_to_create_the_tables_opens_the_storage_again(monkeypatch):
    """Two workers starting on a fresh database both create Optuna's tables; the slower one's CREATE
    fails and it must find the other's tables. The PostgreSQL test meets this only by timing."""
    import sqlalchemy

    opened = []

    def loses_once(url, **kwargs):
        opened.append(url)
        if len(opened) == 1:
            raise sqlalchemy.exc.IntegrityError("CREATE TABLE studies", {}, Exception("duplicate key"))
        return "storage"

    monkeypatch.setattr(optuna.storages, "RDBStorage", loses_once)
    monkeypatch.setattr(src.tune.study.time, "sleep", lambda seconds: None)
    assert src.tune.study.open_storage("postgresql://u@h/db") == "storage" and len(opened) == 2
