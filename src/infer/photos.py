"""Users' photos in, each in its own format, size, bit depth and colour type, for enhancement.

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
- **WebP** is read and written when Pillow has it (its wheels do): phones and the web
  produce WebP photos, and Pillow encodes it as well as JPEG. A lossless WebP stays
  lossless, a lossy one is written at the JPEG quality. **GIF** is not: a 256-colour
  palette cannot hold enhanced colours, and GIF files are mostly animations.
- **Animated** PNG and WebP are refused: the output would silently be the first frame.
  A multi-page TIFF gives its first page (cameras and scanners store previews after it).
- **Float TIFF** is refused with what it is (Pillow only says it cannot identify it):
  its values are not on a 0-1 scale the model knows.
- **Size**: Pillow's decompression-bomb guard warns from 89 MP and refuses from 179 MP,
  below real photos (100 MP cameras, 200 MP phones). It is off while a photo is read;
  `read_photo` applies its own limit instead (`DEFAULT_MAX_MEGAPIXELS`, from the header,
  before any pixel is decoded), so there is never a raw `DecompressionBombWarning`.
- **Memory**: pixels stay in the file's own integer type (3 bytes per pixel for 8-bit
  RGB) and become float32 one tile at a time (`Photo.unit_rgb`); a float copy of a
  100 MP photo would be 1.2 GB.

Writing them back is `src.infer.photo_writing`.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from src.data.images import image_errors
from src.errors import PipelineError
from src.infer.photo_formats import (
    BAND_ROWS,
    banded_array,
    read_png16,
    read_tiff16,
    tiff_bits,
    tiff_problem,
    webp_is_lossless,
)

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
if features.check("webp"):  # Pillow's wheels include libwebp; a source build may not
    FORMATS[".webp"] = "WEBP"
_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "BMP": "BMP", "TIFF": "TIFF", "WEBP": "WebP"}
_listed = list(dict.fromkeys(_NAMES[f] for f in FORMATS.values()))
SUPPORTED = ", ".join(_listed[:-1]) + " or " + _listed[-1]  # "PNG, JPEG, BMP, TIFF or WebP"
JPEG_QUALITY = 95
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, the weights of Pillow's convert("L")
EXIF_ORIENTATION = 0x0112
# 200 MP phones (16320x12240) fit; peak memory is then ~7 bytes a pixel plus the model's tiles
# (docs/photos-and-serving.md), i.e. under 3 GB.
DEFAULT_MAX_MEGAPIXELS = 250.0

Kind = Literal["rgb", "gray"]


class TooManyPixels(PipelineError):
    """A photo above the megapixel limit (the CLI adds how to raise it)."""


@dataclass
class Photo:
    """A decoded photo in its file's own integer type, plus what is needed to write it back alike."""

    pixels: np.ndarray  # HxW (gray) or HxWx3 (rgb), uint8 or uint16, upright
    kind: Kind
    bits: int  # 8 or 16 per channel
    format: str  # Pillow format name of the file's extension: PNG, JPEG, BMP, TIFF, WEBP
    alpha: np.ndarray | None = None  # HxW, the file's own dtype (uint8 or uint16), untouched
    icc_profile: bytes | None = None
    exif: bytes | None = None
    lossless: bool = False  # WebP only: the input was lossless, so the output is too

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as Pillow reports sizes."""
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def full_scale(self) -> int:
        return 65535 if self.bits == 16 else 255

    def unit_rgb(self, y0: int = 0, y1: int | None = None, x0: int = 0, x1: int | None = None) -> np.ndarray:
        """float32 HxWx3 in [0, 1] of rows y0:y1 and columns x0:x1: the one place pixels become
        floats, so a tiled caller holds one tile's worth (12 bytes a pixel) at a time."""
        unit = self.pixels[y0:y1, x0:x1].astype(np.float32)
        unit /= np.float32(self.full_scale)  # divided, not multiplied by 1/255: the values of before
        return np.repeat(unit[..., None], 3, axis=2) if self.kind == "gray" else unit

    @property
    def rgb(self) -> np.ndarray:
        """The whole photo as float32 HxWx3: 12 bytes a pixel, for small images only (serving,
        parity samples); `src.infer.photo_tiles` reads tiles with `unit_rgb` instead."""
        return self.unit_rgb()

    def mean(self) -> float:
        """Mean over pixels and channels in [0, 1], as the exposure gate measures brightness.

        Summed as exact integers band by band, so it needs no float copy of the photo (a
        grayscale photo replicated to RGB has its own mean)."""
        total = sum(
            int(self.pixels[top : top + BAND_ROWS].sum(dtype=np.uint64))
            for top in range(0, self.pixels.shape[0], BAND_ROWS)
        )
        return total / max(self.pixels.size, 1) / self.full_scale

    def release(self) -> None:
        """Drop the decoded pixels once the output holds everything: a 100 MP input need not
        sit in memory next to the encoder's own copy of the output."""
        # A new empty array, not `pixels[:0]`: a view would keep the whole decoded array alive.
        self.pixels = np.empty((0, *self.pixels.shape[1:]), self.pixels.dtype)
        self.alpha = None


