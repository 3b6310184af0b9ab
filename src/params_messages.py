"""Problems with params as one line each, in the project's wording: pydantic's validation errors
(`section.key: problem`, the first one and a count of the rest) and YAML's (`file:line: problem`)."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from pydantic_core import ErrorDetails
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from src.errors import first_line

Sections = dict[str, type]  # section name → its dataclass


def _path(loc: tuple[int | str, ...]) -> str:
    """('tune', 'learning_rate', 0) → 'tune.learning_rate[0]'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _known(loc: tuple[int | str, ...], sections: Sections) -> list[str]:
    """The keys allowed at `loc`: section names at the top, a section's fields below it."""
    if not loc:
        return list(sections)
    cls = sections.get(str(loc[0]))
    return [f.name for f in dataclasses.fields(cls)] if cls else []


def _field_type(loc: tuple[int | str, ...], sections: Sections) -> Any:
    """The annotation of the `section.key` at `loc`, e.g. a Literal of the allowed values."""
    return typing.get_type_hints(sections[str(loc[0])])[str(loc[1])]


_TYPE_NAMES = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "finite_number": "a finite number",
    "dataclass_type": "a mapping",
    "dataclass_args_type": "a mapping",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _describe(error: ErrorDetails, errors: list[ErrorDetails], sections: Sections) -> str:
    """One pydantic error as `section.key: problem`, in the wording of the rest of the project."""
    kind, loc, ctx = error["type"], error["loc"], error.get("ctx", {})
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        parent = loc[:-1]
        unknown = sorted(str(e["loc"][-1]) for e in errors if e["type"] == kind and e["loc"][:-1] == parent)
        what = "key(s)" if parent else "section(s)"
        where = f"{_path(parent)}: " if parent else ""
        known = ", ".join(sorted(_known(parent, sections)))
        return f"{where}unknown {what} {', '.join(unknown)}; known: {known}"
    if kind in ("missing", "missing_argument"):
        return f"{_path(loc[:-1])}: missing required key {loc[-1]!r}"
    prefix = f"{_path(loc)}: " if loc else ""
    if kind == "value_error":  # our own validators: their message is the whole story
        return f"{prefix}{ctx['error']}"
    if kind == "literal_error":
        allowed = ", ".join(map(str, typing.get_args(_field_type(loc, sections))))
        return f"{prefix}{error['input']!r} is not one of {allowed}"
    if kind in _TYPE_NAMES:
        return f"{prefix}expected {_TYPE_NAMES[kind]}, got {error['input']!r}"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return f"{prefix}must be {_BOUNDS[kind]} {bound}, got {error['input']!r}"
    return f"{prefix}{error['msg']}, got {error['input']!r}"


def validation_line(errors: list[ErrorDetails], sections: Sections) -> str:
    """The first problem only, as a compiler does (fixing it often fixes the rest), and a count
    of the others; all unknown keys of one section count as one problem."""
    unknown = ("unexpected_keyword_argument", "extra_forbidden")
    problems = {("unknown", e["loc"][:-1]) if e["type"] in unknown else i for i, e in enumerate(errors)}
    more = len(problems) - 1
    return _describe(errors[0], errors, sections) + (
        f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    )


def yaml_line(path: Path, err: YAMLError) -> str:
    """A file YAML could not read, as one line naming the place."""
    if isinstance(err, DuplicateKeyError):
        return _duplicate_key_line(path, err)
    if isinstance(err, MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        place = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        return f"{place}: not valid YAML ({err.problem or first_line(err)})"
    return f"{path}: not valid YAML ({first_line(err)})"


def _duplicate_key_line(path: Path, err: DuplicateKeyError) -> str:
    """`params.yaml:12: key 'epochs' given twice in one section (first at line 9); the last would
    silently win`: the first line is the nearest earlier one of the same key and indent."""
    lines = path.read_text().splitlines()
    line = err.problem_mark.line
    text = lines[line]
    key = text.strip().split(":", 1)[0].strip("'\"")
    indent = len(text) - len(text.lstrip())
    start = err.context_mark.line if err.context_mark else 0
    first = next(
        (
            n
            for n in range(line - 1, start - 1, -1)
            if len(lines[n]) - len(lines[n].lstrip()) == indent
            and lines[n].strip().split(":", 1)[0].strip("'\"") == key
        ),
        None,
    )
    where = f" (first at line {first + 1})" if first is not None else ""
    return f"{path}:{line + 1}: key {key!r} given twice in one section{where}; remove one"
