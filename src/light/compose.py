"""The shipped graph with the lift: the gated model's output, plus the lift where the gate held back."""

from __future__ import annotations

import keras
from keras import layers

from src.errors import PipelineError
from src.light.network import LIGHT_DOWNSCALE, blend_lift
from src.model.networks import EXPOSURE_GATE, gate_strength, upsample_like


def with_light(model: keras.Model, light_gain: keras.Model, scale_factor: int) -> keras.Model:
    """`model` (an inference model with an exposure gate) with `light_gain` run on the image box-
    filtered by `scale_factor`, its gain map upsampled bilinearly and blended by the gate's
    strength and the scene's litness (`src.light.network.blend_lift`).

    The same layers as before stay at the top level under their names, so everything that reads
    a saved graph back (src.infer.enhancer.architecture_of) still finds them.
    """
    try:
        gate = model.get_layer(EXPOSURE_GATE)
    except ValueError:
        raise PipelineError(
            "light.enabled needs model.exposure_gate: the lift is weighted by what the gate leaves"
        ) from None
    image, out = model.inputs[0], model.outputs[0]
    small = layers.AveragePooling2D(scale_factor, scale_factor, padding="same", name=LIGHT_DOWNSCALE)(image)
    gain, lit = light_gain(small)
    final = blend_lift(image, out, upsample_like(gain, image), gate_strength(image, gate), lit)
    return keras.Model(image, final, name=model.name)
