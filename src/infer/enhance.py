"""Enhance users' photos with a trained model: `python -m src.enhance INPUT... --output DIR`.

INPUT is any mix of image files and folders (the images directly inside a folder,
by extension: PNG, JPEG, BMP, TIFF, WebP; other files there are listed as skipped).
The model comes from the registry (`models:/zero-dce@champion`, the default), a run
(`runs:/<run_id>/model`) or a local `.keras` file. Each output keeps its input's name,
size, format and colour type (see `src.infer.photos`). Photos are processed in
overlapping tiles and kept in their own 8- or 16-bit integers, so memory is a few bytes
per pixel plus one tile, at no cost in quality (see `src.infer.photo_tiles`); photos
above --max-megapixels are refused.

One bad file is one `error:` line and the others go on; the exit status is 0 only
when every input was enhanced and written. Outputs are written whole or not at all,
and existing ones are kept unless --overwrite.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from src.config import DEFAULT_PARAMS, PRECISIONS, load_params
from src.errors import PipelineError, cli_entry, first_line
from src.infer.photo_jobs import Job, check_output_folder, make_output_folder, plan
from src.infer.photos import DEFAULT_MAX_MEGAPIXELS, TooManyPixels
from src.infer.tiling import DEFAULT_MARGIN, DEFAULT_TILE, RECEPTIVE_RADIUS
from src.quiet_tensorflow import add_verbose_flag
from src.tracking import CHAMPION_ALIAS

if TYPE_CHECKING:  # Keras and TensorFlow load in seconds: only once a model is actually needed
    import keras
    from tqdm import tqdm

    from src.infer.photo_tiles import PhotoEnhancer

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # a scheme of 2+ letters, so C:\ stays a path


@dataclass
class Outcome:
    """What happened to every input: the exit status and the closing summary come from here."""

    written: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # files in input folders that are not images we read
    megapixels: float = 0.0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors


def default_model_uri(params_path: Path = DEFAULT_PARAMS) -> str:
    """`models:/<promote.model_name>@champion`, so renaming the registered model needs one edit."""
    name = "zero-dce"
    if Path(params_path).is_file():
        name = load_params(params_path).promote.model_name
    return f"models:/{name}@{CHAMPION_ALIAS}"


def load_model(spec: str) -> keras.Model:
    """A Keras model from a local `.keras` file or MLflow folder, or any MLflow model URI."""
    if _URI.match(spec) and not Path(spec).exists():
        model = _load_from_mlflow(spec)
    else:
        model = _load_local(Path(spec))
    if len(model.outputs) != 1:
        raise PipelineError(
            f"{spec}: expected the inference model (one output, the enhanced image), "
            f"got {len(model.outputs)} outputs"
        )
    return model


def _load_local(path: Path) -> keras.Model:
    from src.model.loading import load_keras_model  # lazy (as all TF/MLflow imports here): see above

    if path.is_dir() and (path / "MLmodel").is_file():
        return _load_from_mlflow(str(path))
    if path.suffix != ".keras":
        raise PipelineError(f"{path}: not a .keras file, an MLflow model folder or a models:/ or runs:/ URI")
    return load_keras_model(path)


def _load_from_mlflow(uri: str) -> keras.Model:
    # Lazy: MLflow takes seconds to import, and only models:/ and runs:/ URIs need it.
    import mlflow

    from src.tracking.logged_model import load_keras_model_from_mlflow

    store = mlflow.get_tracking_uri()  # MLflow's own resolution (see src.tracking)
    if store.startswith("sqlite:///") and uri.startswith(("models:/", "runs:/")):
        database = Path(store.removeprefix("sqlite:///"))
        if not database.is_file():  # MLflow would create an empty store here and then fail
            raise PipelineError(
                f"{uri}: no MLflow store at {database} (run from the project root, "
                "or set MLFLOW_TRACKING_URI, or pass a .keras file)"
            )
    try:
        return load_keras_model_from_mlflow(uri)  # the network inside the served pyfunc (or a Keras model)
    except Exception as err:  # MLflow and Keras raise many types; the user needs the message
        hint = " (promote a model first: python -m src.promote)" if "@" in uri else ""
        raise PipelineError(
            f"{uri}: cannot load the model from {mlflow.get_tracking_uri()} ({first_line(err)}){hint}"
        ) from None


def enhance_all(
    jobs: list[Job],
    model: keras.Model,
    overwrite: bool = False,
    tile: int = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
    precision: str = "float32",
    max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS,
) -> Outcome:
    """Enhance every job; a failing file is recorded and the loop goes on."""
    # Lazy: the fast path imports TensorFlow, which argument errors and --help must not wait for.
    import tensorflow as tf
    from tqdm import tqdm

    from src.infer.enhancer import Enhancer
    from src.infer.photo_tiles import PhotoEnhancer

    photos = PhotoEnhancer(Enhancer(model, precision), tile, margin)
    outcome = Outcome()
    start = time.perf_counter()
    with tqdm(jobs, desc="enhancing", unit="img", file=sys.stderr, dynamic_ncols=True) as bar:
        for job in bar:
            try:
                outcome.megapixels += _enhance_one(job, photos, overwrite, max_megapixels, bar)
                outcome.written.append(job.target)
            except (PipelineError, OSError) as err:
                line = str(err) if isinstance(err, PipelineError) else f"{job.source}: {first_line(err)}"
                outcome.errors.append(line)
                bar.write(f"error: {line}", file=sys.stderr)
            except (MemoryError, tf.errors.ResourceExhaustedError):
                line = f"{job.source}: out of memory (try a smaller --tile)"
                outcome.errors.append(line)
                bar.write(f"error: {line}", file=sys.stderr)
    outcome.seconds = time.perf_counter() - start
    return outcome


def _enhance_one(
    job: Job, photos: PhotoEnhancer, overwrite: bool, max_megapixels: float | None, bar: tqdm
) -> float:
    """Read, enhance in tiles, write; returns the megapixels done."""
    from src.infer.photo_writing import write_encoded  # lazy with the fast path, as above
    from src.infer.photos import read_photo

    if job.target.exists() and not overwrite:
        raise PipelineError(f"{job.source}: output {job.target} exists (use --overwrite to replace it)")
    try:
        photo = read_photo(job.source, max_megapixels)
    except TooManyPixels as err:
        raise PipelineError(f"{err} (--max-megapixels raises it)") from None
    width, height = photo.size
    tiles = photos.tiles(photo)
    radius = photos.enhancer.receptive_radius
    if tiles > 1 and photos.margin < radius:
        raise PipelineError(
            f"{job.source}: --margin {photos.margin} is below this model's receptive radius "
            f"({radius} px); tiles would differ from a whole-image pass"
        )
    done = 0

    def on_tile() -> None:
        nonlocal done
        done += 1
        bar.set_postfix_str(f"{job.source.name} tile {done}/{tiles}", refresh=True)

    values = photos(photo, on_tile)
    photo.release()  # the input's pixels need not coexist with the encoder's copy of the output
    try:
        write_encoded(job.target, photo, values)
    except (OSError, ValueError) as err:  # Pillow raises ValueError for what an encoder cannot store
        strerror = getattr(err, "strerror", None)
        raise PipelineError(f"{job.target}: cannot write ({strerror or first_line(err)})") from None
    return height * width / 1e6


def summary_line(outcome: Outcome, output_dir: Path) -> str:
    done = len(outcome.written)
    total = done + len(outcome.errors)
    rate = f"{outcome.seconds / outcome.megapixels:.2f} s/MP" if outcome.megapixels else "no pixels"
    failed = f"; {len(outcome.errors)} failed" if outcome.errors else ""
    skipped = f"; {len(outcome.skipped)} other files skipped" if outcome.skipped else ""
    return (
        f"enhanced {done} of {total} images into {output_dir} "
        f"({outcome.megapixels:.1f} MP in {outcome.seconds:.1f} s, {rate}){failed}{skipped}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m src.enhance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files and/or folders")
    parser.add_argument("--output", "-o", type=Path, required=True, help="folder for the enhanced images")
    parser.add_argument(
        "--model",
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model or a .keras file "
        "(default: models:/<promote.model_name>@champion)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    parser.add_argument(
        "--tile",
        type=int,
        default=DEFAULT_TILE,
        help=f"tile side in px; bounds memory (default {DEFAULT_TILE})",
    )
    parser.add_argument(
        "--margin",
        type=int,
        default=DEFAULT_MARGIN,
        help=f"context around each tile in px (default {DEFAULT_MARGIN})",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="mixed_bfloat16: convolutions in bfloat16, faster on CPUs with AVX512-BF16/AMX and GPUs",
    )
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=DEFAULT_MAX_MEGAPIXELS,
        help=f"refuse larger photos, before decoding them (default {DEFAULT_MAX_MEGAPIXELS:g}: 200 MP "
        "phones fit; memory is about 7 bytes a pixel plus ~1 GB)",
    )
    parser.add_argument(
        "--params", type=Path, default=DEFAULT_PARAMS, help="for the tracking URI and model name"
    )
    add_verbose_flag(parser)  # read by src.quiet_tensorflow before TensorFlow loads
    args = parser.parse_args(argv)
    if args.tile < 1:
        parser.error("--tile must be at least 1")
    if not args.max_megapixels > 0:
        parser.error("--max-megapixels must be above 0")
    if args.margin < RECEPTIVE_RADIUS:
        parser.error(f"--margin must be at least {RECEPTIVE_RADIUS} (the network's receptive radius)")
    return args


@cli_entry
def main(argv: list[str] | None = None) -> int:
    """Returns the exit status: 0 when every input was written, 1 otherwise."""
    args = parse_args(argv)
    check_output_folder(args.output)
    planned = plan(args.inputs, args.output)
    for line in planned.warnings:
        print(f"warning: {line}", file=sys.stderr)
    for line in planned.errors:
        print(f"error: {line}", file=sys.stderr)
    if not planned.jobs:
        raise PipelineError("nothing to enhance" + (" (see the errors above)" if planned.errors else ""))
    make_output_folder(args.output)
    model = load_model(args.model or default_model_uri(args.params))
    outcome = enhance_all(
        planned.jobs, model, args.overwrite, args.tile, args.margin, args.precision, args.max_megapixels
    )
    outcome.errors[:0] = planned.errors
    outcome.skipped = planned.skipped
    print(summary_line(outcome, args.output))
    return 0 if outcome.ok else 1
