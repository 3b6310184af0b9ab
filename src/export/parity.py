"""Export checked against Keras: `export_tflite` / `export_onnx`, their parity report and its JSON.

- **Parity is the gate.** The converted file is written under a temporary name,
  run on every check image at the image's own size and compared with Keras; only
  when every max |TFLite − Keras| is within the tolerance is it renamed into place,
  so a failed export leaves any earlier file (and its report) untouched.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from src.errors import PipelineError
from src.export.convert import FORMAT_LABELS, Conversion, Optimize, convert, convert_onnx
from src.export.runners import open_exported
from src.export.samples import Sample
from src.export.timing import DEFAULT_TIMING_RUNS, Timing, measure_timing
from src.files import atomic_path, atomic_write_text, sync

if TYPE_CHECKING:  # TensorFlow loads in seconds: only once a model is converted or run
    import keras

DEFAULT_OUTPUT = Path("models/zero-dce.tflite")  # with --format onnx: models/zero-dce.onnx
DEFAULT_TOLERANCE = 1e-3
REPORT_SUFFIX = ".parity.json"


@dataclass(frozen=True)
class ImageParity:
    """The exported model against Keras on one image at its own size."""

    name: str
    height: int
    width: int
    max_abs_diff: float  # inf when the exported output is not finite or has the wrong shape
    psnr_db: float | None  # of the exported output against Keras' (data range 1); None: identical


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
    from src.infer.enhancer import Enhancer  # lazy: it imports Keras and TensorFlow

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
        f"{out}: {FORMAT_LABELS[report.format]} output differs from Keras by up to {worst.max_abs_diff:.3g} "
        f"on {worst.name} "
        f"({worst.height}x{worst.width}{psnr}; tolerance {report.tolerance:g}); nothing written{hint}"
    )


def report_path(out_path: Path | str) -> Path:
    out = Path(out_path)
    return out.with_name(out.name + REPORT_SUFFIX)
