"""params.yaml validation: every mistake is one line naming the key."""

import dataclasses
import re

import pydantic
import pytest
import yaml

from src.config import load_params, params_from_dict, read_yaml
from src.errors import PipelineError
from tests.support.pipeline import REPO


def repo_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_the_committed_params_load_with_the_documented_defaults():
    params = load_params(REPO / "params.yaml")
    assert params.split.train == 350 and params.split.val == 100 and params.split.test == 36
    assert params.loss.smoothness_weight == 371.6 and params.train.precision == "float32"
    assert params.flat()["train.learning_rate"] == pytest.approx(8.329e-4)  # tune/best_params.yaml
    assert params.model.variant == "zero_dce_pp" and params.denoiser.kind == "tv"
    assert params.model.gate_band == (0.12, 0.30) and params.denoiser.fit_images == 25
    grids = (params.denoiser.luma_weights, params.denoiser.chroma_weights, params.denoiser.gain_powers)
    assert all(grid and all(isinstance(v, float) for v in grid) for grid in grids)
    assert params.tune.epochs == 5 and params.tune.val_images == 10
    assert params.mlflow.experiment == "zero-dce-lol"
    assert not hasattr(params.mlflow, "tracking_uri"), "the store is MLflow's own resolution"


def test_flat_is_section_dot_key_with_tuples_for_ranges():
    params = load_params(REPO / "params.yaml")
    flat = params.flat()
    assert set(flat) == {
        f"{section.name}.{field.name}"
        for section in dataclasses.fields(params)
        for field in dataclasses.fields(getattr(params, section.name))
    }
    assert flat["tune.learning_rate"] == (3e-5, 1e-3) and flat["model.gate_band"] == (0.12, 0.30)
    assert isinstance(flat["evaluate.tv_weights"], tuple) and flat["fetch.timeout_s"] == 60.0
    assert isinstance(flat["fetch.timeout_s"], float), "ints given for floats come out as floats"


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("train", "lerning_rate", 0.1, r"^params: train: unknown key\(s\) lerning_rate; known: batch_size, "),
        (
            "train",
            "precision",
            "float16",
            r"^params: train.precision: 'float16' is not one of float32, mixed_",
        ),
        ("model", "variant", "x", r"^params: model.variant: 'x' is not one of zero_dce, zero_dce_pp$"),
        ("train", "epochs", "ten", r"^params: train.epochs: expected an integer, got 'ten'$"),
        ("train", "epochs", 3.0, r"^params: train.epochs: expected an integer, got 3.0$"),
        ("train", "learning_rate", "fast", r"^params: train.learning_rate: expected a number, got 'fast'$"),
        ("train", "learning_rate", True, r"^params: train.learning_rate: expected a number, got True$"),
        ("train", "learning_rate", float("nan"), r"train.learning_rate: expected a finite number"),
        ("train", "learning_rate", 0, r"^params: train.learning_rate: must be > 0, got 0$"),
        ("train", "fused_loss", "yes", r"^params: train.fused_loss: expected true or false, got 'yes'$"),
        ("fetch", "url", 3, r"^params: fetch.url: expected a string, got 3$"),
        ("loss", "exposure_level", 1.5, r"^params: loss.exposure_level: must be < 1, got 1.5$"),
        ("model", "denoiser", "n2n", r"^params: model: unknown key\(s\) denoiser; known: exposure_gate, "),
        ("denoiser", "kind", "n2n", r"^params: denoiser.kind: 'n2n' is not one of tv, none$"),
        (
            "denoiser",
            "chroma_weights",
            [],
            r"denoiser.chroma_weights: expected a non-empty list of numbers >= 0",
        ),
        ("denoiser", "gain_powers", [1.0, -0.5], r"denoiser.gain_powers\[1\]: must be >= 0, got -0.5"),
        ("denoiser", "fit_images", -1, r"^params: denoiser.fit_images: must be >= 0, got -1$"),
        ("model", "gate_band", [0.1, 1.0], r"^params: model.gate_band: range must lie in \(0, 1\)"),
        ("tune", "learning_rate", [0.1], r"^params: tune.learning_rate: expected a \[low, high\] range"),
        ("tune", "learning_rate", [0.1, 0.01], r"tune.learning_rate: range needs 0 < low <= high"),
        (
            "tune",
            "learning_rate",
            ["a", 0.01],
            r"^params: tune.learning_rate\[0\]: expected a number, got 'a'",
        ),
        ("tune", "exposure_level", [0.4, 1.2], r"tune.exposure_level: range must lie in \(0, 1\)"),
        ("tune", "n_trials", 0, r"^params: tune.n_trials: must be > 0, got 0$"),
        ("tune", "workers", 0, r"^params: tune.workers: must be > 0, got 0$"),
        ("tune", "epochs", -1, r"^params: tune.epochs: must be > 0, got -1$"),
        (
            "train",
            "crop_size",
            8,
            r"^params: train.crop_size \(8\) must be at least loss.exposure_patch \(16\)$",
        ),
        (
            "train",
            "crop_size",
            130,
            r"train.crop_size \(130\) must be a multiple of loss.spatial_region \(4\)",
        ),
        (
            "tune",
            "heartbeat_grace_s",
            60,
            r"^params: tune.heartbeat_grace_s \(60\) must be longer than tune.heartbeat_interval_s \(60\)",
        ),
        ("tune", "heartbeat_interval_s", 0, r"^params: tune.heartbeat_interval_s: must be > 0, got 0$"),
        ("evaluate", "tv_weights", [], r"evaluate.tv_weights: expected a non-empty list of numbers >= 0"),
        ("evaluate", "tv_weights", 0.1, r"evaluate.tv_weights: expected a non-empty list"),
        ("evaluate", "tv_weights", [0.0, -0.1], r"evaluate.tv_weights\[1\]: must be >= 0, got -0.1"),
        ("evaluate", "tv_weights", [0.0, "x"], r"evaluate.tv_weights\[1\]: expected a number, got 'x'"),
        ("evaluate", "tv_fit_images", -1, r"^params: evaluate.tv_fit_images: must be >= 0, got -1$"),
        (
            "mlflow",
            "tracking_uri",
            "sqlite:///x.db",
            r"mlflow: unknown key\(s\) tracking_uri; known: experiment$",
        ),
    ],
)
def test_bad_values_are_one_line_naming_the_key(section, key, value, message):
    raw = repo_params()
    raw[section][key] = value
    with pytest.raises(PipelineError, match=message) as err:
        params_from_dict(raw)
    assert "\n" not in str(err.value)


