"""Images in, images out: the model that `mlflow models serve` runs for the registry's versions.

A request carries the photo's own file, PNG or JPEG, base64 in the JSON body, in the
`image` column of MLflow's DataFrame formats:

    {"dataframe_records": [{"image": "<base64 of photo.jpg>"}]}

and the answer carries the enhanced photo in the same encoding (PNG in, PNG out; JPEG in,
JPEG out at quality 95), base64 as well:

    {"predictions": [{"image": "<base64 of the enhanced JPEG>"}]}

Both directions are MLflow's own: the signature types the column `binary`, so the scoring
server base64-decodes it before `predict` sees bytes, and its JSON encoder base64-encodes
the bytes `predict` returns (MIME-style, a newline every 76 characters, which every
base64 decoder skips). A body is about 4/3 of the photo's file size; the float-tensor
JSON this replaces was ten times that and twenty times for the answer.

Photos go through `src.infer.photos` exactly as `python -m src.enhance` reads and writes
them (EXIF orientation, 16-bit PNG, grayscale, alpha, ICC profile), and through the fast
path and `src.infer.photo_tiles.PhotoEnhancer`, the tiler `src.enhance` runs, so the server
answers the same pixels as the command line for a photo of any size (Zero-DCE++ included),
in memory bounded by the tile and the `--max-megapixels` default, with no Keras `predict`
(and none of its per-call progress bars).

A request that is not an image is the client's mistake: an HTTP 400 whose message is one
line naming the problem, never a stack trace.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import BAD_REQUEST
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types import ColSpec, Schema

from src.errors import PipelineError
from src.infer.photo_tiles import PhotoEnhancer
from src.infer.serving_payload import IMAGE_COLUMN, suffix_of
from src.infer.tiling import DEFAULT_MARGIN, DEFAULT_TILE

if TYPE_CHECKING:  # TensorFlow: imported once a model is loaded (`ZeroDCEImages.load_context`)
    from src.infer.enhancer import Enhancer

KERAS_ARTIFACT = "keras_model"  # the `.keras` file inside the logged model, by its artifact key


def image_signature() -> ModelSignature:
    """One `binary` column in and out: the type that makes MLflow base64 both ways."""
    column = Schema([ColSpec("binary", IMAGE_COLUMN)])
    return ModelSignature(inputs=column, outputs=column)


class BadImage(MlflowException):
    """A request the model cannot enhance: HTTP 400 with exactly this one-line message.

    MLflow's scoring server rewrites the message of any MlflowException that `predict`
    raises into "Failed to predict data '<the whole input DataFrame>'. Error: ...", which
    for an upload is a screenful of bytes; the message here ignores that rewrite.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=BAD_REQUEST)
        self._line = message

    @property
    def message(self) -> str:
        return self._line

    @message.setter
    def message(self, _rewritten: str) -> None:
        pass  # MlflowException.__init__ sets it first, the scoring server later; keep the line


def as_file_bytes(value: object) -> bytes:
    """The image file in one request cell, whichever way MLflow handed it over.

    `dataframe_records` and `dataframe_split` arrive base64-decoded (the signature says
    `binary`); the `inputs` format and `mlflow models predict` skip that step and pass the
    base64 text through, as str or bytes. No PNG or JPEG file starts with base64's
    alphabet, so decoding whatever is not already an image is unambiguous.
    """
    if isinstance(value, np.bytes_ | bytearray | memoryview):
        value = bytes(value)
    if isinstance(value, str):
        value = value.encode("ascii", errors="replace")
    if isinstance(value, list | np.ndarray):
        raise PipelineError(
            "got an array, not an image file: this model takes PNG or JPEG files, base64 in the JSON "
            "(float tensors: `src.infer.enhance.load_model` gives the Keras network)"
        )
    if not isinstance(value, bytes):
        raise PipelineError(f"expected a PNG or JPEG file, base64 in the JSON, got {type(value).__name__}")
    if suffix_of(value) is None:
        try:
            decoded = base64.b64decode(value, validate=False)
        except (binascii.Error, ValueError):
            decoded = b""
        if suffix_of(decoded) is not None:
            return decoded
    return value


def serving_photos(enhancer: Enhancer) -> PhotoEnhancer:
    """The tiler `python -m src.enhance` uses with its defaults, the margin raised to the
    model's receptive radius (a client cannot pass `--margin`), so tiles never change a pixel."""
    return PhotoEnhancer(enhancer, DEFAULT_TILE, max(DEFAULT_MARGIN, enhancer.receptive_radius))


def enhance_file(photos: PhotoEnhancer, data: bytes, label: str = "image") -> bytes:
    """A PNG or JPEG file's bytes → the enhanced photo's file in the same encoding.

    The bytes pass through a private temporary folder so that `src.infer.photos` reads
    and writes them with every decision it makes for `src.enhance` (its 16-bit PNG
    reader opens the file twice; its writers keep ICC profile and EXIF); that costs about
    a millisecond, against some 300 ms of network for a 600×400 photo on 2 cores. Errors
    are one PipelineError line that names the image by `label`, not by the temporary file.
    """
    from src.infer.photo_writing import write_encoded
    from src.infer.photos import read_photo

    suffix = suffix_of(data)
    if suffix is None:
        raise PipelineError(f"{label}: not a PNG or JPEG file ({_first_bytes(data)})")
    with tempfile.TemporaryDirectory(prefix="zero-dce-serve-") as folder:
        source, target = Path(folder) / f"in{suffix}", Path(folder) / f"out{suffix}"
        source.write_bytes(data)
        try:
            photo = read_photo(source)
        except PipelineError as err:
            raise PipelineError(str(err).replace(str(source), label)) from None
        values = photos(photo)
        photo.release()  # as in src.enhance: input pixels need not outlive the encoded output
        write_encoded(target, photo, values)
        return target.read_bytes()


def _first_bytes(data: bytes) -> str:
    return f"it starts with {data[:8]!r}" if data else "it is empty"


class ZeroDCEImages(PythonModel):
    """The pyfunc: `.keras` artifact → the fast path, built once per server process."""

    def load_context(self, context: PythonModelContext) -> None:
        from src.infer.enhancer import Enhancer  # TensorFlow: only once a model is really loaded
        from src.model.loading import load_keras_model

        self.keras_model = load_keras_model(Path(context.artifacts[KERAS_ARTIFACT]))
        self.photos = serving_photos(Enhancer(self.keras_model))

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """One enhanced image file per row of the `image` column, in the row's own encoding."""
        if isinstance(model_input, pd.DataFrame) and IMAGE_COLUMN in model_input.columns:
            cells = list(model_input[IMAGE_COLUMN])
        else:
            raise BadImage(
                f"expected an {IMAGE_COLUMN!r} column of PNG or JPEG files, base64 in the JSON, e.g. "
                f'{{"dataframe_records": [{{"{IMAGE_COLUMN}": "<base64>"}}]}}'
            )
        answers = []
        for row, cell in enumerate(cells):
            label = IMAGE_COLUMN if len(cells) == 1 else f"{IMAGE_COLUMN} {row}"
            try:
                answers.append(enhance_file(self.photos, as_file_bytes(cell), label))
            except PipelineError as err:
                raise BadImage(str(err)) from None
        return pd.DataFrame({IMAGE_COLUMN: pd.Series(answers, dtype=object)})
