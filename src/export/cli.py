"""Export a trained model to TensorFlow Lite (or ONNX), checked against Keras: `python -m src.export`.

The model is the registry's champion (`models:/zero-dce@champion`, the default) or
anything `src.infer.enhance.load_model` accepts (a run URI, an MLflow folder, a `.keras`
file). Decisions made here:
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from pathlib import Path

from src.config import DEFAULT_PARAMS
from src.errors import cli_entry
from src.export import convert, parity, runners, timing
from src.export.convert import FORMAT_LABELS, FORMATS, OPTIMIZATIONS, require_onnx
from src.export.parity import (
    DEFAULT_OUTPUT,
    DEFAULT_TOLERANCE,
    ParityReport,
    export_onnx,
    export_tflite,
    report_path,
)
from src.export.samples import DEFAULT_IMAGE_COUNT, DEFAULT_SPLIT, load_images
from src.export.timing import DEFAULT_TIMING_RUNS
from src.infer.enhance import default_model_uri, load_model
from src.quiet_tensorflow import add_verbose_flag


def _description() -> str | None:
    """The --help text: this overview, then the decisions, each documented in the module it is about."""
    overview, *decisions = [__doc__, *(module.__doc__ for module in (convert, runners, parity, timing))]
    if overview is None or None in decisions:  # python -OO strips docstrings
        return None
    return overview + "\n" + "".join(str(doc).split("\n\n", 1)[1] for doc in decisions)


def summary_lines(report: ParityReport) -> Iterator[str]:
    label = FORMAT_LABELS[report.format]
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
        description=_description(),
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
    add_verbose_flag(parser)  # read by src.quiet_tensorflow before TensorFlow loads
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
    args = parse_args(argv)
    images, origin = load_images(args.images)  # before the model: a typo should not cost a model load
    if args.format == "onnx":
        require_onnx()
    spec = args.model or default_model_uri(args.params)
    model = load_model(spec)
    common = {"timing_runs": args.timing_runs, "source": spec, "image_source": origin}
    if args.format == "onnx":
        report = export_onnx(model, args.output, images, args.tolerance, **common)
    else:
        report = export_tflite(model, args.output, images, args.tolerance, optimize=args.optimize, **common)
    for line in summary_lines(report):
        print(line)
    return 0