def format_of(path: Path) -> str | None:
    """The output format for a file name, or None when the extension is not an image we handle."""
    return FORMATS.get(path.suffix.lower())


def unsupported(path: Path) -> str:
    """The one-line reason a file's type is not read."""
    what = f"{path.suffix[1:].upper()} files are" if path.suffix else "files without an extension are"
    return f"{path}: {what} not supported ({SUPPORTED})"


def read_photo(path: Path, max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS) -> Photo:
    """Decode any supported image file; every failure is one PipelineError line naming the file.

    `max_megapixels` (None: no limit) is checked on the header, before decoding.
    """
    fmt = format_of(path)
    if fmt is None:
        raise PipelineError(unsupported(path))
    with _own_pixel_limit(), image_errors(path, extra=(struct.error, zlib.error)):
        with _open(path, fmt) as image:
            _check_size(path, image, max_megapixels)
            _check_still(path, image)
            rawmode = image.tile[0].args if image.tile else None  # before getexif(), which may decode a PNG
            exif = image.getexif()
            orientation = int(exif.get(EXIF_ORIENTATION, 1) or 1)
            meta = {"icc_profile": image.info.get("icc_profile"), "exif": _exif_upright(exif)}
            pixels, kind, bits, alpha = _pixels(path, image, rawmode, fmt)
        # Closed: Pillow's own copy of the pixels is gone before orient() may make another.
        lossless = fmt == "WEBP" and webp_is_lossless(path)
    pixels = orient(pixels, orientation)
    alpha = orient(alpha, orientation) if alpha is not None else None
    return Photo(pixels, kind, bits, fmt, alpha, lossless=lossless, **meta)


@contextlib.contextmanager
def _own_pixel_limit() -> Iterator[None]:
    """Pillow's decompression-bomb guard off (see the module docstring: `_check_size` replaces it)."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _open(path: Path, fmt: str) -> Image.Image:
    try:
        return Image.open(path)
    except PermissionError:
        raise PipelineError(f"{path}: cannot read (permission denied)") from None
    except UnidentifiedImageError:
        if fmt == "TIFF":  # Pillow knows 8/16-bit TIFF only; say what this one is
            raise PipelineError(tiff_problem(path)) from None
        raise


def _check_still(path: Path, image: Image.Image) -> None:
    if image.format not in ("PNG", "WEBP"):  # a TIFF would count its pages by seeking through them
        return
    frames = int(getattr(image, "n_frames", 1) or 1)
    if frames > 1:
        raise PipelineError(
            f"{path}: animated {_NAMES[image.format]} ({frames} frames) is not supported, "
            "only still images (the output would be the first frame alone)"
        )


def _check_size(path: Path, image: Image.Image, max_megapixels: float | None) -> None:
    width, height = image.size
    if max_megapixels is not None and width * height > max_megapixels * 1e6:
        raise TooManyPixels(
            f"{path}: {width}x{height} px is {width * height / 1e6:.3g} megapixels, "
            f"above the limit of {max_megapixels:g}"
        )


def _exif_upright(exif: Image.Exif) -> bytes | None:
    """The EXIF block to write back: the pixels are rotated upright, so the tag says so."""
    if not exif:
        return None
    if EXIF_ORIENTATION in exif:
        exif[EXIF_ORIENTATION] = 1
    return exif.tobytes()


def _pixels(
    path: Path, image: Image.Image, rawmode: object, fmt: str
) -> tuple[np.ndarray, Kind, int, np.ndarray | None]:
    """(colour HxW or HxWx3, kind, bits, alpha) in the file's own integer type."""
    if image.format == "PNG" and rawmode in ("RGB;16B", "RGBA;16B"):
        return _split_alpha(read_png16(path, rawmode), "rgb", 16)
    if image.format == "TIFF" and image.mode in ("RGB", "RGBA") and tiff_bits(image) == 16:
        return _split_alpha(read_tiff16(path), "rgb", 16)
    image.load()
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = banded_array(image)
        if values.dtype.kind == "i" and (values.min() < 0 or values.max() > 65535):
            raise PipelineError(f"{path}: 32-bit integer pixels outside 0..65535 are not supported")
        return values.astype(np.uint16, copy=False), "gray", 16, None
    if mode == "F":
        raise PipelineError(
            f"{path}: 32-bit float {_NAMES[fmt]} is not supported (8- or 16-bit RGB or grayscale)"
        )
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("1", "L"):
        image = image.convert("L")
    elif mode in ("LA", "La", "PA"):
        image = image.convert("LA")
    elif mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in mode else "RGB")
    values = banded_array(image)
    if image.mode == "L":
        return values, "gray", 8, None
    if image.mode == "LA":
        return values[..., 0], "gray", 8, values[..., 1]
    return _split_alpha(values, "rgb", 8)


def _split_alpha(
    values: np.ndarray, kind: Kind, bits: int
) -> tuple[np.ndarray, Kind, int, np.ndarray | None]:
    # Views, not copies: colour and alpha share the decoded array rather than doubling it.
    if values.shape[-1] == 4:
        return values[..., :3], kind, bits, values[..., 3]
    return values, kind, bits, None


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
