"""Fast inference: the saved model's curve estimator, then the curves in one fused pass.

A saved model applies its eight curve iterations as some thirty element-wise
TensorFlow ops, and each one reads and writes the whole image: at full resolution
that is memory-bound and costs more than Zero-DCE++'s whole network. Here the
estimator runs as usual and the curves are applied by one XLA-compiled kernel
(`x ← x·((1 − α) + α·x)`, the same LE curve factored). XLA is used for that part
only: on CPUs its convolutions, pooling and resizing are slower than TensorFlow's own.

The fast path is rebuilt from the saved model's weights (its variant, sizes and
scale factor are read from the graph) and checked against the saved model on a
probe image before use, so it can never silently disagree with what was trained.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from src.config import PRECISIONS
from src.errors import PipelineError
from src.light.network import LIGHT_DOWNSCALE, LIGHT_GAIN, LIGHT_THRESHOLD, blend_lift, threshold_of
from src.model.denoise import DENOISER, strengths_of, tv_function
from src.model.networks import (
    CURVE_NET,
    EXPOSURE_GATE,
    build_curve_net_pp,
    build_dce_net,
    finish,
    gate_layer,
    gate_strength,
    precision_policy,
    receptive_radius,
)

PARITY_TOLERANCE = {"float32": 1e-4, "mixed_bfloat16": 0.05}


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What the fast path needs to know about a saved inference model."""

    variant: str
    iterations: int
    filters: int
    scale_factor: int
    denoiser: tuple[float, float, float] | None = None  # its strengths; None: no denoiser
    gate_band: tuple[float, float] | None = None  # None: no exposure gate
    light_scale: int | None = None  # the shadow lift's box filter; None: no lift
    light_threshold: float | None = None


def _optional_layer(model: keras.Model, name: str) -> keras.layers.Layer | None:
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def gate_band_of(gate: keras.layers.Dense) -> tuple[float, float]:
    """The [low, high] brightness band that `src.model.networks.gate_layer` stored in the layer's weights."""
    kernel, bias = (float(np.ravel(w)[0]) for w in gate.get_weights())
    span = -1.0 / kernel
    high = float(np.exp(bias * span))
    return (round(high / float(np.exp(span)), 6), round(high, 6))


