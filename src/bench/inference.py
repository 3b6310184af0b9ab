"""Inference latency: the median ms of one image per call, on our path and the plain ones."""

from __future__ import annotations

import statistics
import time

from src.config import Params


def _median_ms(call, image, runs: int) -> float:
    for _ in range(3):  # tracing, XLA compilation, allocator warm-up
        call(image).numpy()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call(image).numpy()  # .numpy() waits for the device: the clock stops when the result exists
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def measure_inference(
    params: Params,
    variant: str,
    precision: str,
    path: str,
    runs: int,
    sizes: list[tuple[int, int]],
    denoiser: str = "none",
) -> dict:
    """Median latency of one image per call. `path`: `fused` is our inference path
    (src.infer.enhancer); `keras` calls the saved float32 model directly, as the recipe does;
    `traced` is the saved graph as one tf.function, which separates what tracing gains
    from what fusing the curves gains. `denoiser` none times the curves alone (with the
    exposure gate if params have it), so the table shows what the denoiser costs."""
    # Lazy: each measurement runs in a worker process of its own; the parent and --help
    # never load TensorFlow.
    import keras
    import numpy as np
    import tensorflow as tf

    from src.infer.enhancer import Enhancer
    from src.model.denoise import REFERENCE_STRENGTHS, denoiser_layer
    from src.model.networks import build_dce_net, inference_model

    keras.utils.set_random_seed(params.train.seed)  # runs of one job build the same weights
    m = params.model
    model = inference_model(
        build_dce_net(m.iterations, m.filters, variant),
        m.scale_factor,
        # Its cost does not depend on its strengths (a fixed number of iterations): the reference ones.
        denoiser_layer(*REFERENCE_STRENGTHS) if denoiser != "none" else None,
        m.gate_band if m.exposure_gate else None,
    )
    if path == "fused":
        call = Enhancer(model, precision).forward
    elif path == "traced":
        call = Enhancer(model, fused=False).forward
    else:
        call = model
    rng = np.random.default_rng(0)
    result = {}
    for width, height in sizes:
        image = tf.constant(rng.random((1, height, width, 3), dtype=np.float32) * 0.3)
        result[f"ms_{width}x{height}"] = _median_ms(call, image, runs)
    return result
