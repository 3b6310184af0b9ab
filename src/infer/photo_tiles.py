"""Whole photos through an `Enhancer` in bounded memory: integer pixels in, integer pixels out.

Peak memory for a photo is its decoded pixels and its encoded output, both in the
file's own type (3 bytes a pixel each for 8-bit RGB), plus one tile through the network:
float32 exists only per tile (`Photo.unit_rgb` in, `encode_into` out). Measured peak RSS
with the default model: 1.25 GB for a 25 MP photo, 1.69 GB for 100 MP
(docs/photos-and-serving.md).

The exposure gate judges the whole photo's mean brightness once (exact integer sums,
`Photo.mean`); every tile uses that strength. Zero-DCE gives exact tiles as is; Zero-DCE++
estimates its curves on the downscaled whole photo first (`src.infer.downscaled`), and the
shadow lift its gain map (`src.infer.light_map`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from src.infer.photo_writing import encode_into, new_output
from src.infer.photos import Photo
from src.infer.tiling import DEFAULT_MARGIN, DEFAULT_TILE, Window, count_windows, run_tiles

if TYPE_CHECKING:  # TensorFlow: imported by whoever built the Enhancer
    from src.infer.downscaled import DownscaledCurves
    from src.infer.enhancer import Enhancer


class PhotoEnhancer:
    """Enhance `Photo`s with one `Enhancer`, tile by tile, into `new_output` arrays."""

    def __init__(self, enhancer: Enhancer, tile: int = DEFAULT_TILE, margin: int = DEFAULT_MARGIN):
        self.enhancer, self.tile, self.margin = enhancer, tile, margin
        self._curves: DownscaledCurves | None = None  # built on the first Zero-DCE++ photo that needs tiles

    def tiles(self, photo: Photo) -> int:
        width, height = photo.size
        return count_windows(height, width, self.tile)

    def __call__(self, photo: Photo, on_tile: Callable[[], None] | None = None) -> np.ndarray:
        """The enhanced photo as `new_output(photo)` values (alpha in place), ready to write."""
        width, height = photo.size
        values = new_output(photo)
        # The gate reads only the mean, so a 1×1 image of the photo's mean has its strength.
        strength = self.enhancer.strength_of(np.full((1, 1, 3), photo.mean(), np.float32))
        forward = self._forward(photo, strength)

        def store(window: Window, part: np.ndarray) -> None:
            encode_into(photo, values, window.inner, part)

        run_tiles(forward, store, height, width, self.tile, self.margin, on_tile)
        return values

    def _forward(self, photo: Photo, strength: float | None) -> Callable[[Window], np.ndarray]:
        width, height = photo.size
        if self.enhancer.exact_in_tiles or self.tiles(photo) == 1:
            return lambda window: self.enhancer(photo.unit_rgb(*window.outer), strength)
        light = None
        if self.enhancer.light is not None:
            from src.infer.light_map import LightMap

            light = LightMap(self.enhancer, lambda y0, y1: photo.unit_rgb(y0, y1), height, width)
            if self.enhancer.architecture.scale_factor == 1:  # Zero-DCE: all else is local
                return lambda window: self.enhancer(
                    photo.unit_rgb(*window.outer), strength, light.window(window.outer), light.lit
                )
        if self._curves is None:
            from src.infer.downscaled import DownscaledCurves  # lazy, as the fast path is

            self._curves = DownscaledCurves(self.enhancer)
        curves = self._curves
        alpha = curves.curves(lambda y0, y1: photo.unit_rgb(y0, y1), height, width, self.tile)
        return lambda window: curves(
            photo.unit_rgb(*window.outer), alpha, window.outer, (height, width), strength, light
        )
