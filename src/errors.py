"""User-facing errors: one line naming the file and the problem, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class PipelineError(Exception):
    """A problem the user can fix (bad input, bad params, missing data).

    Raised anywhere in `src`; the command-line entry points turn it into a single
    `error: ...` line and exit status 1, because a traceback tells a user nothing
    they can act on.
    """


def cli_entry(main: Callable[..., T]) -> Callable[..., T]:
    """Wrap a command's main(): PipelineError → one line on stderr, exit 1; Ctrl-C → exit 130."""

    @functools.wraps(main)
    def wrapper(*args: object, **kwargs: object) -> T:
        try:
            return main(*args, **kwargs)
        except PipelineError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type when there is none): enough for a
    one-line error, without the pages some libraries put after it."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
