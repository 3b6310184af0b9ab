"""The trained curves as shipped: their inference graph rebuilt in float32."""

from __future__ import annotations

import keras

from src.config import Params
from src.model.networks import build_dce_net, inference_model, precision_policy


def float32_inference_model(trained: keras.Model, params: Params) -> keras.Model:
    """Rebuild the inference graph (curves and exposure gate) in float32 and copy the weights in.

    Mixed precision is a training speed-up; a shipped model with bfloat16 layers
    would run slowly (or emulated) on CPUs without bf16 units. The denoiser is added
    by the train_denoiser stage (`src.train.denoiser_fit`).
    """
    m = params.model
    with precision_policy("float32"):
        fresh = build_dce_net(m.iterations, m.filters, m.variant)
    fresh.set_weights(trained.get_weights())
    return inference_model(fresh, m.scale_factor, None, m.gate_band if m.exposure_gate else None)
