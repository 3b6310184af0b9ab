"""params.yaml validation: every mistake is one line naming the key."""

import pytest
import yaml

from src.config import load_params, params_from_dict
from src.errors import PipelineError
from tests.support.pipeline import REPO


def repo_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_the_committed_params_load_with_the_documented_defaults():
    params = load_params(REPO / "params.yaml")
    assert params.split.train == 350 and params.split.val == 100 and params.split.test == 36
    assert params.loss.smoothness_weight == 200.0 and params.train.precision == "float32"
    assert params.flat()["train.learning_rate"] == pytest.approx(3e-4)
    assert params.model.variant == "zero_dce_pp" and params.model.denoiser == "n2n"
    assert params.model.gate_band == (0.12, 0.30) and params.train.denoiser_epochs == 20


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("train", "lerning_rate", 0.1, r"unknown key\(s\) lerning_rate"),
        ("train", "precision", "float16", "not one of float32, mixed_bfloat16"),
        ("train", "epochs", "ten", r"train.epochs: expected int, got 'ten'"),
        ("loss", "exposure_level", 1.5, r"exposure_level must lie in \(0, 1\)"),
        ("tune", "learning_rate", [0.1], r"expected a \[low, high\] range"),
        ("tune", "learning_rate", [0.1, 0.01], "0 < low <= high"),
        ("train", "crop_size", 8, "at least loss.exposure_patch"),
        ("evaluate", "tv_weights", [], r"evaluate.tv_weights: expected a non-empty list of numbers >= 0"),
        ("evaluate", "tv_weights", 0.1, r"evaluate.tv_weights: expected a non-empty list"),
        ("evaluate", "tv_weights", [0.0, -0.1], r"evaluate.tv_weights: expected a non-empty list"),
        ("evaluate", "tv_weights", [0.0, "x"], r"evaluate.tv_weights: expected float, got 'x'"),
        ("evaluate", "tv_fit_images", -1, r"evaluate.tv_fit_images must be >= 0"),
    ],
)
def test_bad_values_are_named(section, key, value, message):
    raw = repo_params()
    raw[section][key] = value
    with pytest.raises(PipelineError, match=message):
        params_from_dict(raw)


def test_ints_are_accepted_for_floats_but_bools_are_not_ints():
    raw = repo_params()
    raw["train"]["learning_rate"] = 1
    assert params_from_dict(raw).train.learning_rate == 1.0
    raw["train"]["epochs"] = True
    with pytest.raises(PipelineError, match="expected int"):
        params_from_dict(raw)


def test_tv_weights_are_a_grid_of_floats():
    params = load_params(REPO / "params.yaml")
    assert params.evaluate.tv_weights == (0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15)
    assert params.evaluate.tv_fit_images == 20
    raw = repo_params()
    raw["evaluate"]["tv_weights"] = [0, 1]  # ints are accepted, as for any float setting
    assert params_from_dict(raw).evaluate.tv_weights == (0.0, 1.0)


def test_unreadable_files_are_one_line_errors(tmp_path):
    with pytest.raises(PipelineError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")
    broken = tmp_path / "params.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_params(broken)
