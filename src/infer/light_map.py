"""The shadow lift for a photo in tiles: its gain map computed once on the whole downscaled photo.

The shadow network judges a region against the whole scene (its global context), so a tile
cannot compute its own gain. The photo is box-filtered band by band (as Zero-DCE++'s curves are,
`src.infer.downscaled`), the network runs on the whole small image (1/64 of the pixels at the
default scale), and each tile upsamples its window of the map with `tf.image.resize`'s weights.
"""

from __future__ import annotations

import numpy as np

from src.infer.enhancer import Enhancer
from src.infer.resampling import Box, ReadRows, box_filter, upsample_window


class LightMap:
    """One photo's lift gain at 1/scale, any window of it at full resolution, and how lit the
    whole photo's scene is (one number, like the exposure gate's strength)."""

    def __init__(self, enhancer: Enhancer, read_rows: ReadRows, height: int, width: int):
        scale = enhancer.architecture.light_scale
        small = box_filter(read_rows, height, width, scale)
        gain, lit = enhancer.light(np.asarray(small, np.float32)[None], training=False)
        self.small = np.asarray(gain[0], np.float32)
        self.lit = float(np.ravel(lit)[0])
        self.size = (height, width)

    def window(self, box: Box) -> np.ndarray:
        return upsample_window(self.small, box, *self.size)
