"""The model a training run logs, and the Keras network back out of any model this project logged.

Every run logs one MLflow model named `model` (promotion registers it as a version):
a pyfunc written as models-from-code (`src/infer/served_model.py`), which serves PNG
and JPEG files in and out (`src.infer.image_model`), around the trained network as a
`.keras` artifact. Models-from-code rather than a pickled PythonModel: the served code
is plain source in the model folder, with the `src` package beside it as `code_paths`,
so `mlflow models serve --env-manager local` runs it from any directory and any Python
that has the pinned packages, and it is readable in the artifact browser.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
from mlflow.models import Model

import src
from src.errors import PipelineError
from src.infer.image_model import KERAS_ARTIFACT, image_signature

if TYPE_CHECKING:
    import keras

SRC_PACKAGE = Path(src.__file__).resolve().parent
MODEL_CODE = SRC_PACKAGE / "infer" / "served_model.py"


@contextlib.contextmanager
def _no_artifact_bars() -> Iterator[None]:
    """MLflow draws a "Downloading artifacts" bar even for copying a local file into a model;
    in a training run's or a command's output it is noise. Its own switch, for this block."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def log_image_model(model: keras.Model, name: str, pip_requirements: list[str]) -> str:
    """Log `model` to the active run as the images-in, images-out pyfunc; returns its `models:/` URI.

    No `input_example`: MLflow would load and run the model on it while logging (the
    fast path's build and XLA compilation in every training run) to check what the
    signature already says; its warning about the missing example is silenced.
    """
    with (
        tempfile.TemporaryDirectory(prefix="zero-dce-log-") as folder,
        _no_artifact_bars(),
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", message=".*An input example was not provided", category=UserWarning)
        keras_file = Path(folder) / "model.keras"
        model.save(keras_file)
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts={KERAS_ARTIFACT: str(keras_file)},
            code_paths=[str(SRC_PACKAGE)],
            signature=image_signature(),
            pip_requirements=pip_requirements,
        )
    return info.model_uri


def load_keras_model_from_mlflow(uri: str) -> keras.Model:
    """The Keras network of a `models:/`, `runs:/` URI or a local MLflow model folder.

    Reads the `.keras` artifact of this project's pyfunc directly (no models-from-code
    run, no fast-path build: the caller wants the network). MLflow and Keras errors
    propagate for the caller to word.
    """
    from src.model.loading import load_keras_model  # lazy: TensorFlow only once a model is loaded

    with tempfile.TemporaryDirectory(prefix="zero-dce-model-") as folder, _no_artifact_bars():
        local = Path(uri)
        if not local.is_dir():
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder))
        flavors = Model.load(str(local / "MLmodel")).flavors
        artifacts = flavors.get("python_function", {}).get("artifacts", {})
        if KERAS_ARTIFACT not in artifacts:
            raise PipelineError(
                "not this project's image model "
                f"(no {KERAS_ARTIFACT!r} artifact; flavours: {', '.join(flavors) or 'none'})"
            )
        return load_keras_model(local / artifacts[KERAS_ARTIFACT]["path"])
