"""Image I/O and the one place pixel values are scaled to [0, 1].

Every stage reads images through here so that the uint8 → float
conversion (and its range) is decided once: metrics, baselines and the model all
assume float images in [0, 1], and a stray uint8 array would otherwise wrap
around silently in a subtraction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from src.errors import PipelineError, first_line

# Float images a hair outside [0, 1] (rounding in a float32 graph) are clipped rather
# than rejected; anything further out is a bug upstream, not rounding.
FLOAT_TOLERANCE = 1e-5

# Pillow modes that convert to 8-bit RGB without losing meaning; 16-bit and float
# modes would be truncated by `convert("RGB")`, so they are refused instead.
_CONVERTIBLE_MODES = {"RGB", "RGBA", "L", "LA", "P", "PA", "CMYK", "YCbCr", "1"}


def read_rgb(path: Path | str) -> np.ndarray:
    """Read an image as an HxWx3 uint8 array; an unreadable file is a one-line PipelineError.

    Decoding is forced inside the `with` so that a truncated PNG fails here, with
    its name, rather than later in whatever first touches the pixels.
    """
    path = Path(path)
    with image_errors(path), Image.open(path) as image:
        image.load()
        if image.mode not in _CONVERTIBLE_MODES:
            raise PipelineError(f"{path}: unsupported image mode {image.mode!r} (expected 8-bit RGB)")
        rgb = image.convert("RGB") if image.mode != "RGB" else image
        return np.asarray(rgb, dtype=np.uint8).copy()


@contextlib.contextmanager
def image_errors(path: Path, extra: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Turn whatever Pillow raises for a bad file into one PipelineError line naming it.

    Shared by every image reader, so the same broken file reads the same everywhere.
    `extra` adds decoder errors a caller can meet (struct.error, zlib.error).
    """
    try:
        yield
    except PipelineError:
        raise
    except FileNotFoundError:
        raise PipelineError(f"{path}: image not found") from None
    except IsADirectoryError:
        raise PipelineError(f"{path}: is a folder, not an image") from None
    except UnidentifiedImageError:
        raise PipelineError(f"{path}: not a readable image file") from None
    except Image.DecompressionBombError as err:
        raise PipelineError(f"{path}: refused, too many pixels ({first_line(err)})") from None
    except (OSError, SyntaxError, ValueError, *extra) as err:
        raise PipelineError(f"{path}: corrupt image ({first_line(err)})") from None


def to_unit_float(img: np.ndarray, dtype: type[np.floating] = np.float32) -> np.ndarray:
    """Scale an image to floats in [0, 1] (float32 unless `dtype` says) by its dtype's full range.

    uint8 is divided by 255 and uint16 by 65535; floats are assumed to be in
    [0, 1] already and are checked, because rescaling them by their own min/max
    would quietly change what a metric measures. Values a hair outside (within
    FLOAT_TOLERANCE) are clipped. Raises ValueError (a caller's bug, not user
    input) for other dtypes, NaNs or out-of-range floats.
    """
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img.astype(dtype) / dtype(255)
    if img.dtype == np.uint16:
        return img.astype(dtype) / dtype(65535)
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"expected a uint8, uint16 or float image, got dtype {img.dtype}")
    _check_unit_range(img)
    return np.clip(img.astype(dtype), 0.0, 1.0)


def _check_unit_range(img: np.ndarray) -> None:
    if img.size == 0:
        return
    low, high = float(np.min(img)), float(np.max(img))
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("float image contains NaN or infinite values")
    if low < -FLOAT_TOLERANCE or high > 1.0 + FLOAT_TOLERANCE:
        raise ValueError(f"float image values must lie in [0, 1], found [{low:.6g}, {high:.6g}]")


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Round an image to uint8 (uint8 input is returned unchanged)."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img
    return np.round(to_unit_float(img) * 255.0).astype(np.uint8)
