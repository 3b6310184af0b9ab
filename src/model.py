"""DCE-Net and the light-enhancement curve of Zero-DCE (Guo et al., CVPR 2020).

The network predicts, per pixel, `iterations` RGB curve parameters α in [-1, 1]; the
image is then brightened by applying LE(x) = x + α·(x² − x) that many times. The graph
uses only stock Keras layers and `keras.ops`, so a saved `.keras` file loads anywhere
(MLflow serving included) without registering custom classes.
"""

from __future__ import annotations

import keras
from keras import layers, ops


def apply_curves(image: keras.KerasTensor, curves: keras.KerasTensor, iterations: int) -> keras.KerasTensor:
    """Apply LE(x) = x + α(x² − x) once per RGB triple of curve maps.

    For x in [0, 1] and α in [-1, 1] each step maps [0, 1] onto itself monotonically,
    which is why the enhanced image needs no clipping.
    """
    x = image
    for i in range(iterations):
        alpha = curves[..., 3 * i : 3 * i + 3]
        x = x + alpha * (ops.square(x) - x)
    return x


def build_dce_net(iterations: int = 8, filters: int = 32) -> keras.Model:
    """The training model: image in [0, 1] → [enhanced image, α curve maps].

    Seven 3×3 convolutions with the symmetric skip concatenations of the paper
    (1↔7, 2↔6, 3↔5). With the defaults it has exactly 79,416 parameters. Under a
    mixed precision policy the convolutions run in bfloat16 while the curves are
    applied in float32, so the enhanced image keeps full precision.
    """
    image = keras.Input(shape=(None, None, 3), name="image", dtype="float32")

    def conv(name: str) -> layers.Conv2D:
        return layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)

    x1 = conv("conv1")(image)
    x2 = conv("conv2")(x1)
    x3 = conv("conv3")(x2)
    x4 = conv("conv4")(x3)
    x5 = conv("conv5")(layers.Concatenate(name="skip_3_4")([x3, x4]))
    x6 = conv("conv6")(layers.Concatenate(name="skip_2_5")([x2, x5]))
    raw = layers.Conv2D(3 * iterations, 3, padding="same", activation="tanh", name="conv7")(
        layers.Concatenate(name="skip_1_6")([x1, x6])
    )
    curves = ops.cast(raw, "float32")
    enhanced = apply_curves(image, curves, iterations)
    return keras.Model(image, [enhanced, curves], name="dce_net")


def inference_model(training_model: keras.Model) -> keras.Model:
    """The same weights with one output, the enhanced image: what is saved and served."""
    return keras.Model(training_model.inputs[0], training_model.outputs[0], name="zero_dce")
