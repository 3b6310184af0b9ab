"""Training runs end to end at tiny size: MLflow run contents, resuming, divergence."""

import dataclasses
import json
import os
import re
import signal
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from src import runtime, signals
from src.errors import PipelineError
from src.tracking import runs as tracking
from src.train.checkpoints import STATE_FILE, Checkpoints, TrainingState
from src.train.run import ORPHAN_REASON, run_training, write_training_outputs
from src.train.trainer import Trainer
from tests.support.pipeline import tiny_params, tiny_split, use_store


@pytest.fixture(autouse=True)
def isolated_mlflow(tmp_path, monkeypatch):
    use_store(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)  # MLflow puts artifacts under ./mlruns
    yield
    while mlflow.active_run():
        mlflow.end_run()


@pytest.mark.slow
def test_run_logs_curves_params_tags_and_no_model(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")  # the default 10 s outlasts the run
    params = tiny_params()
    runtime.configure(params.train)
    split = tiny_split(tmp_path, params)
    result, run_id = run_training(params, split, tmp_path / "ckpt")

    run = mlflow.MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED"
    lr = f"{params.train.learning_rate:.0e}"  # e.g. 8e-04
    assert re.fullmatch(rf"zero_dce lr{lr} e2 @\w{{7}} \d{{4}}-\d{{6}}", run.info.run_name)
    note = run.data.tags["mlflow.note.content"]
    assert f"validation PSNR **{result.best['val_psnr']:.2f} dB**" in note
    assert run.data.tags["data_version"] in note
    assert any(key.startswith("system/cpu_utilization") for key in run.data.metrics)

    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert sorted(inputs) == ["lol-test", "lol-train", "lol-val"]
    contexts = {name: {t.key: t.value for t in d.tags}["mlflow.data.context"] for name, d in inputs.items()}
    assert contexts == {"lol-train": "training", "lol-val": "validation", "lol-test": "evaluation"}
    assert inputs["lol-train"].dataset.digest.startswith(run.data.tags["data_version"][:8])
    assert json.loads(inputs["lol-val"].dataset.profile)["num_rows"] == params.split.val

    # The first val images at every step: 0 is the input, then one per epoch.
    images = [a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "images")]
    first_val = Path(pd.read_csv(split / "val.csv")["low"][0]).stem
    # MLflow names them <key>+step+<step>+timestamp+...png (plus a compressed copy for the UI).
    steps = sorted(
        int(path.split("+step+")[1].split("+")[0])
        for path in images
        if path.startswith(f"images/val_{first_val}+") and path.endswith(".png")
    )
    assert steps == [0, 1, 2]
    assert run.data.params["train.learning_rate"] == str(params.train.learning_rate)
    # The denoiser section is the train_denoiser stage's to log: it may rerun alone with other values.
    assert not [key for key in run.data.params if key.startswith("denoiser.")]
    assert run.data.tags["data_version"] and run.data.tags["git_commit"]
    history = {
        key: mlflow.MlflowClient().get_metric_history(run_id, key) for key in ("train_total", "val_spatial")
    }
    # Two epochs of the curves, and nothing else: the denoiser is fitted by its own stage.
    assert [m.step for m in history["train_total"]] == [1, 2]
    assert [m.step for m in history["val_spatial"]] == [1, 2]
    assert not [key for key in run.data.metrics if "denoise" in key or "n2n" in key or key == "phase"]
    for key in ("train_exposure", "val_color", "val_smoothness", "val_psnr", "val_ssim", "best_val_score"):
        assert key in run.data.metrics
    assert run.data.metrics["best_val_score"] == pytest.approx(
        max(r["val_score"] for r in result.state.history)
    )

    # The model is logged by the train_denoiser stage, once it is finished (tests/train/test_denoiser_fit.py).
    assert not run.outputs.model_outputs
    assert not mlflow.MlflowClient().list_artifacts(run_id, "model")

    outputs = tmp_path / "out"
    write_training_outputs(
        result,
        run_id,
        outputs / "m.keras",
        outputs / "run.json",
        outputs / "history.csv",
        outputs / "metrics.json",
    )
    assert (outputs / "m.keras").stat().st_size > 0
    assert run_id in (outputs / "run.json").read_text()


