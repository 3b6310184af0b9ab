"""Users' photos in, enhanced photos out, each in its own format, size, bit depth and colour type.

`src.data.images` reads the LOL dataset (8-bit RGB PNG) and nothing else; a command that
enhances whatever a user points it at needs more: grayscale, alpha, 16 bits,
palette images, EXIF orientation. Decisions made here:

- **Orientation**: the EXIF orientation is applied, so the output is upright and has
  the size a viewer shows for the input; the written file carries no rotation.
- **Grayscale** is replicated to RGB for the network (trained on colour) and written
  back as grayscale (ITU-R 601 luma, as Pillow's own `convert("L")`): a grayscale
  file stays a grayscale file instead of gaining a faint colour cast.
- **Alpha** is passed through untouched; only the colour is enhanced.
- **16 bits** per channel stay 16 bits: the network works in float either way, so
  quantising a 16-bit photo to 8 bits would throw away precision for nothing.
  Pillow decodes 16-bit RGB PNG and TIFF only to 8 bits, so those two cases have
  their own paths (Pillow's own PNG decoder read twice for the two bytes; tifffile).
- **Palette, CMYK, YCbCr, bilevel** images are converted to RGB (or RGBA, or gray)
  and written as such: enhanced colours do not fit the original palette or ink set.
- JPEG is written at quality 95 with the input's ICC profile and EXIF (orientation
  reset); PNG and TIFF losslessly.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tifffile
from PIL import Image

from src.data.images import image_errors
from src.errors import PipelineError
from src.files import atomic_path, sync

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
JPEG_QUALITY = 95
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, the weights of Pillow's convert("L")
EXIF_ORIENTATION = 0x0112

Kind = Literal["rgb", "gray"]


@dataclass
class Photo:
    """A decoded photo: `rgb` float32 HxWx3 in [0, 1] plus what is needed to write it back alike."""

    rgb: np.ndarray
    kind: Kind
    bits: int  # 8 or 16 per channel
    format: str  # Pillow format name of the file's extension: PNG, JPEG, BMP, TIFF
    alpha: np.ndarray | None = None  # HxW, the file's own dtype (uint8 or uint16), untouched
    icc_profile: bytes | None = None
    exif: bytes | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as Pillow reports sizes."""
        return self.rgb.shape[1], self.rgb.shape[0]


def format_of(path: Path) -> str | None:
    """The output format for a file name, or None when the extension is not an image we handle."""
    return FORMATS.get(path.suffix.lower())


def read_photo(path: Path) -> Photo:
    """Decode any supported image file; every failure is one PipelineError line naming the file."""
    fmt = format_of(path)
    if fmt is None:
        raise PipelineError(f"{path}: unsupported file type {path.suffix or '(none)'!r}")
    with image_errors(path, extra=(struct.error, zlib.error)), Image.open(path) as image:
        return _decode(path, image, fmt)


def _decode(path: Path, image: Image.Image, fmt: str) -> Photo:
    rawmode = image.tile[0].args if image.tile else None  # before getexif(), which may decode a PNG
    exif = image.getexif()
    orientation = int(exif.get(EXIF_ORIENTATION, 1) or 1)
    meta = {"icc_profile": image.info.get("icc_profile"), "exif": _exif_upright(exif)}
    pixels, kind, bits, alpha = _pixels(path, image, rawmode)
    pixels = orient(pixels, orientation)
    alpha = orient(alpha, orientation) if alpha is not None else None
    unit = pixels.astype(np.float32)
    unit /= np.float32(65535 if bits == 16 else 255)  # in place: a 12 MP photo is 144 MB per float copy
    rgb = np.repeat(unit[..., None], 3, axis=2) if kind == "gray" else unit
    return Photo(np.ascontiguousarray(rgb), kind, bits, fmt, alpha, **meta)


def _exif_upright(exif: Image.Exif) -> bytes | None:
    """The EXIF block to write back: the pixels are rotated upright, so the tag says so."""
    if not exif:
        return None
    if EXIF_ORIENTATION in exif:
        exif[EXIF_ORIENTATION] = 1
    return exif.tobytes()


def _pixels(
    path: Path, image: Image.Image, rawmode: object
) -> tuple[np.ndarray, Kind, int, np.ndarray | None]:
    """(colour HxW or HxWx3, kind, bits, alpha) in the file's own integer type."""
    if image.format == "PNG" and rawmode in ("RGB;16B", "RGBA;16B"):
        return _split_alpha(_png16(path, rawmode), "rgb", 16)
    if image.format == "TIFF" and image.mode in ("RGB", "RGBA") and _tiff_bits(image) == 16:
        return _split_alpha(_tiff16(path), "rgb", 16)
    image.load()
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image)
        if values.dtype.kind == "i" and (values.min() < 0 or values.max() > 65535):
            raise PipelineError(f"{path}: 32-bit integer pixels outside 0..65535 are not supported")
        return values.astype(np.uint16), "gray", 16, None
    if mode == "F":
        raise PipelineError(f"{path}: floating-point images are not supported")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("1", "L"):
        image = image.convert("L")
    elif mode in ("LA", "La", "PA"):
        image = image.convert("LA")
    elif mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in mode else "RGB")
    values = np.asarray(image)
    if image.mode == "L":
        return values, "gray", 8, None
    if image.mode == "LA":
        return values[..., 0], "gray", 8, values[..., 1].copy()
    return _split_alpha(values, "rgb", 8)


