"""User-facing errors: one line naming the file and the problem, never a traceback."""

from __future__ import annotations

import atexit
import functools
import os
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from src import signals

T = TypeVar("T")


class PipelineError(Exception):
    """A problem the user can fix (bad input, bad params, missing data).

    Raised anywhere in `src`; the command-line entry points turn it into a single
    `error: ...` line and exit status 1, because a traceback tells a user nothing
    they can act on.
    """


_entered = 0  # depth of cli_entry calls: only the outermost reports and exits


def cli_entry(main: Callable[..., T]) -> Callable[..., T]:
    """Wrap a command's main(): PipelineError → one line on stderr, exit 1; Ctrl-C, SIGTERM or
    SIGHUP → the cleanup paths run (`src.signals`), one line saying what was kept, exit 130/143/129.

    A main called from another (`python -m src.tune` wraps the CLI's) leaves both to the outer one.
    """

    @functools.wraps(main)
    def wrapper(*args: object, **kwargs: object) -> T:
        global _entered
        if _entered:
            return main(*args, **kwargs)
        _entered += 1
        try:
            with signals.stop_on_signals():
                signals.stop_with_dvc()  # a stage whose `dvc repro` is killed stops too
                return main(*args, **kwargs)
        except PipelineError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(1) from None
        except KeyboardInterrupt as err:
            print(signals.stop_line(err), file=sys.stderr)
            if main.__module__ == "__main__":  # the running script's own entry point, not a test's call
                exit_now(signals.exit_code(err))
            raise SystemExit(signals.exit_code(err)) from None
        finally:
            _entered -= 1

    return wrapper


def exit_now(code: int) -> NoReturn:
    """Exit after the atexit handlers (MLflow's, logging's flush) but without the interpreter's
    teardown, which with TensorFlow loaded takes 2 to 5 s of a stopped command's time: measured on
    a tune worker, its one line came 1 s after the signal and its exit 5 s later. Only after a stop,
    whose cleanup (runs closed, trials told, files written whole) has run by then."""
    atexit._run_exitfuncs()  # CPython's own call at exit: MLflow's atexit, logging.shutdown
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type when there is none): enough for a
    one-line error, without the pages some libraries put after it."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
