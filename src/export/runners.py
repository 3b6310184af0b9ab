"""Run an exported file like the Keras model: `TFLiteEnhancer`, `OnnxEnhancer` and `open_exported`.

- **Runtime.** `ai_edge_litert`'s interpreter when it is installed, else
  `tf.lite.Interpreter`, which TF 2.21 still ships (it warns that it is deprecated in
  favour of `ai_edge_litert`; the warning is silenced, the report names the runtime).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from src.errors import PipelineError, first_line
from src.export.convert import Format, require_onnx

_DEPRECATED_INTERPRETER = r"\s*Warning: tf\.lite\.Interpreter is deprecated"


class TFLiteEnhancer:
    """A `.tflite` model behind the call of `src.infer.enhancer.Enhancer`: HxWx3 float RGB in
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
    # Lazy: ai_edge_litert is optional, and TensorFlow (the fallback) is slow to load.
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


class OnnxEnhancer:
    """An `.onnx` model in onnxruntime (CPU) behind the same call as `TFLiteEnhancer`."""

    def __init__(self, path: Path | str, num_threads: int | None = None):
        require_onnx()
        import onnx  # lazy: optional packages, checked just above
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
