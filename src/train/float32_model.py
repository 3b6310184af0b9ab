"""The trained model as shipped: its inference graph rebuilt in float32."""

from __future__ import annotations

import keras

from src.config import Params
from src.model.networks import build_dce_net, build_denoiser, inference_model, precision_policy


def float32_inference_model(
    trained: keras.Model, params: Params, trained_denoiser: keras.Model | None = None
) -> keras.Model:
    """Rebuild the inference graph in float32 and copy the weights in.

    Mixed precision is a training speed-up; a shipped model with bfloat16 layers
    would run slowly (or emulated) on CPUs without bf16 units.
    """
    m = params.model
    with precision_policy("float32"):
        fresh = build_dce_net(m.iterations, m.filters, m.variant)
        denoiser = (
            build_denoiser(m.denoiser_filters, m.denoiser_stride) if trained_denoiser is not None else None
        )
    fresh.set_weights(trained.get_weights())
    if denoiser is not None:
        denoiser.set_weights(trained_denoiser.get_weights())
    return inference_model(fresh, m.scale_factor, denoiser, m.gate_band if m.exposure_gate else None)
