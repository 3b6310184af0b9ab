"""How fast the exported file runs beside Keras, and on what machine.

- **Timing.** Median TFLite (or ONNX) and Keras milliseconds for one 600×400 image, measured
  as `src.evaluate.scoring` measures the Keras model (two warm-ups, then the median), with
  the CPU, its count and the load average, because the number means little without
  the machine and what else it was doing.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Any

from src.export.runners import Runner
from src.machine import cpu_model

TIMING_SIZE = (400, 600)  # (height, width), as evaluation's inference_ms_600x400
DEFAULT_TIMING_RUNS = 5


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


def measure_timing(runner: Runner, keras_enhancer: Any, runs: int) -> Timing:
    """The exported file and Keras on the same 600×400 image, by the evaluation's own latency function."""
    from src.evaluate.scoring import median_latency_ms  # lazy: it imports Keras and TensorFlow

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
