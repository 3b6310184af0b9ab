"""One Optuna study on PostgreSQL shared by two `python -m src.tune` started separately, as on two
machines, each from its own project folder, both logging to the team's MLflow tracking server;
one of them dies mid-trial (SIGKILL) and the other fails that trial by its heartbeat and retries it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
import warnings

import mlflow
import optuna
import pytest
import yaml

from src.config import load_params, params_from_dict
from src.tune.study import counted_trials, load_or_create_study
from src.tune.trial import RETRY_OF_TAG, TRIAL_STATE_TAG
from tests.support.pipeline import tiny_params_dict, tiny_split
from tests.support.processes import Watched
from tests.tune.test_tune import child_runs, parent_runs

STUDY = "team-study"
N_TRIALS = 5  # per invocation; why 5, see the test
# A trial silent for 3 s counts as dead: short enough for a test, and 2 s more than the 1 s between
# beats, so a live trial on two busy cores is not taken for a dead one.
HEARTBEAT = {"heartbeat_interval_s": 1, "heartbeat_grace_s": 3}

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def machines(tmp_path, monkeypatch, postgres, tracking_server):
    """Two project folders, `a` and `b`, as two machines hold them: tiny params (trials of one
    epoch) and the split. The study's storage is a fresh PostgreSQL database,
    given on the command line; MLflow is the tracking server, through MLFLOW_TRACKING_URI."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    raw = tiny_params_dict()
    raw["tune"].update(epochs=1, pruner="none", **HEARTBEAT)
    raw["mlflow"]["experiment"] = "tune-on-postgres"
    folders = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        tiny_split(folder, params_from_dict(raw))
        folders.append(folder)
    yield postgres.create_database("optuna"), folders
    while mlflow.active_run():
        mlflow.end_run()


def trials_so_far(worker: Watched) -> int:
    """What the invocation found in the study as it started (its target is that plus N_TRIALS)."""
    (line,) = [line for line in worker.stderr if line.startswith(f"tune: study '{STUDY}'")]
    return int(re.search(r": (\d+) trials so far", line).group(1))


def running_trials(postgres, storage: str, workers: list[Watched], timeout_s: float) -> dict[int, int]:
    """Once every worker runs a trial whose MLflow run has started: worker pid -> trial number.
    Read from Optuna's tables directly, so the test opens no storage that would create them."""
    deadline = time.monotonic() + timeout_s
    sql = (
        "SELECT a.value_json, t.number FROM trials t JOIN trial_user_attributes a USING (trial_id) "
        "WHERE t.state = 'RUNNING' AND a.key = 'worker_pid'"
    )
    while time.monotonic() < deadline:
        for worker in workers:
            assert worker.process.poll() is None, "\n".join(worker.stderr[-40:])
        with contextlib.suppress(postgres.error):  # no tables yet
            running = {int(pid): number for pid, number in postgres.query(storage, sql)}
            if all(worker.process.pid in running for worker in workers):
                return running
        time.sleep(0.3)
    raise AssertionError(f"not every worker ran a trial within {timeout_s:g} s")


def test_two_machines_share_a_postgres_study_and_a_killed_workers_trial_is_retried(machines, postgres):
    storage, (folder_a, folder_b) = machines
    command = ["src.tune", "--storage", storage, "--study-name", STUDY, "--n-trials", str(N_TRIALS)]
    command += ["--split", "split"]
    started = time.monotonic()
    a, b = Watched(command, cwd=folder_a), Watched(command, cwd=folder_b)
    try:
        # Both running a trial at once (each one's MLflow run started); then A's machine dies.
        dead_number = running_trials(postgres, storage, [a, b], timeout_s=300)[a.process.pid]
        a.process.kill()
        killed_after = time.monotonic() - started
        assert a.wait(timeout=30) == -9
        # B goes on. The dead trial is RUNNING, so it counts towards B's target until B fails it at
        # the start of a trial more than the grace after A's last beat, and its retry does not add
        # to the count. Two trials are counted when A dies (A's and B's first): of B's next three
        # starts, which a target of 5 leaves it, the third at the latest comes two trials after A's
        # death, beyond the grace (tiny trials take over 1.5 s even on a fast machine).
        assert b.wait(timeout=600) == 0, "\n".join(b.stderr[-40:])
        finished_after = time.monotonic() - started
    finally:
        a.kill()
        b.kill()
    assert not any((folder / "optuna.db").exists() for folder in (folder_a, folder_b)), "--storage won"
    assert (folder_b / "tune" / "runs" / STUDY / "best_params.yaml").is_file(), "B wrote the results"

    cfg = dataclasses.replace(load_params(folder_b / "params.yaml").tune, storage=storage, study_name=STUDY)
    trials = load_or_create_study(cfg).trials
    dead = trials[dead_number]
    assert dead.state == optuna.trial.TrialState.FAIL, "failed by the survivor's heartbeat check"
    assert dead.user_attrs["worker_pid"] == a.process.pid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry_of = {
            t.number: optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials
        }
    (retry,) = [t for t in trials if retry_of[t.number] == dead_number]
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.params == dead.params
    assert retry.number > dead_number and retry.user_attrs["worker_pid"] == b.process.pid
    others = [t for t in trials if t.number != dead_number]
    assert {t.state for t in others} == {optuna.trial.TrialState.COMPLETE}
    pids = [t.user_attrs["worker_pid"] for t in trials]
    assert set(pids) == {a.process.pid, b.process.pid} and pids.count(b.process.pid) >= 2
    assert len(counted_trials(trials)) <= trials_so_far(b) + N_TRIALS, "B stops at its target"
    assert len({tuple(sorted(t.params.items())) for t in others}) == len(others), "no draw repeated"
    assert "(1 retried after their worker died)" in "\n".join(b.stdout)
    (count,) = postgres.query(storage, "SELECT count(*) FROM trials")
    assert count == (len(trials),), "the study lives in PostgreSQL"

    # MLflow, on the tracking server: one parent run per invocation (A's left RUNNING by its death),
    # the dead attempt's run closed as KILLED by the survivor, and the retry's run saying what it retries.
    parents = {run.info.run_id: run for run in parent_runs() if run.data.tags["optuna.study"] == STUDY}
    assert sorted(run.info.status for run in parents.values()) == ["FINISHED", "RUNNING"]
    runs = {run.info.run_id: run for parent in parents for run in child_runs(parent)}
    dead_run = runs[dead.user_attrs["mlflow_run_id"]]
    assert dead_run.info.status == "KILLED" and dead_run.data.tags[TRIAL_STATE_TAG] == "stale"
    assert dead_run.data.tags["failure_reason"] == f"worker died; retried as trial {retry.number}"
    retry_run = runs[retry.user_attrs["mlflow_run_id"]]
    assert retry_run.data.tags[RETRY_OF_TAG] == str(dead_number)
    assert retry_run.data.tags[TRIAL_STATE_TAG] == "complete"
    assert len(runs) == len(trials)
    by_b = pids.count(b.process.pid)
    print(
        f"\nstudy: {len(trials)} trials, {by_b} by B; A's trial {dead_number} (A killed at "
        f"{killed_after:.0f} s) retried as {retry.number}; B done at {finished_after:.0f} s"
    )
