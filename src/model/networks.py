"""DCE-Net and the light-enhancement curve of Zero-DCE, and the Zero-DCE++ variant.

Zero-DCE (Guo et al., CVPR 2020) predicts, per pixel, `iterations` RGB curve
parameters α in [-1, 1]; the image is brightened by applying LE(x) = x + α·(x² − x)
that many times. Zero-DCE++ (Li, Guo, Loy, TPAMI 2021) predicts one RGB α map that all
iterations share, with depthwise-separable convolutions (10,561 parameters instead of
79,416), and at inference estimates it on a downscaled copy of the image: the curves
are smooth, so a box-filtered 1/s input loses little, and the network then costs 1/s²
as much. The curves are upsampled and applied at full resolution.

The graphs use only stock Keras layers and `keras.ops`, so a saved `.keras` file loads
anywhere (MLflow serving included) without registering custom classes — which is why
the bilinear upsampling to the input's size is written out with `take` instead of a
custom resize layer (Keras' own resize needs sizes known when the graph is built).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import keras
import numpy as np
from keras import layers, ops

from src.model.denoise import DENOISER_RADIUS, keras_denoiser

# (curves' output, original image) → denoised output: `src.model.denoise`.
Denoise = Callable[[keras.KerasTensor, keras.KerasTensor], keras.KerasTensor]

Variant = Literal["zero_dce", "zero_dce_pp"]
VARIANTS: tuple[str, ...] = ("zero_dce", "zero_dce_pp")
CURVE_NET = "curve_net"  # the Zero-DCE++ curve estimator, a nested model shared by both graphs
EXPOSURE_GATE = "exposure_gate"  # the layer holding the gate's band (see gate_strength)


@contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Build layers under a Keras dtype policy without changing it for the rest of the process."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def apply_curves(image: keras.KerasTensor, curves: keras.KerasTensor, iterations: int) -> keras.KerasTensor:
    """Apply LE(x) = x + α(x² − x) `iterations` times.

    `curves` holds one RGB α triple per iteration (Zero-DCE), or a single triple
    that every iteration reuses (Zero-DCE++). For x in [0, 1] and α in [-1, 1] each
    step maps [0, 1] onto itself monotonically, so the result needs no clipping.
    """
    shared = curves.shape[-1] == 3
    x = image
    for i in range(iterations):
        alpha = curves if shared else curves[..., 3 * i : 3 * i + 3]
        x = x + alpha * (ops.square(x) - x)
    return x


def _zero_dce_trunk(image: keras.KerasTensor, iterations: int, filters: int) -> keras.KerasTensor:
    """Seven 3×3 convolutions with the paper's symmetric skips (1↔7, 2↔6, 3↔5)."""

    def conv(name: str) -> layers.Conv2D:
        return layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)

    x1 = conv("conv1")(image)
    x2 = conv("conv2")(x1)
    x3 = conv("conv3")(x2)
    x4 = conv("conv4")(x3)
    x5 = conv("conv5")(layers.Concatenate(name="skip_3_4")([x3, x4]))
    x6 = conv("conv6")(layers.Concatenate(name="skip_2_5")([x2, x5]))
    return layers.Conv2D(3 * iterations, 3, padding="same", activation="tanh", name="conv7")(
        layers.Concatenate(name="skip_1_6")([x1, x6])
    )


def _separable(filters: int, name: str, activation: str = "relu") -> keras.Sequential:
    """Depthwise 3×3 (with bias) then pointwise 1×1, as the official Zero-DCE++ code.

    Keras' SeparableConv2D has no depthwise bias, which would give 10,561 − 355
    parameters and a slightly different model from the paper's.
    """
    return keras.Sequential(
        [
            layers.DepthwiseConv2D(3, padding="same", name=f"{name}_depthwise"),
            layers.Conv2D(filters, 1, activation=activation, name=f"{name}_pointwise"),
        ],
        name=name,
    )


