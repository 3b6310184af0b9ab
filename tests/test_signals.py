"""Stop signals: SIGTERM and Ctrl-C end a command cleanly.

The unit tests signal this very process inside `stop_on_signals`; the last one stops a real
`python -m stages.train` with SIGTERM, as `timeout`, `kill` or a scheduler would. That the rerun
resumes the same run is tests/train/test_training.py's (in-process, the same checkpoint code).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time

import mlflow
import pytest
import yaml

from src import signals
from src.errors import cli_entry
from tests.support.pipeline import tiny_params_dict, tiny_split, use_store
from tests.support.processes import Watched


def signal_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(1)  # the handler runs in this thread, at the next bytecode: well before this ends


def test_sigterm_raises_a_keyboard_interrupt_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as stopped, signals.stop_on_signals():
        signal_self(signal.SIGTERM)
    assert isinstance(stopped.value, signals.Interrupted)
    assert (
        signals.exit_code(stopped.value) == 143 and signals.reason(stopped.value) == "interrupted by SIGTERM"
    )
    assert signal.getsignal(signal.SIGTERM) is before
    assert signals.stop_requested() is None, "the next command starts unstopped"


def test_a_deferred_block_finishes_before_the_stop_and_a_quick_repeat_is_the_same_stop():
    finished = []
    with pytest.raises(signals.Interrupted), signals.stop_on_signals():
        with signals.deferred():
            signal_self(signal.SIGINT)
            signal_self(signal.SIGTERM)  # a scheduler and a parent may both deliver one
            finished.append(True)
        finished.append(False)
    assert finished == [True]


class SignalsWhenCollected:
    def __del__(self):
        signal_self(signal.SIGTERM)  # raised in here, where Python swallows exceptions


def test_a_stop_swallowed_by_a_finalizer_is_delivered_again(capsys):
    with pytest.raises(signals.Interrupted), signals.stop_on_signals():
        SignalsWhenCollected()  # collected at once: its __del__ runs and loses the stop
        time.sleep(2)  # the stop is delivered again within this
    assert "Exception ignored" not in capsys.readouterr().err


def test_a_stop_swallowed_by_a_bare_except_is_raised_at_the_next_check():
    with pytest.raises(signals.Interrupted), signals.stop_on_signals():
        with contextlib.suppress(BaseException):  # as a library's bare `except: pass` would
            signal_self(signal.SIGINT)
        signals.check()


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with signals.stop_on_signals():
            signal_self(signal.SIGHUP)
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_cli_entry_prints_one_line_with_the_outcomes_and_exits_as_signalled(capsys):
    @cli_entry
    def main() -> None:
        try:
            signal_self(signal.SIGTERM)
        except KeyboardInterrupt as err:
            signals.add_outcome(err, "run marked KILLED")
            raise

    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 143
    assert capsys.readouterr().err == "interrupted (SIGTERM); run marked KILLED\n"


def training_project(tmp_path, monkeypatch, epochs: int) -> None:
    """A project in `tmp_path` (the working directory) with its own MLflow store, tiny params
    training for `epochs`, and the split."""
    use_store(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    raw = tiny_params_dict()
    raw["train"].update(epochs=epochs, val_images=0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    from src.config import params_from_dict

    tiny_split(tmp_path, params_from_dict(raw))


def stage_train(tmp_path) -> Watched:
    outputs = tmp_path / "out"
    return Watched(
        [
            "stages.train",
            "--split", "split",
            "--model", f"{outputs}/curves.keras",
            "--run-file", f"{outputs}/run.json",
            "--history", f"{outputs}/history.csv",
            "--metrics", f"{outputs}/metrics.json",
            "--checkpoints", "ckpt",
            "--params", "params.yaml",
        ],
        cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.slow
def test_sigterm_stops_a_training_within_seconds_its_run_killed_and_resumable(tmp_path, monkeypatch):
    training_project(tmp_path, monkeypatch, epochs=3)  # three: still training when the signal comes
    first = stage_train(tmp_path)
    try:
        first.wait_for(r"^epoch 1/3: loss ")
        signalled = time.monotonic()
        first.process.send_signal(signal.SIGTERM)
        code = first.wait(timeout=30)
        stopped_in = time.monotonic() - signalled
    finally:
        first.kill()
    print(f"\nSIGTERM → exit {code} in {stopped_in:.1f} s; last line: {first.stderr[-1]}")
    assert code == 143, "\n".join(first.stderr[-30:])
    assert stopped_in < 10
    assert "Traceback" not in "\n".join(first.stderr)
    last_epoch = max(i for i, line in enumerate(first.stderr) if line.startswith("epoch "))
    assert [line for line in first.stderr[last_epoch + 1 :] if line.strip()] == [first.stderr[-1]], (
        "one line after the stop, nothing else"
    )
    last = first.stderr[-1]
    assert (
        last.startswith("interrupted (SIGTERM); MLflow run ")
        and " marked KILLED; rerun to resume after epoch " in last
    )
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "KILLED"
    assert run.data.tags["failure_reason"] == "interrupted by SIGTERM"
    assert run.info.run_id[:8] in last
    assert (tmp_path / "ckpt" / "state.json").is_file(), "the epochs done are kept for the rerun"


@pytest.mark.slow
def test_a_training_killed_in_its_first_epoch_is_resumed_in_its_run_and_locks_out_a_second(
    tmp_path, monkeypatch
):
    """`kill -9` runs no cleanup, so the run stays RUNNING until a rerun takes it over: the state
    naming it was written before the first epoch. While the first runs, a second is refused."""
    training_project(tmp_path, monkeypatch, epochs=2)
    first = stage_train(tmp_path)
    try:
        first.wait_for(r"epoch 1/2: +\d+%")  # the progress bar: the run and its state exist
        second = stage_train(tmp_path)
        started = time.monotonic()
        assert second.wait(timeout=60) == 1
        refused_in = time.monotonic() - started
        os.killpg(first.process.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        first.kill()
    print(f"\nsecond training refused in {refused_in:.1f} s: {second.stderr[-1]}")
    assert [line for line in second.stderr if line.strip()] == [second.stderr[-1]]
    pid = first.process.pid
    refusal = rf"error: another training is running \(pid {pid}, since [^)]+\); wait for it or stop it"
    assert re.fullmatch(refusal, second.stderr[-1])
    assert refused_in < 10
    (orphan,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert orphan.info.status == "RUNNING", "what SIGKILL leaves, until the rerun"

    rerun = stage_train(tmp_path)
    try:
        assert rerun.wait(timeout=300) == 0, "\n".join(rerun.stderr[-30:])
    finally:
        rerun.kill()
    assert any(line.startswith("resuming its run, from epoch 1 of 2") for line in rerun.stderr)
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.run_id == orphan.info.run_id and run.info.status == "FINISHED"
