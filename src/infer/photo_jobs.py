"""What `python -m src.enhance` will do, before any model loads: every input paired with its output
file, folders expanded, and every problem (a missing file, an unsupported format, two inputs with one
output name, an output folder that cannot be) found up front as one line each."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from src.errors import PipelineError
from src.infer.photos import SUPPORTED, format_of, unsupported

NAMES_SHOWN = 5  # skipped files named in the warning line; the rest are counted


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass
class Plan:
    """What `plan` found: the jobs, one line per problem, and the files folders held besides images."""

    jobs: list[Job] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def plan(inputs: Iterable[Path], output_dir: Path) -> Plan:
    """Expand folders and pair every image with its output path; problems become error lines.

    Two inputs with the same file name would write the same output, so the second
    is refused rather than silently overwriting the first one's result.
    """
    result = Plan()
    claimed: dict[Path, Path] = {}
    for source in _expand(inputs, result):
        target = output_dir / source.name
        if target.resolve() == source.resolve():
            result.errors.append(f"{source}: the output would replace the input; choose another --output")
        elif target in claimed:
            result.errors.append(f"{source}: same output name as {claimed[target]} ({target})")
        else:
            claimed[target] = source
            result.jobs.append(Job(source, target))
    return result


def _expand(inputs: Iterable[Path], result: Plan) -> list[Path]:
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            # Hidden files (.DS_Store, editors' and our own atomic-write temporaries) are not news.
            entries = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            found = [p for p in entries if format_of(p)]
            others = [p for p in entries if not format_of(p)]
            if others:
                result.skipped.extend(others)
                result.warnings.append(f"{path}: {_skipped_line(others)}")
            if not found:
                result.errors.append(f"{path}: no {SUPPORTED} images in this folder")
            files.extend(found)
        elif path.is_file():
            if format_of(path):
                files.append(path)
            else:  # named explicitly: the user expected it enhanced, so it is an error, not a skip
                result.errors.append(unsupported(path))
        else:
            result.errors.append(f"{path}: no such file or folder")
    return files


def _skipped_line(files: list[Path]) -> str:
    names = ", ".join(p.name for p in files[:NAMES_SHOWN])
    more = f" and {len(files) - NAMES_SHOWN} more" if len(files) > NAMES_SHOWN else ""
    count = f"{len(files)} file that is" if len(files) == 1 else f"{len(files)} files that are"
    return f"skipped {count} not {SUPPORTED}: {names}{more}"


def check_output_folder(folder: Path) -> None:
    """Refuse an --output that cannot be a folder, before the model loads: creating it
    would otherwise fail later with a bare FileExistsError or NotADirectoryError."""
    if folder.exists() and not folder.is_dir():
        raise PipelineError(f"{folder}: --output must be a folder, and this is a file")
    for parent in folder.parents:
        if parent.exists():  # False, not an error, below a file (ENOTDIR)
            if not parent.is_dir():
                raise PipelineError(f"{folder}: cannot create this output folder: {parent} is a file")
            return


def make_output_folder(folder: Path) -> None:
    """Create the folder and prove it takes a file, before the model loads and any photo is
    enhanced: a read-only folder must not cost the compute of every photo first."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a race with the check above, permissions, a full disk
        raise PipelineError(f"{folder}: cannot create the output folder ({err.strerror or err})") from None
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as err:
        raise PipelineError(f"{folder}: cannot write in the output folder ({err.strerror or err})") from None
