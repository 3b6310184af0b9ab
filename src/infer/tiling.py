"""Whole-image results from bounded memory: run a fully convolutional model on overlapping tiles.

DCE-Net is seven 3×3 convolutions deep, so each curve depends only on input pixels
at most 7 away; the curves are applied pixel by pixel, and the denoiser after them
reaches one pixel further per TV iteration (28 in all). A tile that carries at
least that much real context around the part it keeps therefore produces exactly
what a whole-image pass would — the image border sees the same zero padding either
way — while memory grows with the tile, not the photo. The exposure gate's strength
is a property of the whole photo: it is computed once and handed to every tile.
The default margin of 32 px covers the default model. Zero-DCE++ is not local (its
curves come from a downscaled copy of the whole photo): `src.infer.downscaled` estimates
them once on the whole photo, and what is left per tile is local again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

DEFAULT_TILE = 512
DEFAULT_MARGIN = 32
# The curve net's 7 px (src.model.networks.CURVE_RADIUS), then the denoiser's 21 (one per TV
# iteration, src.model.denoise.DENOISER_RADIUS; a test keeps the two in step without importing
# TensorFlow here). src.infer.enhance checks the margin against the loaded
# model's own radius as well.
RECEPTIVE_RADIUS = 28


@dataclass(frozen=True)
class Window:
    """One tile: `inner` is the output it owns, `outer` the input it reads (both y0, y1, x0, x1)."""

    inner: tuple[int, int, int, int]
    outer: tuple[int, int, int, int]

    @property
    def crop(self) -> tuple[slice, slice]:
        """Where `inner` lies inside the tile's own output."""
        y0, y1, x0, x1 = self.inner
        oy, _, ox, _ = self.outer
        return slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox)


def windows(height: int, width: int, tile: int, margin: int) -> Iterator[Window]:
    """Cover the image with `tile`×`tile` owned blocks, each read with `margin` px of context.

    Edge tiles simply shrink. Sliding them inwards to keep one tile shape was measured
    too: it saved under 10% of peak memory and cost up to 40% more computation.
    """
    if tile < 1 or margin < 0:
        raise ValueError(f"tile must be >= 1 and margin >= 0, got tile={tile}, margin={margin}")
    for y0 in range(0, height, tile):
        y1 = min(y0 + tile, height)
        for x0 in range(0, width, tile):
            x1 = min(x0 + tile, width)
            outer = (
                max(y0 - margin, 0),
                min(y1 + margin, height),
                max(x0 - margin, 0),
                min(x1 + margin, width),
            )
            yield Window((y0, y1, x0, x1), outer)


def count_windows(height: int, width: int, tile: int) -> int:
    return -(-height // tile) * -(-width // tile)


def run_tiles(
    forward: Callable[[Window], np.ndarray],
    store: Callable[[Window, np.ndarray], None],
    height: int,
    width: int,
    tile: int = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
    on_tile: Callable[[], None] | None = None,
) -> None:
    """For every window: `forward` computes its `outer` region, `store` receives the `inner` part.

    The caller decides where tiles come from and go to (`src.infer.photo_tiles` reads
    integer pixels and writes integer pixels), so nothing here holds more than one tile.
    An image that fits in one tile is one window, read and stored whole.
    """
    for window in windows(height, width, tile, margin):
        store(window, forward(window)[window.crop])
        if on_tile:
            on_tile()


def enhance_tiled(
    forward: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    tile: int = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
    on_tile: Callable[[], None] | None = None,
) -> np.ndarray:
    """`forward` (HxWx3 → HxWx3) over a whole float image in memory, one overlapping tile at a time.

    An image that fits in one tile goes through in one call, so small images pay
    no overhead. Peak memory is the input and output images plus one tile of
    `(tile + 2·margin)²` pixels through the network; photos of any size go through
    `run_tiles` instead, which needs neither whole image in float.
    """
    height, width = image.shape[:2]
    if height <= tile and width <= tile:
        result = forward(image)
        if on_tile:
            on_tile()
        return result
    output = np.empty((height, width, 3), np.float32)

    def read(window: Window) -> np.ndarray:
        oy0, oy1, ox0, ox1 = window.outer
        return forward(image[oy0:oy1, ox0:ox1])

    def store(window: Window, values: np.ndarray) -> None:
        y0, y1, x0, x1 = window.inner
        output[y0:y1, x0:x1] = values

    run_tiles(read, store, height, width, tile, margin, on_tile)
    return output
