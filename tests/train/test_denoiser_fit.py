"""The train_denoiser stage: the denoiser's strengths chosen on val pairs over frozen curves, the
shipped model built from them, and that model logged to the training's MLflow run."""

from __future__ import annotations

import dataclasses
import io
import json
import sys

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import yaml
from PIL import Image

from src.config import DenoiserConfig, PromoteConfig
from src.infer.enhancer import architecture_of
from src.light.network import build_light_gain, build_shadow_net
from src.model.denoise import denoiser_layer
from src.model.loading import load_keras_model
from src.model.networks import build_dce_net, inference_model
from src.train.denoiser_fit import STRENGTH_NAMES, Case, fit_denoiser, with_denoiser
from tests.support.pipeline import tiny_params, tiny_params_dict, tiny_split, use_store

BAND = (0.12, 0.30)
GRID = DenoiserConfig(
    kind="tv", luma_weights=(0.0, 0.1), chroma_weights=(0.0, 0.2), gain_powers=(0.0, 1.0), fit_images=2
)


def cases(noise: float) -> list[Case]:
    """Two val pairs as the curves leave them: the truth (a smooth scene) plus `noise`, from a
    photo 8x darker, with the gate at full strength."""
    rng = np.random.default_rng(0)
    out = []
    for tilt in (0.3, 0.6):
        rows, cols = np.mgrid[0:36, 0:44] / 44.0
        high = np.stack([0.2 + tilt * cols, 0.3 + 0.2 * rows, 0.5 - 0.3 * cols * rows], -1).astype(np.float32)
        enhanced = np.clip(high + rng.normal(0.0, noise, high.shape), 0.0, 1.0).astype(np.float32)
        low = tf.constant(high[None] / 8)
        out.append(Case(low, tf.constant(enhanced[None]), tf.constant(high[None]), strength=1.0))
    return out


def test_the_fit_scores_every_grid_point_and_keeps_the_best():
    fit = fit_denoiser(cases(0.08), GRID)
    assert len(fit.grid) == 8 and list(fit.grid.columns[:3]) == list(STRENGTH_NAMES)
    best = fit.grid.iloc[int(fit.grid["val_score"].to_numpy().argmax())]
    assert fit.strengths == tuple(best[name] for name in STRENGTH_NAMES)
    assert fit.scores["val_score"] == best["val_score"] == fit.grid["val_score"].max()
    # On noisy curves some smoothing wins over none, and the finished image beats the curves alone.
    assert fit.strengths[:2] != (0.0, 0.0)
    assert fit.scores["val_score"] > fit.scores["curves_val_score"]
    assert fit.scores["val_psnr"] > fit.scores["curves_val_psnr"]


def test_clean_curves_keep_the_first_of_the_tied_strengths_that_change_nothing():
    fit = fit_denoiser(cases(0.0), GRID)
    assert fit.strengths == (0.0, 0.0, 0.0)  # 0 and 0 at either power: a tie, the first wins
    assert fit.scores["val_psnr"] > 100, "a weight of 0 leaves the curves' output as it was"


def test_kind_none_fits_nothing_and_scores_the_curves_alone():
    fit = fit_denoiser(cases(0.08), dataclasses.replace(GRID, kind="none"))
    assert fit.strengths is None and fit.grid.empty
    assert {k: fit.scores[k] for k in ("val_psnr", "val_ssim", "val_score")} == {
        k: fit.scores[f"curves_{k}"] for k in ("val_psnr", "val_ssim", "val_score")
    }


@pytest.mark.parametrize(("variant", "scale"), [("zero_dce", 1), ("zero_dce_pp", 3)])
def test_with_denoiser_adds_the_strengths_to_the_same_curves_and_gate(variant, scale):
    keras.utils.set_random_seed(2)
    trained = build_dce_net(4, 8, variant)
    curves = inference_model(trained, scale, None, BAND)
    shipped = with_denoiser(curves, (0.05, 0.2, 1.0))
    arch = architecture_of(shipped)
    assert (arch.variant, arch.scale_factor, arch.denoiser) == (variant, scale, (0.05, 0.2, 1.0))
    assert arch.gate_band == pytest.approx(BAND)
    expected = inference_model(trained, scale, denoiser_layer(0.05, 0.2, 1.0), BAND)
    image = (np.random.default_rng(3).random((1, 30, 41, 3)) * 0.3).astype(np.float32)
    np.testing.assert_allclose(np.asarray(shipped(image)), np.asarray(expected(image)), atol=1e-6)
    alone = with_denoiser(curves, None)
    assert architecture_of(alone).denoiser is None
    np.testing.assert_allclose(np.asarray(alone(image)), np.asarray(curves(image)), atol=1e-6)


