"""The formats Pillow alone does not fully handle: 16-bit RGB PNG and TIFF, a TIFF it cannot
identify, a WebP's lossless flag, and whole-photo arrays decoded band by band.

Each reads with a maintained decoder (Pillow's own PNG decoder, tifffile) or, for the WebP flag,
the RIFF chunk headers, which Pillow does not report.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from src.errors import PipelineError

BAND_ROWS = 256  # rows per band when a whole photo is decoded, averaged or encoded piecewise


def tiff_problem(path: Path) -> str:
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            dtype, samples = np.dtype(page.dtype), int(page.samplesperpixel)
    except Exception:  # tifffile raises many types for a file that is not a TIFF at all
        return f"{path}: not a readable image file"
    wanted = "(8- or 16-bit RGB or grayscale)"
    bits = dtype.itemsize * 8
    if dtype.kind in "fc":
        return (
            f"{path}: {bits}-bit {'float' if dtype.kind == 'f' else 'complex'} TIFF is not supported {wanted}"
        )
    kind = {"u": "unsigned integer", "i": "signed integer"}.get(dtype.kind, dtype.name)
    return f"{path}: {bits}-bit {kind} TIFF ({samples} samples per pixel) is not supported {wanted}"


def banded_array(image: Image.Image) -> np.ndarray:
    """`np.asarray(image)`, band by band into one array: Pillow's `tobytes()` behind `asarray`
    gathers the whole image in chunks and then joins them, two transient copies of it."""
    width, height = image.size
    if height <= BAND_ROWS:
        return np.array(image)
    first = np.asarray(image.crop((0, 0, width, BAND_ROWS)))
    values = np.empty((height, *first.shape[1:]), first.dtype)
    values[:BAND_ROWS] = first
    for top in range(BAND_ROWS, height, BAND_ROWS):
        values[top : top + BAND_ROWS] = np.asarray(image.crop((0, top, width, min(top + BAND_ROWS, height))))
    return values


def read_png16(path: Path, rawmode: str) -> np.ndarray:
    """Both bytes of a 16-bit RGB(A) PNG, which Pillow would cut to the high byte.

    Pillow's decoder un-filters the rows and then unpacks one byte per sample;
    decoding once as big-endian (high bytes) and once as little-endian (low
    bytes) recovers the full values with Pillow's own, tested PNG code.
    """
    values: np.ndarray | None = None
    for order in ("B", "L"):
        with Image.open(path) as again:
            tile = again.tile[0]
            again.tile = [tile._replace(args=rawmode[:-1] + order)]
            again.load()
            half = banded_array(again)
        if values is None:  # in place from here: one 16-bit array, never three
            values = half.astype(np.uint16)
            values <<= 8
        else:
            values |= half
        del half
    assert values is not None
    return values


def tiff_bits(image: Image.Image) -> int:
    bits = image.tag_v2.get(258, (8,))
    return int(bits[0] if isinstance(bits, tuple) else bits)


def read_tiff16(path: Path) -> np.ndarray:
    values = tifffile.imread(path, key=0)
    if values.ndim != 3 or values.shape[2] not in (3, 4) or values.dtype != np.uint16:
        raise PipelineError(f"{path}: unsupported 16-bit TIFF layout {values.shape} {values.dtype}")
    return values


def webp_is_lossless(path: Path) -> bool:
    """Whether a WebP holds a lossless (VP8L) bitstream, which Pillow does not report.

    RIFF chunks follow the 12-byte header; an extended file (VP8X) lists metadata chunks
    first, so they are skipped until the image's own chunk.
    """
    with open(path, "rb") as handle:
        handle.seek(12)
        while len(header := handle.read(8)) == 8:
            fourcc, size = header[:4], struct.unpack("<I", header[4:])[0]
            if fourcc in (b"VP8L", b"VP8 ", b"ALPH"):  # ALPH comes with a lossy VP8 image
                return fourcc == b"VP8L"
            handle.seek(size + (size & 1), 1)
    return False