@pytest.mark.slow
def test_killed_training_resumes_from_its_last_epoch(tmp_path, monkeypatch, capsys):
    params = tiny_params(epochs=3)
    runtime.configure(params.train)
    split = tiny_split(tmp_path, params)
    checkpoints = tmp_path / "ckpt"

    import src.train.run as experiment

    real_train = experiment.train

    def train_then_die(*args, **kwargs):
        user_callback = kwargs["on_epoch_end"]

        def die_after_second(epoch, row, improved):
            user_callback(epoch, row, improved)
            if epoch == 1:
                raise KeyboardInterrupt

        kwargs["on_epoch_end"] = die_after_second
        return real_train(*args, **kwargs)

    monkeypatch.setattr(experiment, "train", train_then_die)
    with pytest.raises(KeyboardInterrupt) as stopped:
        run_training(params, split, checkpoints)
    first_run = mlflow.MlflowClient().search_runs(
        [mlflow.get_experiment_by_name(params.mlflow.experiment).experiment_id]
    )[0]
    assert first_run.info.status == "KILLED"
    assert first_run.data.tags["failure_reason"] == "interrupted by SIGINT"
    assert signals.stop_line(stopped.value) == (
        f"interrupted (SIGINT); MLflow run {first_run.info.run_id[:8]} marked KILLED; "
        "rerun to resume after epoch 2 of 3"
    )
    assert (checkpoints / STATE_FILE).exists()
    monkeypatch.setattr(experiment, "train", real_train)
    capsys.readouterr()

    result, run_id = run_training(params, split, checkpoints)
    printed = capsys.readouterr().err.splitlines()
    assert any(line.startswith("resuming after epoch 2 of 3") for line in printed)
    assert run_id == first_run.info.run_id, "the resumed training continues the same MLflow run"
    resumed = mlflow.get_run(run_id)
    assert resumed.info.status == "FINISHED", "the rerun continues the same run to its end"
    assert "failure_reason" not in resumed.data.tags, "a finished run shows no stale stop"
    assert [row["epoch"] for row in result.state.history] == [1, 2, 3]
    assert "phase" not in result.state.history[0]
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(run_id, "train_total")]
    assert steps == [1, 2, 3]
    assert mlflow.MlflowClient().get_run(run_id).data.tags["resumed_at_epoch"] == "2"


