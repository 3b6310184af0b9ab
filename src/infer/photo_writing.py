"""Enhanced photos out: each in its input's format, size, bit depth and colour type, atomically.

The output is encoded tile by tile into a preallocated integer array (`new_output`,
`encode_into`), so no float copy of the whole photo exists. JPEG and lossy WebP are written at
quality 95 with the input's ICC profile and EXIF (orientation reset); PNG, TIFF and lossless WebP
losslessly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from src.errors import PipelineError
from src.files import atomic_path, sync
from src.infer.photos import JPEG_QUALITY, LUMA, Photo
from src.infer.png16 import png16_chunks


def new_output(photo: Photo) -> np.ndarray:
    """The integer array the enhanced photo is written from, alpha already in place: tiles are
    encoded into it (`encode_into`), so no float copy of the whole output ever exists."""
    height, width = photo.pixels.shape[:2]
    channels = (1 if photo.kind == "gray" else 3) + (photo.alpha is not None)
    shape = (height, width) if channels == 1 else (height, width, channels)
    values = np.empty(shape, np.uint16 if photo.bits == 16 else np.uint8)
    if photo.alpha is not None:
        values[..., -1] = photo.alpha
    return values


def encode_into(
    photo: Photo, values: np.ndarray, box: tuple[int, int, int, int], enhanced: np.ndarray
) -> None:
    """Store enhanced float RGB (HxWx3 in [0, 1]) for `box` = (y0, y1, x0, x1) of `values`:
    luma for a grayscale photo, clipped, rounded and in the photo's bit depth."""
    y0, y1, x0, x1 = box
    colour = enhanced @ LUMA if photo.kind == "gray" else np.array(enhanced, np.float32)
    np.clip(colour, 0.0, 1.0, out=colour)  # in place: one float copy of the tile at most
    colour *= np.float32(photo.full_scale)
    np.rint(colour, out=colour)
    target = values[y0:y1, x0:x1]
    if values.ndim == 3 and values.shape[2] in (2, 4):  # alpha last, not ours to change
        target = target[..., 0] if photo.kind == "gray" else target[..., :3]
    target[...] = colour  # exact: integral values within the type's range


def write_encoded(path: Path, photo: Photo, values: np.ndarray) -> None:
    """Write `new_output`-shaped integer pixels in the input's format, atomically: an
    interrupted or failed write leaves no file (and an existing one as it was)."""
    with atomic_path(path) as tmp:
        if values.dtype == np.uint16 and values.ndim == 3:
            _write_rgb16(tmp, values, photo.format)
        else:
            _write_pillow(tmp, values, photo)


def _write_pillow(tmp: Path, values: np.ndarray, photo: Photo) -> None:
    image = Image.fromarray(values)
    options: dict[str, object] = {}
    if photo.icc_profile:
        options["icc_profile"] = photo.icc_profile
    if photo.format in ("JPEG", "WEBP"):
        options.update({"lossless": True} if photo.lossless else {"quality": JPEG_QUALITY})
        if photo.exif:
            options["exif"] = photo.exif
    elif photo.format == "TIFF":
        options["compression"] = "tiff_deflate"
    with open(tmp, "xb") as handle:
        image.save(handle, format=photo.format, **options)
        sync(handle)


def _write_rgb16(tmp: Path, values: np.ndarray, fmt: str) -> None:
    """16-bit RGB(A), which Pillow cannot write: tifffile for TIFF, a small PNG encoder for PNG."""
    if fmt == "TIFF":
        tifffile.imwrite(tmp, values, photometric="rgb", compression="zlib", extrasamples=_extra(values))
        return
    if fmt != "PNG":
        raise PipelineError(f"{tmp}: 16-bit colour cannot be written as {fmt}")
    with open(tmp, "xb") as handle:
        for chunk in png16_chunks(values):
            handle.write(chunk)
        sync(handle)


def _extra(values: np.ndarray) -> tuple[int, ...] | None:
    return (2,) if values.shape[2] == 4 else None  # 2 = unassociated alpha
