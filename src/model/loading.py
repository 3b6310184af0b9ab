"""Loading saved models with errors a user can act on."""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras

from src.errors import PipelineError, first_line


def load_keras_model(path: Path) -> keras.Model:
    """Load a `.keras` file; a missing or broken file is one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: model file not found")
    if not zipfile.is_zipfile(path):
        raise PipelineError(f"{path}: not a .keras model (a .keras file is a zip archive)")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as err:  # Keras raises a zoo of types for a broken archive
        raise PipelineError(f"{path}: cannot load model ({type(err).__name__}: {first_line(err)})") from None
