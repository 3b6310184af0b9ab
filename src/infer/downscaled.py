"""Zero-DCE++ in tiles: the curves estimated once on the downscaled whole photo, applied tile by tile.

Zero-DCE++'s estimator sees the photo box-filtered by the scale factor (12 by default)
and its α map is upsampled bilinearly to full resolution. A tile run through the whole
model would see only its own part of that small image, on a different pooling grid, so
it would differ from one pass (by 5-10 levels of 255 on trained models). Each step can
be split instead:

- the box filter is a mean over fixed blocks: computed here band by band from the
  photo's integer pixels, on the blocks TensorFlow's SAME pooling uses;
- the estimator runs on the small image (1/144 of the pixels), itself in tiles: it is
  seven 3×3 convolutions deep, so tiles with 7 px of context are exact;
- bilinear upsampling of a window depends only on the window's coordinates, so each
  tile upsamples its own part of the α map, with `tf.image.resize`'s weights;
- what remains (the curves, the exposure gate at the whole photo's strength, the
  denoiser) is local, as for Zero-DCE (`src.infer.tiling`); the shadow lift's gain comes
  from the whole photo too (`src.infer.light_map`).

The result equals the whole-image pass up to float rounding (the box filter sums in
float64, TensorFlow in float32): on the trained default model, 159 of 18 M 8-bit values of a
6 MP photo come out one level apart, none more. That is checked on a probe when the path
is built, as `src.infer.enhancer` checks itself against the saved graph.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from src.errors import PipelineError
from src.infer.enhancer import PARITY_TOLERANCE, Enhancer
from src.infer.enhancer import _fused_curves as fused_curves  # the same XLA kernel as the whole pass
from src.infer.light_map import LightMap
from src.infer.resampling import Box, ReadRows, box_filter, upsample_window
from src.infer.tiling import DEFAULT_TILE, Window, enhance_tiled, run_tiles
from src.light.network import blend_lift
from src.model.denoise import tv_function
from src.model.networks import (
    CURVE_NET,
    CURVE_RADIUS,
    build_curve_net_pp,
    finish,
    gate_layer,
    precision_policy,
)

# Tiles against the whole pass. The box filter sums in float64 and TensorFlow in float32: ~1e-7
# apart, which a steep curve estimator can amplify (1e-4 on a test model with tripled weights), so
# float32 allows a quarter of an 8-bit level; bfloat16 as the fast path allows.
TILE_TOLERANCE = {"float32": 1e-3, "mixed_bfloat16": PARITY_TOLERANCE["mixed_bfloat16"]}


class DownscaledCurves:
    """A Zero-DCE++ `Enhancer`'s model, split into whole-photo curves and per-tile application."""

    def __init__(self, enhancer: Enhancer):
        arch = enhancer.architecture
        if arch is None or arch.variant != "zero_dce_pp":
            raise ValueError("DownscaledCurves needs a Zero-DCE++ model")  # a caller's bug
        model = enhancer.model
        with precision_policy(enhancer.precision):  # the same layers as the fast path builds
            estimator = build_curve_net_pp(arch.filters)
        estimator.set_weights(model.get_layer(CURVE_NET).get_weights())
        denoiser = tv_function(arch.denoiser) if arch.denoiser is not None else None
        gate = gate_layer(arch.gate_band) if arch.gate_band is not None else None
        self.scale, iterations = arch.scale_factor, arch.iterations
        has_light = arch.light_scale is not None
        image_spec = tf.TensorSpec([None, None, None, 3], tf.float32)

        @tf.function(input_signature=[image_spec])
        def estimate(small: tf.Tensor) -> tf.Tensor:
            return tf.cast(estimator(small, training=False), tf.float32)

        gain_spec = tf.TensorSpec([None, None, None, 1], tf.float32)

        number_spec = tf.TensorSpec([None], tf.float32)

        @tf.function(input_signature=[image_spec, image_spec, number_spec, gain_spec, number_spec])
        def apply(
            images: tf.Tensor, alpha: tf.Tensor, strength: tf.Tensor, gain: tf.Tensor, lit: tf.Tensor
        ) -> tf.Tensor:
            enhanced = fused_curves(images, alpha, iterations)
            if gate is None and denoiser is None:
                return enhanced
            s = tf.reshape(strength, [-1, 1, 1, 1]) if gate is not None else None
            out = finish(images, enhanced, gate, denoiser, s)
            return blend_lift(images, out, gain, s, tf.reshape(lit, [-1, 1, 1, 1])) if has_light else out

        self._estimate, self._apply = estimate, apply
        self.enhancer, self.has_light = enhancer, has_light
        self.parity_max_abs = self._check_parity(enhancer)

    def curves(self, read_rows: ReadRows, height: int, width: int, tile: int = DEFAULT_TILE) -> np.ndarray:
        """The whole photo's α map at 1/scale resolution (h × w × 3 float32)."""
        small = box_filter(read_rows, height, width, self.scale)
        return enhance_tiled(lambda part: self._estimate(part[None])[0].numpy(), small, tile, CURVE_RADIUS)

    def __call__(
        self,
        rgb: np.ndarray,
        alpha: np.ndarray,
        box: Box,
        size: tuple[int, int],
        strength: float | None,
        light: LightMap | None = None,
    ) -> np.ndarray:
        """The enhanced window `box` (pixels `rgb`) of a photo of `size` = (height, width); `light`
        is the photo's lift gain map (needed when the model has the lift)."""
        curves = upsample_window(alpha, box, *size)
        given = tf.constant([1.0 if strength is None else strength], tf.float32)  # ignored without a gate
        gain = light.window(box) if light is not None else np.zeros((*rgb.shape[:2], 1), np.float32)
        lit = tf.constant([light.lit if light is not None else 0.0], tf.float32)
        batch = self._apply(
            tf.convert_to_tensor(rgb[None]),
            tf.convert_to_tensor(curves[None]),
            given,
            tf.convert_to_tensor(gain[None]),
            lit,
        )
        return batch[0].numpy()

    def enhance_array(
        self,
        image: np.ndarray,
        tile: int,
        margin: int,
        strength: float | None,
        curve_tile: int = DEFAULT_TILE,
    ) -> np.ndarray:
        """A whole float image in memory, in tiles (the probe below, and tests)."""
        height, width = image.shape[:2]
        alpha = self.curves(lambda y0, y1: image[y0:y1], height, width, curve_tile)
        light = (
            LightMap(self.enhancer, lambda y0, y1: image[y0:y1], height, width) if self.has_light else None
        )
        output = np.empty((height, width, 3), np.float32)

        def forward(window: Window) -> np.ndarray:
            y0, y1, x0, x1 = window.outer
            return self(image[y0:y1, x0:x1], alpha, window.outer, (height, width), strength, light)

        def store(window: Window, part: np.ndarray) -> None:
            y0, y1, x0, x1 = window.inner
            output[y0:y1, x0:x1] = part

        run_tiles(forward, store, height, width, tile, margin)
        return output

    def _check_parity(self, enhancer: Enhancer) -> float:
        """Tiles (of the photo and of the small image) against the whole-image fast path, on a
        probe whose size is not a multiple of the scale factor (unaligned pooling blocks)."""
        probe = (np.random.default_rng(0).random((61, 83, 3)) * 0.4).astype(np.float32)
        strength = enhancer.strength_of(probe)
        whole = enhancer(probe, strength)
        tiled = self.enhance_array(probe, 24, enhancer.receptive_radius, strength, curve_tile=3)
        difference = float(np.abs(tiled - whole).max())
        tolerance = TILE_TOLERANCE[enhancer.precision]
        if not difference <= tolerance:
            raise PipelineError(
                f"Zero-DCE++ in tiles differs from the whole-image pass by {difference:.2g} "
                f"(tolerance {tolerance}); use a --tile larger than the photo"
            )
        return difference
