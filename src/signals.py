"""Stopping on SIGINT, SIGTERM and SIGHUP: the same clean stop for Ctrl-C, `kill`, `timeout`, a
scheduler and a closed terminal.

Python turns SIGINT into KeyboardInterrupt, so the `except`/`finally` blocks written for Ctrl-C
run: a training marks its MLflow run KILLED, an Optuna trial is marked FAIL. SIGTERM's default
action, though, ends the process on the spot, without any of them: its MLflow run stayed RUNNING
forever. Inside `stop_on_signals()` (every command's `cli_entry`) all three signals raise
`Interrupted`, a KeyboardInterrupt, in the main thread, so one cleanup path serves them all;
`cli_entry` then prints one line (`stop_line`) and exits 128 + the signal's number (130, 143, 129),
as a shell reports a process killed by that signal.

Only the standard library and psutil here (milliseconds to import): `python -m src.tune`
installs this before importing Optuna.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

import psutil

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# A stop can arrive twice within moments (a scheduler signals every process of a job while the
# tune parent forwards its own): a repeat this soon is the same stop and must not cut short the
# cleanup the first one started. A repeat after it means "stop now": it raises again.
REPEAT_GRACE_S = 2.0


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised where the main thread was; a KeyboardInterrupt, so that every
    `except KeyboardInterrupt` (ours, Optuna's, Keras') treats SIGTERM as it treats Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclasses.dataclass
class _Stop:
    signum: int | None = None  # the first stop signal received
    at: float = 0.0  # when (time.monotonic)
    deferring: int = 0  # depth of `deferred()` blocks
    pending: bool = False  # a stop arrived inside one: raise when the outermost ends
    installed: int = 0  # depth of `stop_on_signals()`
    redeliver: bool = False  # the next delivery re-raises a swallowed stop (`_unraisable`)
    unraisablehook: Callable[[sys.UnraisableHookArgs], object] | None = None  # the one we replaced


_stop = _Stop()


def _handle(signum: int, frame: object) -> None:
    redelivered, _stop.redeliver = _stop.redeliver, False  # a stop a finalizer swallowed, again
    now = time.monotonic()
    if not redelivered and _stop.signum is not None and now - _stop.at < REPEAT_GRACE_S:
        return  # the same stop, delivered twice
    first = _stop.signum is None
    if first:
        _stop.signum, _stop.at = signum, now
    if _stop.deferring and (first or redelivered):
        _stop.pending = True  # raised as the deferred block ends
        return
    raise Interrupted(signum)


# How soon a swallowed stop is delivered again: long enough for the finalizer to be over.
REDELIVER_S = 0.05


def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """A stop raised while Python ran a finalizer (`tqdm.__del__`, a TensorFlow object's `__del__`)
    is swallowed there ("Exception ignored in ..."): the process would train on as if nothing had
    happened, as one tune worker did until the parent killed it. Deliver the signal again in a
    moment instead, to code that can raise, and print nothing."""
    err = unraisable.exc_value
    if not isinstance(err, Interrupted):
        (_stop.unraisablehook or sys.__unraisablehook__)(unraisable)
        return
    _stop.redeliver = True
    timer = threading.Timer(REDELIVER_S, os.kill, (os.getpid(), err.signum))
    timer.daemon = True
    timer.start()


def check() -> None:
    """Raise the stop if one was asked for and this code still runs: a library's bare `except:`
    may have swallowed it. Called once per training step, where no cleanup is ever under way."""
    if _stop.signum is not None and not _stop.deferring:
        _stop.redeliver = False  # delivered here: a redelivery on its way is the same stop
        raise Interrupted(_stop.signum)


# DVC sets this for every stage command it runs (to the stage's name), in the shell it starts.
DVC_STAGE_ENV = "DVC_STAGE"
DVC_POLL_S = 1.0  # how often a stage checks that the `dvc repro` running it is still there


def stop_with_dvc(poll_s: float = DVC_POLL_S) -> int | None:
    """Under `dvc repro`: stop as on SIGTERM once DVC itself is gone. Returns DVC's pid, if watched.

    DVC passes no signal on to its stage: `kill <dvc pid>` (or a supervisor that signals only its
    child) ends DVC at once and would leave the stage running as an orphan, training on and then
    replacing `models/` with no `dvc.lock` to match. Ctrl-C and `timeout` signal the whole
    process group and need none of this. The process tree is read with psutil.
    """
    stage = os.environ.get(DVC_STAGE_ENV)
    dvc = _dvc_process(stage) if stage else None
    if dvc is None:
        return None

    def watch() -> None:
        while _alive(dvc):
            time.sleep(poll_s)
        print(f"stage {stage}: dvc (pid {dvc.pid}) has exited; stopping as on SIGTERM", file=sys.stderr)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="dvc-watch", daemon=True).start()
    return dvc.pid


def _dvc_process(stage: str, levels: int = 4) -> psutil.Process | None:
    """The nearest ancestor without this stage's DVC_STAGE: DVC, above the shell it started (which
    either execs the command or waits for it, depending on the shell)."""
    try:
        for process in psutil.Process().parents()[:levels]:
            if process.pid <= 1:
                return None
            if process.environ().get(DVC_STAGE_ENV) != stage:
                return process
    except psutil.Error:  # gone meanwhile, or not ours to read
        return None
    return None


def _alive(process: psutil.Process) -> bool:
    """Running, not a zombie waiting for its parent to collect its exit status."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # gone (NoSuchProcess), or a new process took the pid
        return False