def build_curve_net_pp(filters: int = 32) -> keras.Model:
    """Zero-DCE++'s estimator: image → one RGB α map at the image's own resolution."""
    image = keras.Input(shape=(None, None, 3), name="image")
    x1 = _separable(filters, "conv1")(image)
    x2 = _separable(filters, "conv2")(x1)
    x3 = _separable(filters, "conv3")(x2)
    x4 = _separable(filters, "conv4")(x3)
    x5 = _separable(filters, "conv5")(layers.Concatenate(name="skip_3_4")([x3, x4]))
    x6 = _separable(filters, "conv6")(layers.Concatenate(name="skip_2_5")([x2, x5]))
    alpha = _separable(3, "conv7", activation="tanh")(layers.Concatenate(name="skip_1_6")([x1, x6]))
    return keras.Model(image, alpha, name=CURVE_NET)


def build_dce_net(iterations: int = 8, filters: int = 32, variant: Variant = "zero_dce") -> keras.Model:
    """The training model: image in [0, 1] → [enhanced image, α maps per iteration].

    The second output always has 3·iterations channels, so the smoothness loss (which
    sums over channels) weighs both variants alike: for Zero-DCE++ it is the shared
    map repeated, which is what each iteration applies, and a weight of 200 then equals
    the official Zero-DCE++ code's 1600 on its single map. Training runs at the crops'
    own resolution; the scale factor only applies to the inference graph. Under a mixed
    precision policy the convolutions run in bfloat16 and the curves in float32.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown model variant {variant!r}; known: {', '.join(VARIANTS)}")
    image = keras.Input(shape=(None, None, 3), name="image", dtype="float32")
    if variant == "zero_dce":
        curves = ops.cast(_zero_dce_trunk(image, iterations, filters), "float32")
        enhanced = apply_curves(image, curves, iterations)
        return keras.Model(image, [enhanced, curves], name="dce_net")
    alpha = ops.cast(build_curve_net_pp(filters)(image), "float32")
    enhanced = apply_curves(image, alpha, iterations)
    per_iteration = ops.tile(alpha, [1, 1, 1, iterations])
    return keras.Model(image, [enhanced, per_iteration], name="dce_net_pp")


# The curve net's seven stacked 3×3 convolutions; the curves themselves act pixel by pixel.
CURVE_RADIUS = 7


def receptive_radius(denoised: bool) -> int:
    """How far (px) an output pixel's inputs reach: the curve net's, plus the denoiser's."""
    return CURVE_RADIUS + (DENOISER_RADIUS if denoised else 0)


def gate_layer(band: tuple[float, float], name: str = EXPOSURE_GATE) -> layers.Dense:
    """A frozen 1→1 Dense holding the gate's line in log-brightness, so the band travels
    inside the saved file (and can be read back) without a custom layer."""
    low, high = band
    span = max(float(np.log(high) - np.log(low)), 1e-6)
    layer = layers.Dense(1, name=name, trainable=False, dtype="float32")
    layer.build((None, 1))
    layer.set_weights([np.array([[-1.0 / span]], np.float32), np.array([np.log(high) / span], np.float32)])
    return layer


def gate_strength(image: keras.KerasTensor, gate: layers.Dense) -> keras.KerasTensor:
    """How strongly to enhance each image of a batch, from its mean brightness: [N, 1, 1, 1].

    1 below the band's low end (a dark photo gets the full curves), 0 above its high
    end (a photo that is already lit is returned unchanged), smooth in log brightness
    in between. This is what lets a folder of mixed photos go through the model: the
    curves themselves only ever learned to brighten dark images.
    """
    brightness = ops.mean(image, axis=(1, 2, 3))[:, None]
    t = ops.clip(gate(ops.log(ops.maximum(brightness, 1e-4))), 0.0, 1.0)
    smooth = t * t * (3.0 - 2.0 * t)  # smoothstep: no kink at the ends of the band
    return ops.reshape(smooth, (-1, 1, 1, 1))


def finish(
    image: keras.KerasTensor,
    enhanced: keras.KerasTensor,
    gate: layers.Dense | None,
    denoiser: Denoise | None,
    strength: keras.KerasTensor | None = None,
) -> keras.KerasTensor:
    """Gate, then denoise, the curves' output: what every deployed graph does after the curves.

    Both steps are scaled by the gate's strength, so an image the gate leaves alone
    comes back bit for bit. `strength` overrides the image's own (tiles of a large
    photo must use the whole photo's, see `src.infer.enhancer`).
    """
    s = gate_strength(image, gate) if strength is None and gate is not None else strength
    if s is None and denoiser is None:
        return enhanced
    out = enhanced if s is None else image + s * (enhanced - image)
    if denoiser is not None:
        denoised = denoiser(out, image)
        out = denoised if s is None else out + s * (denoised - out)
    return ops.clip(out, 0.0, 1.0)


