"""What one benchmark run measures: the settings, the training images and the list of jobs."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from src.config import load_params
from src.errors import PipelineError

VARIANTS = ("zero_dce", "zero_dce_pp")
SIZES = ((600, 400), (1200, 900))  # width × height


@dataclasses.dataclass(frozen=True)
class Settings:
    crop_size: int
    batch_size: int
    train_images: int
    warmup_epochs: int
    timed_epochs: int
    inference_runs: int
    scale_factor: int


def training_paths(images: list[Path], split: Path, count: int) -> list[str]:
    """Real low-light training images: given files/folders, else the train split's."""
    paths: list[str] = []
    if images:  # PNG only: the reference recipe decodes with decode_png
        for item in images:
            if item.is_dir():
                paths += sorted(str(p) for p in item.iterdir() if p.suffix.lower() == ".png")
            elif item.is_file():
                paths.append(str(item))
            else:
                raise PipelineError(f"{item}: no such file or folder")
    else:
        from src.data.split import read_split  # lazy: pandas, which --help need not wait for

        csv = split / "train.csv"
        if not csv.is_file():
            raise PipelineError(f"{csv}: no train split (run `dvc repro split` first, or pass --images DIR)")
        paths = read_split(csv)["low"].tolist()
    return paths[:count] if count > 0 else paths


def plan(args: argparse.Namespace, settings: Settings, paths: list[str]) -> list[dict]:
    common = {"params": str(args.params)}
    shipped = load_params(args.params).denoiser.kind  # tv | none
    # Every fused measurement twice where the params ship a denoiser: with it, and the curves alone.
    denoisers = [shipped] if shipped == "none" else [shipped, "none"]
    loop = {"paths": paths, "warmup_epochs": settings.warmup_epochs, "timed_epochs": settings.timed_epochs}
    reference = {**common, **loop, "kind": "reference_train", "variant": "reference", "precision": "float32"}
    jobs = [{**reference, "repeat": n + 1} for n in range(args.reference_repeats)]
    jobs += [
        {**common, **loop, "kind": "train", "variant": v, "precision": p}
        for v in args.variants
        for p in args.precisions
    ]
    infer = {"runs": settings.inference_runs}
    jobs += [
        {
            **common,
            **infer,
            "kind": "inference",
            "variant": v,
            "precision": "float32",
            "path": path,
            "denoiser": shipped,
        }
        for v in args.variants
        for path in ("keras", "traced")
    ]
    jobs += [
        {**common, **infer, "kind": "inference", "variant": v, "precision": p, "path": "fused", "denoiser": d}
        for v in args.variants
        for p in args.precisions
        for d in denoisers
    ]
    return jobs