def stop_requested() -> int | None:
    """The signal that asked this process to stop, if one did: cleanup code and log filters ask."""
    return _stop.signum


@contextlib.contextmanager
def stop_on_signals(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Within the block, the stop signals raise `Interrupted` in the main thread; on exit the
    previous handlers are back (a test calling a command's main() in-process keeps its own).

    A signal the process inherited as ignored (`nohup`, a background job's SIGINT) stays ignored:
    whoever started us chose that. Outside the main thread (where Python cannot install handlers)
    this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in signals:
        current = signal.getsignal(signum)
        if current is signal.SIG_IGN:
            continue
        previous[signum] = signal.SIG_DFL if current is None else current
        signal.signal(signum, _handle)
    hook = sys.unraisablehook
    if hook is not _unraisable:  # other unraisable exceptions still go where they went (pytest's)
        _stop.unraisablehook = hook
    sys.unraisablehook = _unraisable
    _stop.installed += 1
    try:
        yield
    finally:
        _stop.installed -= 1
        sys.unraisablehook = hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if not _stop.installed:  # the process may go on (tests): the next command starts unstopped
            _stop.signum, _stop.pending, _stop.deferring, _stop.redeliver = None, False, 0, False


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold a stop until the block ends, for a few writes that must finish once begun (an epoch's
    checkpoint and the state file naming it); it is raised as the block exits, in place of any
    exception the block raised (a pruned trial must not let its worker start the next one)."""
    _stop.deferring += 1
    try:
        yield
    finally:
        _stop.deferring -= 1
        if not _stop.deferring and _stop.pending:
            _stop.pending = False
            raise Interrupted(_stop.signum or signal.SIGINT)


def signal_number(err: KeyboardInterrupt) -> int:
    """The signal behind an interrupt; SIGINT for a KeyboardInterrupt raised some other way."""
    return err.signum if isinstance(err, Interrupted) else int(signal.SIGINT)


def signal_name(err: KeyboardInterrupt) -> str:
    return signal.Signals(signal_number(err)).name


def exit_code(err: KeyboardInterrupt) -> int:
    """128 + the signal's number, the status a shell gives a process that signal killed."""
    return 128 + signal_number(err)


def reason(err: BaseException) -> str:
    """Why a run or trial ended, for its `failure_reason`: the signal, or the error's first words."""
    if isinstance(err, KeyboardInterrupt):
        return f"interrupted by {signal_name(err)}"
    return f"{type(err).__name__}: {err}"[:500]


def add_outcome(err: BaseException, text: str) -> None:
    """Record what a layer did about the stop ("MLflow run … marked KILLED"), innermost first:
    `stop_line` joins them into the one line the user sees."""
    err.outcomes = [*getattr(err, "outcomes", []), text]  # type: ignore[attr-defined]


def set_source(err: BaseException, who: str) -> None:
    """Name the process in its stop line, where several share one terminal (tune's workers)."""
    err.source = who  # type: ignore[attr-defined]


def stop_line(err: KeyboardInterrupt) -> str:
    """`interrupted (SIGTERM); MLflow run 1a2b3c4d marked KILLED; rerun to resume after epoch 2 of 8`."""
    line = "; ".join([f"interrupted ({signal_name(err)})", *getattr(err, "outcomes", [])])
    source = getattr(err, "source", None)
    return f"{source}: {line}" if source else line