@pytest.mark.slow
def test_a_stop_during_a_checkpoint_waits_for_it(tmp_path, monkeypatch):
    """SIGTERM while an epoch is being saved: the save completes, then the training stops, so the
    checkpoint and the state naming it agree (a rerun resumes from a whole epoch)."""
    params = tiny_params(epochs=2)
    runtime.configure(params.train)
    split = tiny_split(tmp_path, params)
    real_save = Checkpoints.save

    def signalled_save(self, state, improved):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)  # the handler has run by now (and deferred the stop)
        real_save(self, state, improved)

    monkeypatch.setattr(Checkpoints, "save", signalled_save)
    with pytest.raises(signals.Interrupted), signals.stop_on_signals():
        run_training(params, split, tmp_path / "ckpt")
    saved = json.loads((tmp_path / "ckpt" / STATE_FILE).read_text())
    assert saved["completed_epochs"] == 1
    assert saved["checkpoint"] == "epoch-0001" and (tmp_path / "ckpt" / "epoch-0001.index").is_file()
    (run,) = mlflow.search_runs(experiment_names=[params.mlflow.experiment], output_format="list")
    assert run.info.status == "KILLED" and run.data.tags["failure_reason"] == "interrupted by SIGTERM"
    assert [m.step for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_psnr")] == [1]


@pytest.mark.slow
def test_interrupted_trainings_with_other_params_leave_no_dead_end(tmp_path, monkeypatch):
    """P stopped after an epoch; Q (other params) stopped inside its first epoch; P again trains
    to its end: Q's start replaced P's folder whole, so no state names a checkpoint that is gone."""
    p, q = tiny_params(epochs=2), tiny_params(epochs=2, learning_rate=5e-4)
    runtime.configure(p.train)
    split = tiny_split(tmp_path, p)
    import src.train.loop as loop
    import src.train.run as experiment

    real_train, real_epoch = experiment.train, loop.train_epoch

    def stopped_after_the_first_epoch(*args, **kwargs):
        user_callback = kwargs["on_epoch_end"]

        def stop(epoch, row, improved):
            user_callback(epoch, row, improved)
            raise KeyboardInterrupt

        return real_train(*args, **{**kwargs, "on_epoch_end": stop})

    def stopped_inside_the_epoch(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "train", stopped_after_the_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_training(p, split, tmp_path / "ckpt")
    monkeypatch.setattr(experiment, "train", real_train)
    monkeypatch.setattr(loop, "train_epoch", stopped_inside_the_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_training(q, split, tmp_path / "ckpt")
    monkeypatch.setattr(loop, "train_epoch", real_epoch)

    result, run_id = run_training(p, split, tmp_path / "ckpt")
    assert [row["epoch"] for row in result.state.history] == [1, 2]
    runs = mlflow.search_runs(experiment_names=[p.mlflow.experiment], output_format="list")
    statuses = {run.info.run_id: run.info.status for run in runs}
    assert statuses.pop(run_id) == "FINISHED"
    assert sorted(statuses.values()) == ["KILLED", "KILLED"], "the two stopped runs, neither RUNNING"


def test_a_state_that_contradicts_its_folder_is_discarded_with_one_line(tmp_path, capsys):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    state = TrainingState("f", completed_epochs=3, best_epoch=1, checkpoint="epoch-0003")
    state.best_weights = "best-0002.weights.h5"
    cases = {
        json.dumps(dataclasses.asdict(state)): "the checkpoint of epoch 3 is missing",
        "{half a fi": f"{STATE_FILE} is not a training state",
        '{"fingerprint": "f", "epochs": 3}': f"{STATE_FILE} is not a training state",
    }
    for text, problem in cases.items():
        (folder / STATE_FILE).write_text(text)
        assert Checkpoints.load_state(folder, "f") is None
        assert capsys.readouterr().err == f"{folder}: {problem}; discarding it and starting afresh\n"
    (folder / STATE_FILE).write_text(json.dumps(dataclasses.asdict(state)))
    (folder / "epoch-0003.index").write_bytes(b"")
    assert Checkpoints.load_state(folder, "f") is None
    assert "the weights of its best epoch (2) is missing" in capsys.readouterr().err
    (folder / state.best_weights).write_bytes(b"")
    assert Checkpoints.load_state(folder, "f") == state
    assert Checkpoints.load_state(folder, "other params") is None
    assert not capsys.readouterr().err, "another experiment's folder is replaced without a word"


@pytest.mark.slow
def test_a_run_left_running_by_a_killed_training_is_closed_by_the_next(tmp_path, capsys):
    """What a SIGKILL leaves (the run RUNNING, its id in the folder's state), then a training
    with other params in that folder: the orphan is ended KILLED, with why, before the new run."""
    params = tiny_params(epochs=1)
    runtime.configure(params.train)
    split = tiny_split(tmp_path, params)
    tracking.configure(params.mlflow)
    client = mlflow.MlflowClient()
    experiment_id = mlflow.get_experiment_by_name(params.mlflow.experiment).experiment_id
    orphan = client.create_run(experiment_id).info.run_id
    (tmp_path / "ckpt").mkdir()
    state = TrainingState("other params", run_id=orphan)
    (tmp_path / "ckpt" / STATE_FILE).write_text(json.dumps(dataclasses.asdict(state)))

    _, run_id = run_training(params, split, tmp_path / "ckpt")
    closed = client.get_run(orphan)
    assert closed.info.status == "KILLED"
    assert closed.data.tags["failure_reason"] == ORPHAN_REASON
    assert closed.info.end_time < client.get_run(run_id).info.start_time, "closed before the new run"
    assert f"MLflow run {orphan[:8]} of a killed training marked KILLED" in capsys.readouterr().err


@pytest.mark.slow
def test_non_finite_loss_stops_with_a_clear_error_and_a_failed_run(tmp_path, monkeypatch):
    params = tiny_params()
    runtime.configure(params.train)
    split = tiny_split(tmp_path, params)
    real_step = Trainer.train_step

    def poisoned(self, images):
        losses = dict(real_step(self, images))
        losses["total"] = losses["total"] * float("nan")
        return losses

    monkeypatch.setattr(Trainer, "train_step", poisoned)
    with pytest.raises(PipelineError, match="diverged at epoch 1, step 1: total loss is not finite"):
        run_training(params, split, tmp_path / "ckpt")
    runs = mlflow.search_runs(experiment_names=[params.mlflow.experiment], output_format="list")
    assert runs[0].info.status == "FAILED"
    assert "not finite" in runs[0].data.tags["failure_reason"]
    assert not list(Path(tmp_path).glob("**/*.keras"))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["zero_dce", "zero_dce_pp"])
def test_fused_loss_gives_the_op_by_op_losses_and_gradients(tmp_path, variant):
    import dataclasses

    import tensorflow as tf

    base = tiny_params()
    model = dataclasses.replace(base.model, variant=variant, scale_factor=4)
    fused = Trainer(dataclasses.replace(base, model=model))
    plain = Trainer(
        dataclasses.replace(base, model=model, train=dataclasses.replace(base.train, fused_loss=False))
    )
    plain.model.set_weights(fused.model.get_weights())
    images = tf.constant(np.random.default_rng(8).random((2, 32, 32, 3)).astype(np.float32) * 0.4)
    (fused_losses, fused_grads), (plain_losses, plain_grads) = (
        tf.function(t.batch_gradients)(images) for t in (fused, plain)
    )
    for key in plain_losses:
        np.testing.assert_allclose(fused_losses[key], plain_losses[key], rtol=1e-4, atol=1e-7)
    for a, b in zip(fused_grads, plain_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-7)
    low = tf.constant(np.random.default_rng(9).random((1, 40, 52, 3)).astype(np.float32) * 0.3)
    high = tf.constant(np.random.default_rng(10).random((1, 40, 52, 3)).astype(np.float32))
    fused_val, plain_val = fused.val_step(low, high), plain.val_step(low, high)
    for key in plain_val:
        np.testing.assert_allclose(fused_val[key], plain_val[key], rtol=1e-4, atol=1e-6)


def test_validation_scores_the_finished_image_with_the_reference_denoiser():
    """Training picks its best epoch on what ships (curves, gate, denoiser), with the denoiser at
    fixed strengths, so no denoiser param changes which curves are trained."""
    from src.evaluate.metrics import batch_psnr, batch_ssim
    from src.model.denoise import REFERENCE_STRENGTHS
    from src.train.denoiser_fit import with_denoiser
    from src.train.float32_model import float32_inference_model

    params = tiny_params()
    trainer = Trainer(params)
    low = tf.constant(np.random.default_rng(9).random((1, 40, 52, 3)).astype(np.float32) * 0.3)
    high = tf.constant(np.random.default_rng(10).random((1, 40, 52, 3)).astype(np.float32))
    got = trainer.val_step(low, high)
    curves = float32_inference_model(trainer.model, params)
    shipped = with_denoiser(curves, REFERENCE_STRENGTHS)
    finished = shipped(low)
    np.testing.assert_allclose(got["psnr"], batch_psnr(finished, high)[0], atol=1e-3)
    np.testing.assert_allclose(got["ssim"], batch_ssim(finished, high)[0], atol=1e-5)
    assert abs(float(got["psnr"]) - float(batch_psnr(curves(low), high)[0])) > 1e-2, "the denoiser counts"
