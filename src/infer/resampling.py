"""The resampling of Zero-DCE++'s deployed graph, piecewise: box filter down, bilinear up.

`src.infer.downscaled` needs both steps of the whole photo without the whole photo in
float: the box filter is computed band by band from any row reader, and the bilinear
upsampling for one window at a time. Both reproduce TensorFlow's kernels (SAME average
pooling, `tf.image.resize` with half-pixel centres) to float rounding; numpy only, so
they are tested against TensorFlow without loading a model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ReadRows = Callable[[int, int], np.ndarray]  # (y0, y1) → float32 rows × width × 3 in [0, 1]
Box = tuple[int, int, int, int]  # y0, y1, x0, x1
BAND_ROWS = 256  # full-resolution rows read at once by the box filter


def pool_blocks(size: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop of every block of SAME average pooling (window = stride = `scale`).

    TensorFlow pads the `out·scale − size` missing pixels with the smaller half first, so
    blocks are not aligned at 0, and a border block averages only its real pixels.
    """
    count = -(-size // scale)
    starts = np.arange(count) * scale - (count * scale - size) // 2
    return np.maximum(starts, 0), np.minimum(starts + scale, size)


def box_filter(read_rows: ReadRows, height: int, width: int, scale: int) -> np.ndarray:
    """`tf.nn.avg_pool2d(image, scale, scale, "SAME")` of an image read in bands of rows."""
    row_starts, row_stops = pool_blocks(height, scale)
    col_starts, col_stops = pool_blocks(width, scale)
    col_counts = (col_stops - col_starts).astype(np.float64)
    small = np.empty((len(row_starts), len(col_starts), 3), np.float32)
    per_band = max(BAND_ROWS // scale, 1)
    for i0 in range(0, len(row_starts), per_band):
        i1 = min(i0 + per_band, len(row_starts))
        top = int(row_starts[i0])
        band = read_rows(top, int(row_stops[i1 - 1]))
        sums = np.add.reduceat(band, row_starts[i0:i1] - top, axis=0, dtype=np.float64)
        sums = np.add.reduceat(sums, col_starts, axis=1)
        counts = (row_stops[i0:i1] - row_starts[i0:i1])[:, None] * col_counts[None, :]
        small[i0:i1] = sums / counts[..., None]
    return small


def _bilinear_axis(start: int, stop: int, out_size: int, in_size: int) -> tuple[np.ndarray, ...]:
    """`tf.image.resize` bilinear weights (half-pixel centres, clamped) for output positions
    start..stop-1 of an axis, in float32 as TensorFlow's kernel computes them."""
    scale = np.float32(in_size) / np.float32(out_size)
    coord = (np.arange(start, stop, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(coord)
    low = np.maximum(floor, 0).astype(np.intp)
    high = np.minimum(np.ceil(coord), in_size - 1).astype(np.intp)
    return low, high, coord - floor


def upsample_window(small: np.ndarray, box: Box, height: int, width: int) -> np.ndarray:
    """The part `box` of `small` (h×w×C) resized bilinearly to height×width, without the rest."""
    y0, y1, x0, x1 = box
    top, bottom, wy = _bilinear_axis(y0, y1, height, small.shape[0])
    left, right, wx = _bilinear_axis(x0, x1, width, small.shape[1])
    # Only the small rows and columns this window reaches (a few dozen of each).
    row0, col0 = int(top.min()), int(left.min())
    part = small[row0 : int(bottom.max()) + 1, col0 : int(right.max()) + 1]
    # The kernel's order of operations: along x within each small row, then along y. Interpolating
    # those few rows first and gathering the full-size rows after costs half the work of the reverse.
    near, far = part[:, left - col0], part[:, right - col0]
    rows = near + (far - near) * wx[None, :, None]
    upper, lower = rows[top - row0], rows[bottom - row0]
    return upper + (lower - upper) * wy[:, None, None]
