"""Export a trained model to TensorFlow Lite (or ONNX), checked against Keras: `python -m src.export`.

The model is the registry's champion (`models:/zero-dce@champion`, the default) or
anything `src.infer.enhance.load_model` accepts (a run URI, an MLflow folder, a `.keras`
file). Decisions made here:

- **Dynamic sizes.** The graph is traced for float32 [1, H, W, 3] with H and W
  unknown, so one file serves every photo size: callers resize the interpreter's
  input (`TFLiteEnhancer` does it for them). A batch of one is what on-device
  inference runs, and fixing it lets the converter fold more shapes.
- **Builtin ops only**, when the graph allows it: every op of DCE-Net and of the
  Zero-DCE++ inference graph (depthwise convs, average pooling, cumsum, gather,
  floor, cast) has a TFLite builtin. SELECT_TF_OPS is tried only when the builtin
  conversion fails and is reported; note that the interpreters Python gets from pip
  (TensorFlow's and `ai_edge_litert`'s) have no Flex delegate, so such a file cannot
  pass the parity check here and is never written.
- **Conversion** goes through Keras' own `Model.export(format="litert")`
  (Keras 3 → SavedModel → `tf.lite.TFLiteConverter`), with the ops set overridden.
  Converting a concrete function directly is the deprecated path in TF 2.21, and
  handing it the Keras model as `trackable_obj` leaves the weights as uninitialised
  resource variables: the file then computes NaN, which is why the parity check also
  fails on non-finite output rather than trusting `diff > tolerance`.
- **Runtime.** `ai_edge_litert`'s interpreter when it is installed, else
  `tf.lite.Interpreter`, which TF 2.21 still ships (it warns that it is deprecated in
  favour of `ai_edge_litert`; the warning is silenced, the report names the runtime).
- **Parity is the gate.** The converted file is written under a temporary name,
  run on every check image at the image's own size and compared with Keras; only
  when every max |TFLite − Keras| is within the tolerance is it renamed into place,
  so a failed export leaves any earlier file (and its report) untouched.
- **ONNX** (`--format onnx`) goes through `Model.export(format="onnx")`, i.e. tf2onnx,
  and runs in onnxruntime, with the same parity gate and report. Those three
  packages (tf2onnx, onnx, onnxruntime) are optional: without them it is one error line.
- **Timing.** Median TFLite (or ONNX) and Keras milliseconds for one 600×400 image, measured
  as `src.evaluate.scoring` measures the Keras model (two warm-ups, then the median), with
  the CPU, its count and the load average, because the number means little without
  the machine and what else it was doing.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from src.config import DEFAULT_PARAMS
from src.errors import PipelineError, cli_entry, first_line
from src.files import atomic_path, atomic_write_text, sync
from src.infer.photos import format_of
from src.machine import cpu_model

if TYPE_CHECKING:  # TensorFlow loads in seconds: only once a model is converted or run
    import keras

Optimize = Literal["float16", "dynamic"]
OPTIMIZATIONS: tuple[str, ...] = ("float16", "dynamic")
Format = Literal["tflite", "onnx"]
FORMATS: tuple[str, ...] = ("tflite", "onnx")
ONNX_PACKAGES = ("tf2onnx", "onnx", "onnxruntime")
Sample = tuple[str, np.ndarray]  # (name for the report, HxWx3 float32 RGB in [0, 1])

DEFAULT_OUTPUT = Path("models/zero-dce.tflite")  # with --format onnx: models/zero-dce.onnx
DEFAULT_TOLERANCE = 1e-3
DEFAULT_SPLIT = Path("data/split/test.csv")
DEFAULT_IMAGE_COUNT = 3
SYNTHETIC_SIZES = ((400, 600), (257, 331))  # (height, width): LOL's size, and an odd one
TIMING_SIZE = (400, 600)  # (height, width), as evaluation's inference_ms_600x400
DEFAULT_TIMING_RUNS = 5
REPORT_SUFFIX = ".parity.json"
BUILTINS, WITH_SELECT = "TFLITE_BUILTINS", "TFLITE_BUILTINS+SELECT_TF_OPS"
_SELECT_OPS = re.compile(r"TF Select ops: ([^\n]+)")
_DEPRECATED_INTERPRETER = r"\s*Warning: tf\.lite\.Interpreter is deprecated"
_LABELS = {"tflite": "TFLite", "onnx": "ONNX"}


@dataclass(frozen=True)
class ImageParity:
    """The exported model against Keras on one image at its own size."""

    name: str
    height: int
    width: int
    max_abs_diff: float  # inf when the exported output is not finite or has the wrong shape
    psnr_db: float | None  # of the exported output against Keras' (data range 1); None: identical


@dataclass(frozen=True)
class Timing:
    """Median milliseconds for one image, the exported file and Keras, same machine, same time."""

    height: int
    width: int
    runs: int
    exported_ms: float  # the .tflite (or .onnx) file in its runtime
    keras_ms: float
    threads: int  # the runtime's; Keras uses TensorFlow's own thread pools
    machine: str
    processor: str  # platform.processor(), often empty or just the architecture on Linux
    cpu_count: int
    load_average_1m: float | None  # what else was running: the numbers are only comparable on a quiet machine


@dataclass
class ParityReport:
    """What was exported, from what, with which ops, and how closely it reproduces Keras."""

    source: str
    model_name: str
    format: str  # "tflite" or "onnx"
    file: str
    size_bytes: int
    sha256: str
    quantization: str  # "none", "float16" (weights) or "dynamic" (int8 weights, dynamic-range activations)
    ops_set: str  # TFLITE_BUILTINS, TFLITE_BUILTINS+SELECT_TF_OPS, or "ONNX opset N"
    select_tf_ops: list[str]
    ops: list[str]
    input_signature: str
    runtime: str
    converter: str
    tolerance: float
    images: list[ImageParity]
    image_source: str = ""
    timing: Timing | None = None
    created_utc: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def max_abs_diff(self) -> float:
        return max(image.max_abs_diff for image in self.images)

    @property
    def min_psnr_db(self) -> float | None:
        """The worst image's PSNR; None when every output was bit-identical to Keras'."""
        values = [image.psnr_db for image in self.images if image.psnr_db is not None]
        return min(values) if values else None

    @property
    def passed(self) -> bool:
        return math.isfinite(self.max_abs_diff) and self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "max_abs_diff": self.max_abs_diff,
            "min_psnr_db": self.min_psnr_db,
            "passed": self.passed,
        }


class TFLiteEnhancer:
    """A `.tflite` model behind the call of `src.infer.fast_path.Enhancer`: HxWx3 float RGB in
    [0, 1] → enhanced.

    The interpreter's input is resized whenever the image size changes (and only
    then: re-allocating tensors costs more than a small image's inference). An
    interpreter is not thread-safe; give each thread its own enhancer.
    """

    def __init__(self, path: Path | str, num_threads: int | None = None):
        self.path = Path(path)
        self.num_threads = num_threads or os.cpu_count() or 1
        if not self.path.is_file():
            raise PipelineError(f"{self.path}: TFLite model not found")
        self._interpreter, self.runtime = _open_interpreter(self.path, self.num_threads)
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise PipelineError(
                f"{self.path}: expected one input and one output, got {len(inputs)} and {len(outputs)}"
            )
        signature = [int(n) for n in inputs[0].get("shape_signature", inputs[0]["shape"])]
        if inputs[0]["dtype"] != np.float32 or len(signature) != 4 or signature[-1] != 3:
            raise PipelineError(
                f"{self.path}: expected a float32 [1, H, W, 3] input, got "
                f"{np.dtype(inputs[0]['dtype']).name} {signature}"
            )
        self.input_signature = signature
        self.ops = _op_names(self._interpreter)
        self._input, self._output = inputs[0]["index"], outputs[0]["index"]
        self._shape: tuple[int, ...] | None = None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(image, dtype=np.float32)
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 image, got shape {pixels.shape}")
        shape = (1, *pixels.shape)
        if shape != self._shape:
            self._resize(shape)
        self._interpreter.set_tensor(self._input, pixels[None])
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)[0]

    def _resize(self, shape: tuple[int, ...]) -> None:
        try:
            self._interpreter.resize_tensor_input(self._input, list(shape), strict=True)
            self._interpreter.allocate_tensors()
        except ValueError:
            self._shape = None
            raise PipelineError(
                f"{self.path}: the input is fixed at {self.input_signature}, cannot run {list(shape)}"
            ) from None
        except RuntimeError as err:
            self._shape = None
            if "Select TensorFlow op" in str(err):
                raise PipelineError(
                    f"{self.path}: needs TF Select (Flex) ops, which {self.runtime} cannot run"
                ) from None
            raise PipelineError(f"{self.path}: cannot prepare the interpreter ({first_line(err)})") from None
        self._shape = shape


def _op_names(interpreter: Any) -> list[str]:
    """The graph's op names, read before the first allocation replaces nodes by a DELEGATE (XNNPACK).

    Empty if the runtime cannot list them: there is no public call for it in either runtime.
    """
    try:
        details = interpreter._get_ops_details()
    except AttributeError:
        return []
    return sorted({str(op["op_name"]) for op in details})


def _open_interpreter(path: Path, num_threads: int) -> tuple[Any, str]:
    """(interpreter, runtime name): LiteRT's when installed, TensorFlow's own otherwise."""
    try:
        from ai_edge_litert import interpreter as litert

        factory: Any = litert.Interpreter
        runtime = f"ai_edge_litert {getattr(sys.modules['ai_edge_litert'], '__version__', '?')}"
    except ImportError:
        import tensorflow as tf

        factory, runtime = tf.lite.Interpreter, f"tf.lite.Interpreter (TensorFlow {tf.__version__})"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_DEPRECATED_INTERPRETER)
            return factory(model_path=str(path), num_threads=num_threads), runtime
    except (ValueError, RuntimeError) as err:
        raise PipelineError(f"{path}: not a readable TFLite model ({first_line(err)})") from None


@dataclass(frozen=True)
class Conversion:
    content: bytes  # the whole .tflite flatbuffer or .onnx protobuf
    format: Format
    ops_set: str
    select_tf_ops: list[str]
    converter: str


def convert(model: keras.Model, optimize: Optimize | None = None) -> Conversion:
    """Convert to a TFLite flatbuffer for float32 [1, H, W, 3], builtin ops first.

    Falls back to SELECT_TF_OPS only when the builtin conversion names TF ops it
    lacks; any other converter failure is one PipelineError line.
    """
    if optimize is not None and optimize not in OPTIMIZATIONS:
        raise ValueError(f"unknown optimization {optimize!r}; known: {', '.join(OPTIMIZATIONS)}")
    try:
        return _convert(model, optimize, select_ops=())
    except PipelineError:
        raise
    except Exception as err:  # the converter raises ConverterError, ValueError, RuntimeError...
        needed = _select_ops_named(err)
        if not needed:
            raise PipelineError(f"{model.name}: TFLite conversion failed ({first_line(err)})") from None
    try:
        return _convert(model, optimize, select_ops=needed)
    except Exception as err:
        raise PipelineError(
            f"{model.name}: TFLite conversion failed, with SELECT_TF_OPS too ({first_line(err)})"
        ) from None


def _convert(model: keras.Model, optimize: Optimize | None, select_ops: Sequence[str]) -> Conversion:
    import keras
    import tensorflow as tf

    ops = [tf.lite.OpsSet.TFLITE_BUILTINS] + ([tf.lite.OpsSet.SELECT_TF_OPS] if select_ops else [])
    target_spec: dict[str, object] = {"supported_ops": ops}
    options: dict[str, object] = {}
    if optimize is not None:
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]  # alone: dynamic-range (int8 weights)
    if optimize == "float16":
        target_spec["supported_types"] = [tf.float16]
    signature = [tf.TensorSpec([1, None, None, 3], tf.float32, name="image")]
    with tempfile.TemporaryDirectory(prefix="tflite-") as folder:
        path = Path(folder) / "model.tflite"  # Keras insists on the suffix
        model.export(
            path,
            format="litert",
            verbose=False,
            input_signature=signature,
            target_spec=target_spec,
            **options,
        )
        flatbuffer = path.read_bytes()
    converter = f"keras.Model.export(format='litert'), Keras {keras.__version__}, TensorFlow {tf.__version__}"
    return Conversion(
        flatbuffer, "tflite", WITH_SELECT if select_ops else BUILTINS, list(select_ops), converter
    )


def _select_ops_named(err: BaseException) -> list[str]:
    found = _SELECT_OPS.search(str(err))
    return [name.strip() for name in found.group(1).split(",") if name.strip()] if found else []


def convert_onnx(model: keras.Model) -> Conversion:
    """Convert to ONNX for float32 [1, H, W, 3] with Keras' exporter (tf2onnx), at tf2onnx's default opset."""
    import keras
    import tensorflow as tf

    _require_onnx()
    import onnx
    import tf2onnx

    signature = [tf.TensorSpec([1, None, None, 3], tf.float32, name="image")]
    with tempfile.TemporaryDirectory(prefix="onnx-") as folder:
        path = Path(folder) / "model.onnx"
        try:
            model.export(path, format="onnx", verbose=False, input_signature=signature)
        except Exception as err:  # tf2onnx raises whatever its handlers raise
            raise PipelineError(f"{model.name}: ONNX conversion failed ({first_line(err)})") from None
        content = path.read_bytes()
    imports = onnx.load_from_string(content).opset_import
    opset = max(entry.version for entry in imports if entry.domain in ("", "ai.onnx"))
    converter = (
        f"keras.Model.export(format='onnx'), Keras {keras.__version__}, tf2onnx {tf2onnx.__version__}, "
        f"TensorFlow {tf.__version__}"
    )
    return Conversion(content, "onnx", f"ONNX opset {opset}", [], converter)


def _require_onnx() -> None:
    import importlib.util

    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise PipelineError(
            f"ONNX export needs the packages {', '.join(ONNX_PACKAGES)}; not installed: {', '.join(missing)}"
        )


class OnnxEnhancer:
    """An `.onnx` model in onnxruntime (CPU) behind the same call as `TFLiteEnhancer`."""

    def __init__(self, path: Path | str, num_threads: int | None = None):
        _require_onnx()
        import onnx
        import onnxruntime as ort

        self.path = Path(path)
        self.num_threads = num_threads or os.cpu_count() or 1
        if not self.path.is_file():
            raise PipelineError(f"{self.path}: ONNX model not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.num_threads
        try:
            graph = onnx.load(self.path).graph
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # protobuf's DecodeError, onnxruntime's Fail / InvalidGraph...
            raise PipelineError(f"{self.path}: not a readable ONNX model ({first_line(err)})") from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(self._session.get_outputs()) != 1:
            raise PipelineError(f"{self.path}: expected one input and one output")
        self.input_signature = [d if isinstance(d, int) else -1 for d in inputs[0].shape]
        self._input = inputs[0].name
        self.ops = sorted({node.op_type for node in graph.node})
        self.runtime = f"onnxruntime {ort.__version__} (CPUExecutionProvider)"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(image, dtype=np.float32)
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 image, got shape {pixels.shape}")
        return self._session.run(None, {self._input: pixels[None]})[0][0]


Runner = TFLiteEnhancer | OnnxEnhancer


def open_exported(path: Path | str, fmt: Format = "tflite", num_threads: int | None = None) -> Runner:
    """The runner for an exported file: `TFLiteEnhancer` or `OnnxEnhancer`."""
    return OnnxEnhancer(path, num_threads) if fmt == "onnx" else TFLiteEnhancer(path, num_threads)


def compare(name: str, exported_out: np.ndarray, keras_out: np.ndarray) -> ImageParity:
    """Max |difference| and PSNR of the exported model's output against Keras', in float64."""
    height, width = keras_out.shape[:2]
    if exported_out.shape != keras_out.shape:
        return ImageParity(name, height, width, float("inf"), None)
    error = np.abs(exported_out.astype(np.float64) - keras_out.astype(np.float64))
    if not np.isfinite(error).all():  # NaN would slip through `diff > tolerance`
        return ImageParity(name, height, width, float("inf"), None)
    mse = float(np.mean(np.square(error)))
    psnr = None if mse == 0.0 else round(10.0 * math.log10(1.0 / mse), 2)
    return ImageParity(name, height, width, float(error.max()), psnr)


def export_tflite(
    model: keras.Model,
    out_path: Path | str,
    images: Sequence[Sample],
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    optimize: Optimize | None = None,
    timing_runs: int = DEFAULT_TIMING_RUNS,
    source: str = "",
    image_source: str = "",
) -> ParityReport:
    """Convert, check parity on `images`, then write `out_path` and `<out_path>.parity.json`.

    A parity failure (or any other error) is a one-line PipelineError and leaves
    `out_path` as it was. `timing_runs` = 0 skips the 600×400 timing.
    """
    _check_arguments(images, tolerance)
    _check_target(out_path)
    conversion = convert(model, optimize)
    return _export_checked(
        model, Path(out_path), images, tolerance, conversion, optimize, timing_runs, source, image_source
    )


def export_onnx(
    model: keras.Model,
    out_path: Path | str,
    images: Sequence[Sample],
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    timing_runs: int = DEFAULT_TIMING_RUNS,
    source: str = "",
    image_source: str = "",
) -> ParityReport:
    """`export_tflite`, to ONNX (needs tf2onnx, onnx and onnxruntime)."""
    _check_arguments(images, tolerance)
    _check_target(out_path)
    conversion = convert_onnx(model)
    return _export_checked(
        model, Path(out_path), images, tolerance, conversion, None, timing_runs, source, image_source
    )


def _check_arguments(images: Sequence[Sample], tolerance: float) -> None:
    if not images:
        raise ValueError("the parity check needs at least one image")
    if math.isnan(tolerance):
        raise ValueError("tolerance must be a number")


def _check_target(out_path: Path | str) -> None:
    out = Path(out_path)
    if out.is_dir():
        raise PipelineError(f"{out}: is a folder; give the file's name, e.g. {out / DEFAULT_OUTPUT.name}")


def _export_checked(
    model: keras.Model,
    out: Path,
    images: Sequence[Sample],
    tolerance: float,
    conversion: Conversion,
    optimize: Optimize | None,
    timing_runs: int,
    source: str,
    image_source: str,
) -> ParityReport:
    """Write under a temporary name, compare with Keras, and rename into place only if it passed."""
    from src.infer.fast_path import Enhancer

    keras_enhancer = Enhancer(model, fused=False)  # the saved graph itself is the reference
    try:
        with atomic_path(out) as tmp:
            with open(tmp, "xb") as handle:
                handle.write(conversion.content)
                sync(handle)
            try:
                runner = open_exported(tmp, conversion.format)
                results = [compare(name, runner(rgb), keras_enhancer(rgb)) for name, rgb in images]
            except PipelineError as err:  # it names the temporary file, which is about to go
                raise PipelineError(_unchecked_line(err, tmp, out, conversion)) from None
            report = ParityReport(
                source=source or model.name,
                model_name=model.name,
                format=conversion.format,
                file=str(out),
                size_bytes=len(conversion.content),
                sha256=hashlib.sha256(conversion.content).hexdigest(),
                quantization=optimize or "none",
                ops_set=conversion.ops_set,
                select_tf_ops=conversion.select_tf_ops,
                ops=runner.ops,
                input_signature=f"{runner.input_signature} float32",
                runtime=runner.runtime,
                converter=conversion.converter,
                tolerance=tolerance,
                images=results,
                image_source=image_source,
            )
            if not report.passed:
                raise PipelineError(_failure_line(out, report))
            if timing_runs > 0:
                report.timing = measure_timing(runner, keras_enhancer, timing_runs)
        atomic_write_text(report_path(out), json.dumps(report.to_dict(), indent=2) + "\n")
    except OSError as err:
        raise PipelineError(f"{out}: cannot write ({err.strerror or err})") from None
    return report


def _unchecked_line(err: PipelineError, tmp: Path, out: Path, conversion: Conversion) -> str:
    select = f" (converted with SELECT_TF_OPS for {', '.join(conversion.select_tf_ops)})"
    return (
        str(err).replace(str(tmp), str(out))
        + (select if conversion.select_tf_ops else "")
        + "; parity not checked, nothing written"
    )


def _failure_line(out: Path, report: ParityReport) -> str:
    worst = max(report.images, key=lambda image: image.max_abs_diff)
    psnr = f", PSNR {worst.psnr_db} dB" if worst.psnr_db is not None else ""
    hint = (
        "; quantized models differ more, raise --tolerance if that is acceptable"
        if report.quantization != "none"
        else ""
    )
    return (
        f"{out}: {_LABELS[report.format]} output differs from Keras by up to {worst.max_abs_diff:.3g} "
        f"on {worst.name} "
        f"({worst.height}x{worst.width}{psnr}; tolerance {report.tolerance:g}); nothing written{hint}"
    )


def report_path(out_path: Path | str) -> Path:
    out = Path(out_path)
    return out.with_name(out.name + REPORT_SUFFIX)


def measure_timing(runner: Runner, keras_enhancer: Any, runs: int) -> Timing:
    """The exported file and Keras on the same 600×400 image, by the evaluation's own latency function."""
    from src.evaluate.scoring import median_latency_ms

    height, width = TIMING_SIZE
    exported_ms = median_latency_ms(runner, height, width, runs)  # type: ignore[arg-type]  # same call
    keras_ms = median_latency_ms(keras_enhancer, height, width, runs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return Timing(
        height=height,
        width=width,
        runs=runs,
        exported_ms=round(exported_ms, 1),
        keras_ms=round(keras_ms, 1),
        threads=runner.num_threads,
        machine=machine_label(),
        processor=platform.processor(),
        cpu_count=os.cpu_count() or 1,
        load_average_1m=round(load, 2) if load is not None else None,
    )


def machine_label() -> str:
    """The CPU model and count, e.g. 'Intel(R) Xeon(R) Platinum 8488C, 2 CPUs (x86_64)'."""
    return f"{cpu_model()}, {os.cpu_count()} CPUs ({platform.machine()})"


def load_images(
    paths: Sequence[Path] | None = None,
    split_csv: Path = DEFAULT_SPLIT,
    count: int = DEFAULT_IMAGE_COUNT,
) -> tuple[list[Sample], str]:
    """The parity images and where they came from: `paths` (files or folders), else the first
    `count` low-light images of the test split, else deterministic synthetic ones at two sizes.

    A split whose images are not on disk (data not pulled) falls back to the synthetic
    images rather than failing, and says so: parity is about the converter, and
    synthetic low-light gradients exercise it as well as photos do.
    """
    from src.infer.photos import read_photo

    if paths:
        files = _expand(paths)
        return [(str(path), read_photo(path).rgb) for path in files], "--images"
    if split_csv.is_file():
        listed = _split_images(split_csv, count)
        present = [path for path in listed if path.is_file()]
        if present:
            return [(str(path), read_photo(path).rgb) for path in present], str(split_csv)
        if listed:
            return synthetic_images(), f"synthetic ({split_csv} lists images not on disk)"
    return synthetic_images(), "synthetic"


def _expand(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and format_of(p))
            if not found:
                raise PipelineError(f"{path}: no PNG, JPEG, BMP or TIFF images in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise PipelineError(f"{path}: no such file or folder")
    return files


def _split_images(split_csv: Path, count: int) -> list[Path]:
    try:
        with open(split_csv, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise PipelineError(f"{split_csv}: cannot read ({first_line(err)})") from None
    if rows and "low" not in rows[0]:
        raise PipelineError(f"{split_csv}: no 'low' column (make it with python -m src.data.split)")
    return [Path(row["low"]) for row in rows[:count]]


def synthetic_images(sizes: Sequence[tuple[int, int]] = SYNTHETIC_SIZES) -> list[Sample]:
    """Dark, deterministic test images: gradients, a bright patch and seeded noise, values in [0, 0.45]."""
    rng = np.random.default_rng(0)
    samples = []
    for height, width in sizes:
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        base = 0.02 + 0.2 * x / max(width - 1, 1) + 0.08 * y / max(height - 1, 1)
        patch = ((np.abs(y - height / 3) < height / 8) & (np.abs(x - width / 2) < width / 6)) * 0.12
        rgb = base[..., None] * np.array([1.0, 0.9, 0.8], np.float32) + patch[..., None]
        rgb = rgb + rng.normal(0.0, 0.015, rgb.shape)
        samples.append((f"synthetic-{height}x{width}", np.clip(rgb, 0.0, 1.0).astype(np.float32)))
    return samples


def summary_lines(report: ParityReport) -> Iterator[str]:
    label = _LABELS[report.format]
    if report.select_tf_ops:
        ops = f"SELECT_TF_OPS for {', '.join(report.select_tf_ops)}"
    else:
        ops = "builtin ops only" if report.format == "tflite" else report.ops_set
    precision = report.quantization if report.quantization != "none" else "float32"
    yield (
        f"exported {report.source} -> {report.file} ({report.size_bytes / 1024:.0f} KiB, {precision}, {ops})"
    )
    psnr = f", min PSNR {report.min_psnr_db} dB" if report.min_psnr_db is not None else ", outputs identical"
    yield (
        f"parity on {_count(len(report.images), 'image')} ({report.image_source or 'given'}): "
        f"max |{label} - Keras| {report.max_abs_diff:.3g} (tolerance {report.tolerance:g}){psnr}"
    )
    for image in report.images:
        psnr_db = f"{image.psnr_db} dB" if image.psnr_db is not None else "identical"
        size = f"{image.height}x{image.width}"
        yield f"  {image.name} {size}: max |diff| {image.max_abs_diff:.3g}, PSNR {psnr_db}"
    if report.timing:
        t = report.timing
        yield (
            f"{t.width}x{t.height}: {label} {t.exported_ms} ms, Keras {t.keras_ms} ms (median of {t.runs}; "
            f"{t.threads} threads on {t.machine}, load {t.load_average_1m})"
        )
    yield f"report: {report_path(report.file)}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m src.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model or a .keras file "
        "(default: models:/<promote.model_name>@champion)",
    )
    parser.add_argument(
        "--output",
        "-o",
        type=Path,
        help=f"the file to write (default {DEFAULT_OUTPUT}, or its .onnx twin with --format onnx)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="tflite",
        help="tflite (default), or onnx (needs tf2onnx, onnx and onnxruntime installed)",
    )
    parser.add_argument(
        "--images",
        nargs="+",
        type=Path,
        metavar="PATH",
        help=f"low-light images and/or folders for the parity check (default: the first "
        f"{DEFAULT_IMAGE_COUNT} of {DEFAULT_SPLIT}, else synthetic images)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"largest max |exported - Keras| allowed on any image (default {DEFAULT_TOLERANCE:g})",
    )
    parser.add_argument(
        "--optimize",
        choices=OPTIMIZATIONS,
        help="TFLite only, quantize: float16 weights, or dynamic-range int8 weights (parity is reported "
        "as measured; dynamic typically needs a larger --tolerance)",
    )
    parser.add_argument(
        "--timing-runs",
        type=int,
        default=DEFAULT_TIMING_RUNS,
        help=f"600x400 timing runs for the report; 0 skips timing (default {DEFAULT_TIMING_RUNS})",
    )
    parser.add_argument(
        "--params", type=Path, default=DEFAULT_PARAMS, help="for the tracking URI and model name"
    )
    args = parser.parse_args(argv)
    if not math.isfinite(args.tolerance):
        parser.error("--tolerance must be a finite number")
    if args.timing_runs < 0:
        parser.error("--timing-runs must be 0 or more")
    if args.optimize and args.format != "tflite":
        parser.error("--optimize applies to --format tflite only")
    if args.output is None:
        args.output = DEFAULT_OUTPUT.with_suffix(f".{args.format}")
    return args


@cli_entry
def main(argv: list[str] | None = None) -> int:
    """Returns 0 once the file and its report are written; every failure is one `error:` line."""
    from src.infer.enhance import default_model_uri, load_model

    args = parse_args(argv)
    images, origin = load_images(args.images)  # before the model: a typo should not cost a model load
    if args.format == "onnx":
        _require_onnx()
    spec = args.model or default_model_uri(args.params)
    model = load_model(spec, args.params)
    common = {"timing_runs": args.timing_runs, "source": spec, "image_source": origin}
    if args.format == "onnx":
        report = export_onnx(model, args.output, images, args.tolerance, **common)
    else:
        report = export_tflite(model, args.output, images, args.tolerance, optimize=args.optimize, **common)
    for line in summary_lines(report):
        print(line)
    return 0
