"""A 16-bit RGB(A) PNG encoder: Pillow writes PNG only at 8 bits per colour channel.

Streaming (Paeth-filtered rows, zlib), band by band, so a large photo never needs its filtered
copy or all of its compressed data in memory. Grayscale 16-bit PNG needs none of it: Pillow
writes that itself.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

import numpy as np


def png16_chunks(values: np.ndarray, rows_per_chunk: int = 64) -> Iterator[bytes]:
    """A 16-bit RGB or RGBA PNG as byte chunks; rows are Paeth-filtered, as photos compress best that way.

    Generated band by band (big-endian copy, filter, compress), so that a large photo never
    needs its filtered copy, nor all of its compressed data, in memory at once.
    """
    height, width, channels = values.shape
    color_type = {3: 2, 4: 6}[channels]
    bpp = 2 * channels
    compressor = zlib.compressobj(6)
    yield b"\x89PNG\r\n\x1a\n"
    yield _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0))
    above = np.zeros(width * bpp, np.uint8)
    for start in range(0, height, rows_per_chunk):
        rows = (
            values[start : start + rows_per_chunk].astype(">u2").reshape(-1, width * channels).view(np.uint8)
        )
        band = _paeth_filter(rows, above, bpp)
        above = rows[-1]
        data = compressor.compress(
            np.concatenate([np.full((len(band), 1), 4, np.uint8), band], axis=1).tobytes()
        )
        if data:
            yield _chunk(b"IDAT", data)
    yield _chunk(b"IDAT", compressor.flush())
    yield _chunk(b"IEND", b"")


def _paeth_filter(band: np.ndarray, above: np.ndarray, bpp: int) -> np.ndarray:
    """PNG filter type 4 for a band of rows, given the unfiltered row above it."""
    x = band.astype(np.int16)
    up = np.vstack([above[None].astype(np.int16), x[:-1]])
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    up_left = np.zeros_like(x)
    up_left[:, bpp:] = up[:, :-bpp]
    estimate = left + up - up_left
    pa, pb, pc = np.abs(estimate - left), np.abs(estimate - up), np.abs(estimate - up_left)
    predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
    return ((x - predictor) & 0xFF).astype(np.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )
