"""The benchmark measures what it says, side by side, and reports ratios from its own numbers."""

import json
from pathlib import Path

import pytest
import yaml

from src.bench.cli import main
from src.bench.plan import training_paths
from src.bench.report import summarise
from src.errors import PipelineError
from tests.support.data import FIXTURE_DATASET
from tests.support.pipeline import tiny_params_dict


@pytest.mark.slow
def test_one_run_measures_ours_and_the_reference_and_derives_the_ratios(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict()))
    out = tmp_path / "bench.json"
    main([
        "--params", str(params), "--images", str(FIXTURE_DATASET / "our485" / "low"),
        "--train-images", "4", "--warmup-epochs", "1", "--timed-epochs", "1", "--runs", "2",
        "--sizes", "40x32", "--variants", "zero_dce_pp", "--precisions", "float32", "--out", str(out),
        "--reference-repeats", "1",
    ])  # fmt: skip
    report = json.loads(out.read_text())
    kinds = [(r["kind"], r["variant"], r.get("path"), r.get("denoiser")) for r in report["results"]]
    assert kinds == [
        ("reference_train", "reference", None, None),
        ("train", "zero_dce_pp", None, None),
        ("inference", "zero_dce_pp", "keras", "tv"),
        ("inference", "zero_dce_pp", "traced", "tv"),
        # The shipped model, and its curves alone: what the denoiser costs.
        ("inference", "zero_dce_pp", "fused", "tv"),
        ("inference", "zero_dce_pp", "fused", "none"),
    ]
    reference, ours = report["results"][0], report["results"][1]
    assert reference["images"] == ours["images"] == 4, "one timed epoch of two batches of two"
    assert all(r["peak_rss_mb"] > 50 for r in report["results"])
    assert 0 <= ours["input_wait_fraction"] < 1 and ours["pipeline_images_per_s"] > 0
    assert report["summary"]["ratios"]["train_zero_dce_pp_float32_vs_reference"] == pytest.approx(
        ours["images_per_s"] / reference["images_per_s"], abs=0.01
    )
    fused = report["results"][4]
    assert fused["ms_40x32"] > 0
    assert report["machine"]["cores"] >= 1 and report["settings"]["train_images"] == 4
    printed = capsys.readouterr().out
    assert "reference (Model.fit, fp32), run 1" in printed and "40x32" in printed
    assert "zero_dce_pp fused float32 + denoiser" in printed
    assert "zero_dce_pp fused float32, curves only" in printed


def test_ratios_are_derived_from_the_measurements_alone():
    results = [
        {"kind": "reference_train", "variant": "reference", "precision": "float32", "images_per_s": 7.0},
        {"kind": "reference_train", "variant": "reference", "precision": "float32", "images_per_s": 10.0},
        {"kind": "train", "variant": "zero_dce", "precision": "float32", "images_per_s": 12.0},
        {"kind": "train", "variant": "zero_dce", "precision": "mixed_bfloat16", "images_per_s": 16.0},
        {
            "kind": "inference",
            "variant": "zero_dce",
            "precision": "float32",
            "path": "keras",
            "ms_600x400": 300.0,
        },
        {
            "kind": "inference",
            "variant": "zero_dce",
            "precision": "float32",
            "path": "fused",
            "ms_600x400": 100.0,
        },
    ]
    summary = summarise(results)
    assert summary["ratios"]["train_zero_dce_mixed_bfloat16_vs_reference"] == 1.6
    assert summary["ratios"]["train_zero_dce_float32_vs_reference"] == 1.2, "against the fastest reference"
    assert summary["ratios"]["infer_zero_dce_float32_600x400_vs_keras"] == 3.0
    assert set(summary) == {"ratios"}, "no machine's targets in the report"


def test_without_a_split_or_images_it_says_what_to_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict()))
    with pytest.raises(SystemExit):
        main(["--params", str(params)])
    err = capsys.readouterr().err.strip().splitlines()
    # One line, naming the split file as the user would type it (the default --split is relative).
    assert err == [
        f"error: {Path('data') / 'split' / 'train.csv'}: no train split "
        "(run `dvc repro split` first, or pass --images DIR)"
    ]
    with pytest.raises(PipelineError, match=r"missing: no such file or folder$"):
        training_paths([tmp_path / "missing"], tmp_path, 4)
