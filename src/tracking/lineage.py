"""Dataset lineage: the splits a run used, as MLflow dataset inputs.

`mlflow.log_input` puts each split in the run's "Datasets used" panel with a digest and a
context (training / validation / evaluation), and MLflow links runs that share a dataset:
"which runs trained on this split of this LOL copy" becomes a click, not a tag search.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import mlflow
import mlflow.data

from src.data.split import read_split

# Split file → the context MLflow shows; test is scored later by the evaluate stage.
SPLIT_CONTEXTS = {"train": "training", "val": "validation", "test": "evaluation"}


def split_digest(data_version: str, csv: Path) -> str:
    """Data version (the LOL manifest) and the split file in one short id: either changing
    makes it a different dataset."""
    return f"{data_version[:8]}-{hashlib.sha256(csv.read_bytes()).hexdigest()[:7]}"


def log_split_inputs(split_dir: Path, data_version: str, split_version: str) -> None:
    """Log every split CSV of `split_dir` that exists as an input of the active run."""
    for name, context in SPLIT_CONTEXTS.items():
        csv = Path(split_dir) / f"{name}.csv"
        if not csv.is_file():
            continue
        with warnings.catch_warnings():
            # mlflow 3.17 registers its local-file source class twice and then warns that a
            # path "can be interpreted in multiple ways" (both ways are the same class).
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            dataset = mlflow.data.from_pandas(
                read_split(csv), source=str(csv), name=f"lol-{name}", digest=split_digest(data_version, csv)
            )
        tags = {"data_version": data_version, "split_version": split_version}
        mlflow.log_input(dataset, context=context, tags=tags)
