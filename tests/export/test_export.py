"""TFLite export: parity with Keras at several sizes from one file, the CLI, and its refusals.

The models are tiny and untrained (2 iterations, 4 filters): parity is about the
converter and the runtime, and random weights give curves as uneven as trained ones.
Timing is cut to one run; the 600×400 numbers are for the CLI on a real model.
"""

import inspect
import json

import keras
import numpy as np
import pytest
from keras import layers, ops

from src.data.images import to_unit_float
from src.errors import PipelineError
from src.export.cli import main
from src.export.convert import BUILTINS
from src.export.parity import export_onnx, export_tflite, report_path
from src.export.runners import OnnxEnhancer, TFLiteEnhancer
from src.export.samples import load_images, synthetic_images
from src.infer.enhancer import Enhancer
from src.model.networks import build_dce_net, inference_model
from tests.support.data import FIXTURE_DATASET, fixture_pair


def tiny_model(**kwargs: object) -> keras.Model:
    keras.utils.set_random_seed(3)
    scale_factor = kwargs.pop("scale_factor", 1)
    training = build_dce_net(iterations=2, filters=4, **kwargs)
    return inference_model(training, scale_factor) if scale_factor != 1 else inference_model(training)


def check_images() -> list[tuple[str, np.ndarray]]:
    """A real 80x120 LOL image and a synthetic one of another, odd, size."""
    low, _ = fixture_pair("eval15", 1)
    return [("eval15/1", to_unit_float(low)), *synthetic_images([(37, 53)])]


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "zero-dce.tflite"
    report = export_tflite(model, out, check_images(), timing_runs=1, source="tiny")
    return out, report


def stray_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_export_matches_keras_at_every_size_from_one_file(model, exported):
    out, report = exported
    assert out.is_file() and report.passed
    assert report.ops_set == BUILTINS and report.select_tf_ops == []
    assert report.input_signature == "[1, -1, -1, 3] float32"
    assert [(i.height, i.width) for i in report.images] == [(80, 120), (37, 53)]
    assert report.max_abs_diff < 1e-5 and report.min_psnr_db > 90

    tflite, keras_net = TFLiteEnhancer(out, num_threads=1), Enhancer(model)
    rng = np.random.default_rng(1)
    for height, width in [(17, 29), (64, 48), (17, 29), (1, 1)]:  # back and forth: resize each time
        image = rng.uniform(0.0, 0.4, (height, width, 3)).astype(np.float32)
        got = tflite(image)
        assert got.shape == (height, width, 3) and got.dtype == np.float32
        np.testing.assert_allclose(got, keras_net(image), atol=1e-5, rtol=0)


def test_report_is_written_next_to_the_file(exported):
    out, report = exported
    saved = json.loads(report_path(out).read_text())
    assert report_path(out).name == "zero-dce.tflite.parity.json"
    assert saved["passed"] is True and saved["source"] == "tiny" and saved["quantization"] == "none"
    assert saved["format"] == "tflite" and saved["file"] == str(out)
    assert saved["max_abs_diff"] == report.max_abs_diff and len(saved["images"]) == 2
    assert {"CONV_2D", "TANH", "CONCATENATION"} <= set(saved["ops"])
    assert "DELEGATE" not in saved["ops"]  # listed before XNNPACK takes the nodes over
    timing = saved["timing"]
    assert (timing["height"], timing["width"]) == (400, 600)
    assert timing["exported_ms"] > 0 and timing["keras_ms"] > 0 and timing["cpu_count"] >= 1
    assert "CPUs" in timing["machine"]
    assert stray_files(out.parent) == []


def test_cli_writes_file_and_report(model_file, tmp_path, capsys):
    out = tmp_path / "nested" / "model.tflite"
    images = str(FIXTURE_DATASET / "eval15" / "low")
    argv = ["--model", str(model_file), "--output", str(out), "--images", images, "--timing-runs", "0"]
    assert main(argv) == 0
    report = json.loads(report_path(out).read_text())
    assert out.is_file() and report["passed"] and report["timing"] is None
    assert len(report["images"]) == 3 and report["image_source"] == "--images"
    printed = capsys.readouterr().out
    assert "parity on 3 images" in printed and str(out) in printed


