"""Convert a Keras model to a TFLite flatbuffer or an ONNX protobuf, in memory (nothing is written here).

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
- **ONNX** (`--format onnx`) goes through `Model.export(format="onnx")`, i.e. tf2onnx,
  and runs in onnxruntime, with the same parity gate and report. Those three
  packages (tf2onnx, onnx, onnxruntime) are optional: without them it is one error line.
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from src.errors import PipelineError, first_line

if TYPE_CHECKING:  # TensorFlow loads in seconds: only once a model is converted or run
    import keras

Optimize = Literal["float16", "dynamic"]
OPTIMIZATIONS: tuple[str, ...] = ("float16", "dynamic")
Format = Literal["tflite", "onnx"]
FORMATS: tuple[str, ...] = ("tflite", "onnx")
FORMAT_LABELS = {"tflite": "TFLite", "onnx": "ONNX"}
ONNX_PACKAGES = ("tf2onnx", "onnx", "onnxruntime")
BUILTINS, WITH_SELECT = "TFLITE_BUILTINS", "TFLITE_BUILTINS+SELECT_TF_OPS"
_SELECT_OPS = re.compile(r"TF Select ops: ([^\n]+)")


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
    # Lazy: TensorFlow loads in seconds, and `--help` must not wait for it.
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
    # Lazy: TensorFlow is slow to load, and onnx and tf2onnx are optional (checked first).
    import keras
    import tensorflow as tf

    require_onnx()
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


def require_onnx() -> None:
    """One PipelineError line naming the missing ONNX packages, if any (they are optional)."""
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise PipelineError(
            f"ONNX export needs the packages {', '.join(ONNX_PACKAGES)}; not installed: {', '.join(missing)}"
        )