def test_structural_mistakes_are_named():
    raw = repo_params()
    raw["trian"] = {}
    with pytest.raises(
        PipelineError, match=r"^params: unknown section\(s\) trian; known: denoiser, evaluate, fetch, "
    ):
        params_from_dict(raw)
    raw = repo_params()
    raw["train"] = [1]
    with pytest.raises(PipelineError, match=r"^params: train: expected a mapping, got \[1\]$"):
        params_from_dict(raw)
    raw = repo_params()
    del raw["fetch"]["url"]
    with pytest.raises(PipelineError, match=r"^params: fetch: missing required key 'url'$"):
        params_from_dict(raw)
    with pytest.raises(PipelineError, match="expected a mapping of sections"):
        params_from_dict([1], where="params.yaml")


def test_only_the_first_problem_is_shown_with_a_count_of_the_rest():
    raw = repo_params()
    raw["train"].update(epochs="ten", batch_size=0, lerning_rate=1, foo=2)
    with pytest.raises(PipelineError, match=r"^x.yaml: \S+: .* \(and 2 more problems\)$"):
        params_from_dict(raw, where="x.yaml")


def test_missing_and_empty_sections_take_their_defaults():
    raw = repo_params()
    del raw["promote"]
    raw["tune"] = None  # `tune:` with every key commented out
    params = params_from_dict(raw)
    assert params.promote.model_name == "zero-dce" and params.tune.n_trials == 20


def test_ints_are_accepted_for_floats_but_bools_are_not_ints():
    raw = repo_params()
    raw["train"]["learning_rate"] = 1
    assert params_from_dict(raw).train.learning_rate == 1.0
    raw["train"]["epochs"] = True
    with pytest.raises(PipelineError, match=r"train.epochs: expected an integer, got True"):
        params_from_dict(raw)