def test_unmet_tolerance_is_one_line_and_leaves_the_old_file(model_file, tmp_path, capsys):
    out = tmp_path / "model.tflite"
    out.write_bytes(b"previous export")
    argv = ["--model", str(model_file), "--output", str(out), "--tolerance", "-1", "--timing-runs", "0"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--images", str(FIXTURE_DATASET / "eval15" / "low" / "1.png")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {out}: TFLite output differs")
    assert "nothing written" in err
    assert out.read_bytes() == b"previous export"
    assert not report_path(out).exists() and stray_files(tmp_path) == []


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--model", "{tmp}/missing.keras"], "missing.keras: model file not found"),
        (["--model", "models:/zero-dce@champion"], "no MLflow store"),
        (["--images", "{tmp}/nowhere.png"], "nowhere.png: no such file or folder"),
    ],
)
def test_bad_model_or_images_are_one_line(args, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no params.yaml, no data/split, no mlflow.db here
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main([arg.format(tmp=tmp_path) for arg in args])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and expected in err
    assert list(tmp_path.iterdir()) == []


def test_float16_parity_is_reported_as_measured(model, tmp_path):
    out = tmp_path / "half.tflite"
    images = check_images()
    report = export_tflite(model, out, images, tolerance=1e-2, optimize="float16", timing_runs=0)
    assert report.quantization == "float16" and "DEQUANTIZE" in report.ops
    tflite, keras_net = TFLiteEnhancer(out), Enhancer(model, fused=False)  # the reference export uses
    for (_, image), measured in zip(images, report.images, strict=True):
        assert measured.max_abs_diff == float(np.abs(tflite(image) - keras_net(image)).max())
    assert 0 < report.max_abs_diff < 1e-2


@pytest.mark.skipif(
    "variant" not in inspect.signature(build_dce_net).parameters,
    reason="no Zero-DCE++ variant in src.model.networks",
)
def test_zero_dce_pp_with_downscaling_converts_to_builtins(tmp_path):
    model = tiny_model(variant="zero_dce_pp", scale_factor=4)
    out = tmp_path / "pp.tflite"
    images = [*synthetic_images([(41, 58), (64, 48)])]  # 41x58: not a multiple of the factor
    report = export_tflite(model, out, images, timing_runs=0)
    assert report.ops_set == BUILTINS and report.max_abs_diff < 1e-5
    assert {"AVERAGE_POOL_2D", "CUMSUM", "GATHER", "FLOOR", "CAST", "DEPTHWISE_CONV_2D"} <= set(report.ops)
    image = np.random.default_rng(2).uniform(0, 0.4, (23, 35, 3)).astype(np.float32)
    np.testing.assert_allclose(TFLiteEnhancer(out)(image), Enhancer(model)(image), atol=1e-5, rtol=0)


def test_ops_without_a_builtin_fall_back_to_select_tf_ops_and_are_refused_unverified(tmp_path):
    # tf.Erf has no TFLite builtin in TF 2.21, and pip's interpreters have no Flex delegate,
    # so the file converts only with SELECT_TF_OPS and cannot be checked: nothing is written.
    image = keras.Input((None, None, 3))
    model = keras.Model(image, layers.Add()([image, ops.erf(image) * 0.01]), name="with_erf")
    out = tmp_path / "erf.tflite"
    with pytest.raises(PipelineError, match=r"needs TF Select \(Flex\) ops") as error:
        export_tflite(model, out, synthetic_images([(8, 8)]), timing_runs=0)
    message = str(error.value)
    assert message.startswith(f"{out}: ") and "SELECT_TF_OPS for Erf" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_not_a_tflite_file_is_one_line(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"not a flatbuffer")
    with pytest.raises(PipelineError, match="not a readable TFLite model"):
        TFLiteEnhancer(path)


def test_default_images_split_then_synthetic(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images, origin = load_images()
    again, _ = load_images()
    assert origin == "synthetic" and [im.shape for _, im in images] == [(400, 600, 3), (257, 331, 3)]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(images, again, strict=True))
    assert all(im.min() >= 0 and im.max() < 0.5 for _, im in images)

    split = tmp_path / "data" / "split"
    split.mkdir(parents=True)
    lows = sorted((FIXTURE_DATASET / "our485" / "low").glob("*.png"))
    rows = "".join(f"our485/{p.stem},our485,test,{p},{p}\n" for p in lows)
    (split / "test.csv").write_text("name,subset,split,low,high\n" + rows)
    images, origin = load_images(count=2)
    assert origin == "data/split/test.csv" and [name for name, _ in images] == [str(p) for p in lows[:2]]

    (split / "test.csv").write_text("name,subset,split,low,high\neval15/1,eval15,test,gone.png,gone.png\n")
    images, origin = load_images()
    assert origin.startswith("synthetic (") and len(images) == 2


def test_onnx_without_its_packages_is_one_line(model_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None)
    argv = ["--model", str(model_file), "--format", "onnx", "--output", str(tmp_path / "m.onnx")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--images", str(FIXTURE_DATASET / "eval15" / "low" / "1.png")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ONNX export needs the packages")
    assert err.endswith("not installed: tf2onnx, onnx, onnxruntime")
    assert list(tmp_path.iterdir()) == []


def test_onnx_export_matches_keras_at_two_sizes(model, tmp_path):
    for package in ("tf2onnx", "onnx", "onnxruntime"):  # optional: not in requirements.txt
        pytest.importorskip(package)
    out = tmp_path / "zero-dce.onnx"
    report = export_onnx(model, out, check_images(), timing_runs=1)
    assert report.format == "onnx" and report.ops_set.startswith("ONNX opset") and "Conv" in report.ops
    assert report.passed and report.max_abs_diff < 1e-5 and report.timing.exported_ms > 0
    assert report.input_signature == "[1, -1, -1, 3] float32"
    onnx_net, keras_net = OnnxEnhancer(out), Enhancer(model)
    for height, width in [(17, 29), (64, 48)]:
        image = np.random.default_rng(4).uniform(0.0, 0.4, (height, width, 3)).astype(np.float32)
        np.testing.assert_allclose(onnx_net(image), keras_net(image), atol=1e-5, rtol=0)