def brightening_curves(path) -> None:
    """A Zero-DCE whose curves are the same everywhere (α = -0.8, 4 times): a dark photo gains
    about 5x, its noise with it, as trained curves do."""
    trained = build_dce_net(4, 8, "zero_dce")
    conv7 = trained.get_layer("conv7")
    kernel, bias = conv7.get_weights()
    conv7.set_weights([np.zeros_like(kernel), np.full_like(bias, np.arctanh(-0.8))])
    inference_model(trained, 1, None, BAND).save(path)


def run_stage(monkeypatch, root, raw: dict) -> None:
    from stages.train_denoiser import main

    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    argv = ["stages.train_denoiser", "--curves", "models/curves.keras", "--split", "split"]
    argv += ["--light", "models/light.keras"]
    argv += ["--run-file", "models/run.json", "--model", "models/model.keras"]
    argv += ["--metrics", "reports/denoiser/metrics.json", "--params", str(params)]
    monkeypatch.setattr(sys, "argv", argv)
    main()


@pytest.mark.slow
def test_the_stage_writes_the_shipped_model_and_logs_it_to_the_training_run(tmp_path, monkeypatch, capsys):
    use_store(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)  # MLflow puts artifacts under ./mlruns
    params = tiny_params()
    tiny_split(tmp_path, params)
    (tmp_path / "models").mkdir()
    brightening_curves(tmp_path / "models/curves.keras")
    build_light_gain(build_shadow_net(4), 0.5, (0.3, 0.5), (0.02, 0.05), gate_band=(0.12, 0.3)).save(
        tmp_path / "models/light.keras"
    )
    mlflow.set_experiment(params.mlflow.experiment)
    with mlflow.start_run() as training:  # the train stage's run, finished
        mlflow.log_metric("test_zero_dce_psnr", 15.0)
    run_id = training.info.run_id
    (tmp_path / "models/run.json").write_text(json.dumps({"run_id": run_id}))
    raw = tiny_params_dict()
    raw["denoiser"].update(luma_weights=[0.0, 0.06], chroma_weights=[0.2], gain_powers=[1.0])

    run_stage(monkeypatch, tmp_path, raw)
    metrics = json.loads((tmp_path / "reports/denoiser/metrics.json").read_text())
    chosen = tuple(metrics[name] for name in STRENGTH_NAMES)
    assert metrics["kind"] == "tv" and chosen[0] in (0.0, 0.06) and chosen[1:] == (0.2, 1.0)
    assert set(metrics) == {"kind", *STRENGTH_NAMES, "val_psnr", "val_ssim", "val_score"} | {
        f"curves_val_{k}" for k in ("psnr", "ssim", "score")
    }
    shipped = load_keras_model(tmp_path / "models/model.keras")
    assert architecture_of(shipped).denoiser == chosen
    assert (architecture_of(shipped).light_scale, architecture_of(shipped).light_threshold) == (8, 0.5)
    note = f"Denoiser (tv: luma_weight {chosen[0]:g}, chroma_weight 0.2, gain_power 1), fitted on 2 val pairs"
    assert note in capsys.readouterr().out

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and len(client.search_runs([run.info.experiment_id])) == 1
    assert run.data.metrics["denoiser_luma_weight"] == chosen[0]
    assert run.data.metrics["denoiser_val_score"] == pytest.approx(metrics["val_score"])
    assert run.data.tags["mlflow.note.content"].startswith(f"**Denoiser**\n\n{note}: ")
    served = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")  # the served model: PNG in, PNG out
    png = io.BytesIO()
    Image.fromarray(np.zeros((23, 17, 3), np.uint8)).save(png, format="PNG")
    answer = served.predict(pd.DataFrame({"image": [png.getvalue()]}))
    assert Image.open(io.BytesIO(answer["image"][0])).size == (17, 23)

    # The stage again with other denoiser params: the run gains the new model, and promotion
    # registers that one, the latest.
    raw["denoiser"]["kind"] = "none"
    run_stage(monkeypatch, tmp_path, raw)
    assert json.loads((tmp_path / "reports/denoiser/metrics.json").read_text())["kind"] == "none"
    assert architecture_of(load_keras_model(tmp_path / "models/model.keras")).denoiser is None
    assert len(client.get_run(run_id).outputs.model_outputs) == 2
    # The run's description keeps one denoiser section, the latest.
    description = client.get_run(run_id).data.tags["mlflow.note.content"]
    assert description.startswith("**Denoiser**\n\nDenoiser (none), fitted on 2 val pairs: ")
    assert description.count("**Denoiser**") == 1
    from src.infer.enhance import load_model
    from src.tracking import promote as promotion

    promotion.promote(run_id, PromoteConfig(model_name="zd-denoiser-rerun"))
    champion = load_model("models:/zd-denoiser-rerun@champion")
    assert architecture_of(champion).denoiser is None