@pytest.mark.parametrize(
    ("text", "value"), [("1e-3", 1e-3), ("3E-4", 3e-4), ("1.5e+2", 150.0), ("-2e1", -20.0)]
)
def test_exponent_floats_are_numbers(text, value, tmp_path):
    """YAML 1.1 (PyYAML's resolver) reads `1e-3` as a string; params.yaml is read as YAML 1.2."""
    (tmp_path / "p.yaml").write_text(f"a: {text}")
    assert read_yaml(tmp_path / "p.yaml") == {"a": value}


def test_a_params_file_may_write_1e_3(tmp_path):
    target = tmp_path / "params.yaml"
    text = (REPO / "params.yaml").read_text()
    assert "learning_rate: 0.0008329" in text
    target.write_text(text.replace("learning_rate: 0.0008329", "learning_rate: 1e-3"))
    assert load_params(target).train.learning_rate == 1e-3


def test_the_loader_changes_only_exponent_floats(tmp_path):
    (tmp_path / "p.yaml").write_text("i: 12\nf: 0.5\ns: fast\nq: '1e-3'\nb: true\nn: .5\nv: 1.2.3\n")
    loaded = read_yaml(tmp_path / "p.yaml")
    assert loaded == {"i": 12, "f": 0.5, "s": "fast", "q": "1e-3", "b": True, "n": 0.5, "v": "1.2.3"}
    assert isinstance(loaded["i"], int)


def test_a_float_setting_read_by_plain_safe_load_still_takes_1e_3():
    raw = repo_params()
    raw["train"]["learning_rate"] = yaml.safe_load("x: 1e-3")["x"]  # the string "1e-3"
    assert params_from_dict(raw).train.learning_rate == 1e-3
    raw["train"]["epochs"] = "1e3"  # only float settings read numbers from text
    with pytest.raises(PipelineError, match=r"train.epochs: expected an integer, got '1e3'"):
        params_from_dict(raw)


def test_replace_validates_like_params_yaml():
    params = load_params(REPO / "params.yaml")
    changed = dataclasses.replace(params, train=dataclasses.replace(params.train, learning_rate=1))
    assert changed.train.learning_rate == 1.0 and isinstance(changed.train.learning_rate, float)
    with pytest.raises(pydantic.ValidationError, match="learning_rate"):
        dataclasses.replace(params.train, learning_rate=-1.0)
    with pytest.raises(pydantic.ValidationError, match="variant"):
        dataclasses.replace(params.model, variant="x")
    with pytest.raises(pydantic.ValidationError, match=r"must be at least loss.exposure_patch"):
        dataclasses.replace(params, train=dataclasses.replace(params.train, crop_size=8))
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.train.epochs = 3  # type: ignore[misc]


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
    broken.write_text("train:\n  epochs: 3\n  crop_size: [unclosed\n")
    with pytest.raises(
        PipelineError, match=rf"^{re.escape(str(broken))}:4:1: not valid YAML \(expected ',' or '\]'"
    ) as err:
        load_params(broken)
    assert "\n" not in str(err.value)
    broken.write_text("train:\n  epochs: 3\n   bad: indent\n")
    with pytest.raises(
        PipelineError,
        match=rf"^{re.escape(str(broken))}:3:7: not valid YAML \(mapping values are not allowed",
    ):
        load_params(broken)


def test_errors_in_a_file_name_the_file(tmp_path):
    target = tmp_path / "params.yaml"
    target.write_text(
        (REPO / "params.yaml").read_text().replace("learning_rate: 0.0008329", "learning_rate: fast")
    )
    with pytest.raises(
        PipelineError,
        match=rf"^{re.escape(str(target))}: train.learning_rate: expected a number, got 'fast'$",
    ):
        load_params(target)


def test_a_key_given_twice_is_one_line_naming_it_and_both_lines(tmp_path):
    """The last value would silently win (`epochs` given twice trained with the second)."""
    text = (REPO / "params.yaml").read_text()
    first = text.splitlines().index(next(line for line in text.splitlines() if line.startswith("  epochs:")))
    lines = text.splitlines()
    lines.insert(first + 1, "  epochs: 3")
    (tmp_path / "params.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(PipelineError) as refused:
        load_params(tmp_path / "params.yaml")
    assert str(refused.value) == (
        f"{tmp_path / 'params.yaml'}:{first + 2}: key 'epochs' given twice in one section "
        f"(first at line {first + 1}); remove one"
    )
