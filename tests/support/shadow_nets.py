"""Stand-in shadow nets whose predictions a test can reason about."""

from __future__ import annotations

import keras
import numpy as np


def brightness_net(level: float = 0.5) -> keras.Model:
    """Reads darkening as brightness below `level`: log(level / luminance), 0 above it. On a photo
    whose lit part is above `level` that is the shadow's depth, as a trained net would predict it."""
    image = keras.Input(shape=(None, None, 3))
    luminance = keras.ops.maximum(keras.ops.mean(image, axis=-1, keepdims=True), 1e-4)
    return keras.Model(image, -keras.ops.relu(float(np.log(level)) - keras.ops.log(luminance)))