def _split_alpha(
    values: np.ndarray, kind: Kind, bits: int
) -> tuple[np.ndarray, Kind, int, np.ndarray | None]:
    if values.shape[-1] == 4:
        return values[..., :3], kind, bits, values[..., 3].copy()
    return values, kind, bits, None


def _png16(path: Path, rawmode: str) -> np.ndarray:
    """Both bytes of a 16-bit RGB(A) PNG, which Pillow would cut to the high byte.

    Pillow's decoder un-filters the rows and then unpacks one byte per sample;
    decoding once as big-endian (high bytes) and once as little-endian (low
    bytes) recovers the full values with Pillow's own, tested PNG code.
    """
    halves = []
    for order in ("B", "L"):
        with Image.open(path) as again:
            tile = again.tile[0]
            again.tile = [tile._replace(args=rawmode[:-1] + order)]
            again.load()
            halves.append(np.asarray(again).astype(np.uint16))
    high, low = halves
    return (high << 8) | low


def _tiff_bits(image: Image.Image) -> int:
    bits = image.tag_v2.get(258, (8,))
    return int(bits[0] if isinstance(bits, tuple) else bits)


def _tiff16(path: Path) -> np.ndarray:
    values = tifffile.imread(path, key=0)
    if values.ndim != 3 or values.shape[2] not in (3, 4) or values.dtype != np.uint16:
        raise PipelineError(f"{path}: unsupported 16-bit TIFF layout {values.shape} {values.dtype}")
    return values


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an HxW[xC] array, as `ImageOps.exif_transpose` does."""
    swap = (1, 0, *range(2, pixels.ndim))
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(swap),
        6: lambda a: a[::-1].transpose(swap),
        7: lambda a: a[::-1, ::-1].transpose(swap),
        8: lambda a: a[:, ::-1].transpose(swap),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(pixels)) if op else pixels


def encode(photo: Photo, enhanced: np.ndarray) -> np.ndarray:
    """The enhanced float RGB as the integer array to write: gray or RGB, alpha re-attached."""
    colour = enhanced @ LUMA if photo.kind == "gray" else np.array(enhanced, np.float32)
    np.clip(colour, 0.0, 1.0, out=colour)  # in place, one float copy at most
    colour *= np.float32(65535 if photo.bits == 16 else 255)
    np.rint(colour, out=colour)
    values = colour.astype(np.uint16 if photo.bits == 16 else np.uint8)
    if photo.alpha is None:
        return values
    alpha = photo.alpha.astype(values.dtype) if photo.alpha.dtype != values.dtype else photo.alpha
    if values.ndim == 2:
        return np.stack([values, alpha], axis=-1)
    return np.concatenate([values, alpha[..., None]], axis=-1)


def write_photo(path: Path, photo: Photo, enhanced: np.ndarray) -> None:
    """Write the enhanced pixels in the input's format and colour type, atomically."""
    values = encode(photo, enhanced)
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
    if photo.format == "JPEG":
        options.update(quality=JPEG_QUALITY)
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


def png16_chunks(values: np.ndarray, rows_per_chunk: int = 256) -> list[bytes]:
    """A 16-bit RGB or RGBA PNG as byte chunks; rows are Paeth-filtered, as photos compress best that way.

    Written in bands of rows so that a 12-megapixel photo does not need its filtered
    copy in memory at once.
    """
    height, width, channels = values.shape
    color_type = {3: 2, 4: 6}[channels]
    rows = values.astype(">u2").reshape(height, width * channels).view(np.uint8)
    bpp = 2 * channels
    compressor = zlib.compressobj(6)
    chunks = [
        b"\x89PNG\r\n\x1a\n",
        _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)),
    ]
    for start in range(0, height, rows_per_chunk):
        above = rows[start - 1] if start else np.zeros_like(rows[0])
        band = _paeth_filter(rows[start : start + rows_per_chunk], above, bpp)
        data = compressor.compress(
            np.concatenate([np.full((len(band), 1), 4, np.uint8), band], axis=1).tobytes()
        )
        if data:
            chunks.append(_chunk(b"IDAT", data))
    chunks.append(_chunk(b"IDAT", compressor.flush()))
    chunks.append(_chunk(b"IEND", b""))
    return chunks


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