def architecture_of(model: keras.Model) -> Architecture:
    """Read variant, sizes, scale factor, denoiser and gate back from a saved graph."""
    iterations = sum(type(op).__name__ == "Square" for op in model.operations)
    denoiser = _optional_layer(model, DENOISER)
    gate = _optional_layer(model, EXPOSURE_GATE)
    light = _optional_layer(model, LIGHT_GAIN)
    extras = {
        "denoiser": strengths_of(denoiser) if denoiser is not None else None,
        "gate_band": gate_band_of(gate) if gate is not None else None,
        "light_scale": int(model.get_layer(LIGHT_DOWNSCALE).pool_size[0]) if light is not None else None,
        "light_threshold": threshold_of(light.get_layer(LIGHT_THRESHOLD)) if light is not None else None,
    }
    try:
        if model.name == "zero_dce_pp":
            curve_net = model.get_layer(CURVE_NET)
            filters = curve_net.get_layer("conv1").layers[-1].filters
            try:
                scale = int(model.get_layer("downscale").pool_size[0])
            except ValueError:
                scale = 1
            return Architecture("zero_dce_pp", iterations, filters, scale, **extras)
        conv7 = model.get_layer("conv7")
        return Architecture("zero_dce", conv7.filters // 3, model.get_layer("conv1").filters, 1, **extras)
    except (ValueError, AttributeError, IndexError):
        raise PipelineError(
            f"model {model.name!r} is not a Zero-DCE or Zero-DCE++ inference model of this project"
        ) from None


@tf.function(jit_compile=True)
def _fused_curves(image: tf.Tensor, alpha: tf.Tensor, iterations: int) -> tf.Tensor:
    """All iterations in one XLA kernel; `alpha` holds 3 (shared) or 3·iterations channels."""
    x = image
    for i in range(iterations):
        a = alpha if alpha.shape[-1] == 3 else alpha[..., 3 * i : 3 * i + 3]
        x = x * ((1.0 - a) + a * x)
    return x


class Enhancer:
    """A saved Zero-DCE or Zero-DCE++ model as one fast function of any image size.

    `precision="mixed_bfloat16"` runs the convolutions in bfloat16 (a speed-up on
    CPUs with AVX512-BF16 or AMX and on GPUs; emulated, hence slow, elsewhere); the
    curves are always applied in float32.
    """

    def __init__(self, model: keras.Model, precision: str = "float32", fused: bool = True):
        if precision not in PRECISIONS:
            raise PipelineError(f"inference precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        self.model = model
        self.precision = precision
        self.architecture: Architecture | None = None
        self.light: keras.Model | None = None  # the shadow lift's gain network (fast path only)
        try:
            self.architecture = architecture_of(model)
        except PipelineError:
            if fused or precision != "float32":
                raise  # the plain path runs any image-to-image Keras model
        if fused or precision != "float32":
            self._forward = self._fast_path(model, precision)
            self._check_parity()
        else:
            plain = tf.function(
                lambda x: model(x, training=False),
                input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
            )
            self._forward = lambda images, strength=None: plain(images)

    def _fast_path(self, model: keras.Model, precision: str):
        arch = self.architecture
        with precision_policy(precision):
            if arch.variant == "zero_dce":
                trained = build_dce_net(arch.iterations, arch.filters, "zero_dce")
                estimator = keras.Model(trained.inputs[0], trained.outputs[1])
                source = keras.Model(model.inputs[0], model.get_layer("conv7").output)
            else:
                estimator = build_curve_net_pp(arch.filters)
                source = model.get_layer(CURVE_NET)
        estimator.set_weights(source.get_weights())
        denoiser = tv_function(arch.denoiser) if arch.denoiser is not None else None
        self._gate = gate_layer(arch.gate_band) if arch.gate_band is not None else None
        self.light = model.get_layer(LIGHT_GAIN) if arch.light_scale is not None else None
        gate, iterations, scale = self._gate, arch.iterations, arch.scale_factor
        image_spec = tf.TensorSpec([None, None, None, 3], tf.float32)
        strength_spec = tf.TensorSpec([None], tf.float32)

        def curves(images: tf.Tensor, strength: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]:
            """(curves, gated and denoised; the gate's strength), as the saved graph computes them."""
            small = tf.nn.avg_pool2d(images, scale, scale, "SAME") if scale > 1 else images
            alpha = tf.cast(estimator(small, training=False), tf.float32)
            if scale > 1:
                alpha = tf.image.resize(alpha, tf.shape(images)[1:3], "bilinear")
            enhanced = _fused_curves(images, alpha, iterations)
            if gate is None and denoiser is None:
                return enhanced, None
            # A negative strength means "the image's own" (a batch of whole images).
            s = None
            if gate is not None:
                given = tf.reshape(strength, [-1, 1, 1, 1])
                s = tf.where(given < 0, gate_strength(images, gate), given)
            return finish(images, enhanced, gate, denoiser, s), s

        @tf.function(input_signature=[image_spec, strength_spec])
        def forward(images: tf.Tensor, strength: tf.Tensor) -> tf.Tensor:
            out, s = curves(images, strength)
            if self.light is None:
                return out
            gain, lit = self.light_gain(images)
            return blend_lift(images, out, gain, s, lit)

        gain_spec = tf.TensorSpec([None, None, None, 1], tf.float32)

        @tf.function(input_signature=[image_spec, strength_spec, gain_spec, strength_spec])
        def forward_lit(images: tf.Tensor, strength: tf.Tensor, gain: tf.Tensor, lit: tf.Tensor) -> tf.Tensor:
            out, s = curves(images, strength)
            return blend_lift(images, out, gain, s, tf.reshape(lit, [-1, 1, 1, 1]))

        self._forward_lit = forward_lit
        return lambda images, strength=None: forward(
            images, tf.fill([tf.shape(images)[0]], -1.0) if strength is None else strength
        )

    def light_gain(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(the lift's log gain at full resolution, the scene's litness [N, 1, 1, 1]) for whole
        images, as the saved graph computes them."""
        scale = self.architecture.light_scale
        small = tf.nn.avg_pool2d(images, scale, scale, "SAME") if scale > 1 else images
        gain, lit = self.light(small, training=False)
        return tf.image.resize(gain, tf.shape(images)[1:3], "bilinear"), lit

    def _check_parity(self) -> None:
        """The fast path against the saved graph on a probe of odd size (not a multiple
        of the scale factor, so the resize edge cases are exercised too)."""
        probe = np.random.default_rng(0).random((1, 61, 83, 3)).astype(np.float32) * 0.4
        expected = keras.ops.convert_to_numpy(self.model(probe, training=False))
        difference = float(np.abs(self._forward(tf.constant(probe)).numpy() - expected).max())
        if not difference <= PARITY_TOLERANCE[self.precision]:
            raise PipelineError(
                f"fast {self.precision} inference differs from the saved model by {difference:.2g} "
                f"(tolerance {PARITY_TOLERANCE[self.precision]}); use the plain path (fused=False)"
            )
        self.parity_max_abs = difference

    @property
    def exact_in_tiles(self) -> bool:
        """Whether overlapping tiles reproduce the whole-image result (src.infer.tiling): true for
        a 7-layer receptive field, false once curves are estimated on a downscaled image or the
        shadow lift looks at the whole photo."""
        arch = self.architecture
        return arch is None or (arch.scale_factor == 1 and arch.light_scale is None)

    @property
    def receptive_radius(self) -> int:
        """How far (px) an output pixel's inputs reach: the curve net's 7, plus the denoiser's."""
        arch = self.architecture
        return receptive_radius(arch is not None and arch.denoiser is not None)

    def forward(self, images: tf.Tensor) -> tf.Tensor:
        """A batch [N, H, W, 3] of float32 images in [0, 1] → enhanced batch."""
        return self._forward(images)

    def strength_of(self, image: np.ndarray) -> float | None:
        """The exposure gate's strength for a whole image (None without a gate): tiles
        of that image must all use it, or each would judge its own brightness."""
        gate = getattr(self, "_gate", None)
        if gate is None:
            return None
        batch = tf.convert_to_tensor(np.asarray(image, np.float32)[None])
        return float(tf.reshape(gate_strength(batch, gate), [-1])[0])

    def __call__(
        self,
        image: np.ndarray,
        strength: float | None = None,
        gain: np.ndarray | None = None,
        lit: float = 0.0,
    ) -> np.ndarray:
        """One HxWx3 image; `strength` fixes the exposure gate's (see `strength_of`), `gain` the
        lift's log gain at full resolution (a tile's part of the whole photo's, `src.infer.light_map`)."""
        batch = tf.convert_to_tensor(image[None], tf.float32)
        if gain is not None:
            given = tf.constant([-1.0 if strength is None else strength], tf.float32)
            gain_batch, lit_batch = (
                tf.convert_to_tensor(gain[None], tf.float32),
                tf.constant([lit], tf.float32),
            )
            return self._forward_lit(batch, given, gain_batch, lit_batch)[0].numpy()
        given = None if strength is None else tf.constant([strength], tf.float32)
        return self._forward(batch, given)[0].numpy()