def upsample_like(low: keras.KerasTensor, like: keras.KerasTensor) -> keras.KerasTensor:
    """Bilinear resize of `low` to the height and width of `like`, with stock ops only.

    Same sampling as `tf.image.resize(..., "bilinear")` (half-pixel centres, edge
    clamp): rows, then columns, each a gather of two neighbours and a lerp.
    """

    def positions(low_axis: keras.KerasTensor, out_axis: keras.KerasTensor):
        low_size = ops.sum(ops.ones_like(low_axis))
        out_index = ops.cumsum(ops.ones_like(out_axis)) - 1.0
        coord = (out_index + 0.5) * (low_size / ops.sum(ops.ones_like(out_axis))) - 0.5
        coord = ops.minimum(ops.maximum(coord, 0.0), low_size - 1.0)
        first = ops.floor(coord)
        second = ops.minimum(first + 1.0, low_size - 1.0)
        return ops.cast(first, "int32"), ops.cast(second, "int32"), coord - first

    top, bottom, wy = positions(low[0, :, 0, 0], like[0, :, 0, 0])
    wy = ops.reshape(wy, (1, -1, 1, 1))
    rows = ops.take(low, top, axis=1) * (1.0 - wy) + ops.take(low, bottom, axis=1) * wy
    left, right, wx = positions(low[0, 0, :, 0], like[0, 0, :, 0])
    wx = ops.reshape(wx, (1, 1, -1, 1))
    return ops.take(rows, left, axis=2) * (1.0 - wx) + ops.take(rows, right, axis=2) * wx


def _deployed(training_model: keras.Model, scale_factor: int) -> tuple[keras.KerasTensor, ...]:
    """(image input, enhanced, α map) of the graph that runs on full images.

    For Zero-DCE++ with `scale_factor` > 1 the curve net sees the image box-filtered
    by that factor, and its α map is upsampled bilinearly to the full image.
    """
    if training_model.name != "dce_net_pp":
        image = training_model.inputs[0]
        return image, training_model.outputs[0], training_model.outputs[1]
    curve_net = training_model.get_layer(CURVE_NET)
    iterations = training_model.outputs[1].shape[-1] // 3
    image = keras.Input(shape=(None, None, 3), name="image", dtype="float32")
    if scale_factor > 1:
        small = layers.AveragePooling2D(scale_factor, scale_factor, padding="same", name="downscale")(image)
        alpha = upsample_like(ops.cast(curve_net(small), "float32"), image)
    else:
        alpha = ops.cast(curve_net(image), "float32")
    return image, apply_curves(image, alpha, iterations), alpha


def inference_model(
    training_model: keras.Model,
    scale_factor: int = 1,
    denoiser: layers.Dense | None = None,
    gate_band: tuple[float, float] | None = None,
) -> keras.Model:
    """The same weights with one output, the finished image: what is saved and served.

    With a `gate_band` the curves (and the denoiser) are scaled by the exposure gate;
    without one the graph is the plain Zero-DCE of the paper. `denoiser` is the layer of
    `src.model.denoise.denoiser_layer` holding the denoiser's strengths.
    """
    image, enhanced, _ = _deployed(training_model, scale_factor)
    gate = gate_layer(gate_band) if gate_band is not None else None
    name = "zero_dce_pp" if training_model.name == "dce_net_pp" else "zero_dce"
    denoise = keras_denoiser(denoiser) if denoiser is not None else None
    return keras.Model(image, finish(image, enhanced, gate, denoise), name=name)


def validation_model(training_model: keras.Model, scale_factor: int = 1) -> keras.Model:
    """[enhanced, α per iteration] as deployed (full image, Zero-DCE++ at its scale factor),
    sharing the training model's weights: validation scores what will be shipped."""
    if training_model.name != "dce_net_pp" or scale_factor == 1:
        return training_model
    image, enhanced, alpha = _deployed(training_model, scale_factor)
    iterations = training_model.outputs[1].shape[-1] // 3
    return keras.Model(image, [enhanced, ops.tile(alpha, [1, 1, 1, iterations])], name="dce_net_pp_deployed")
