"""Training under tf.distribute.MultiWorkerMirroredStrategy: two workers give what one device gives,
and only the chief writes.

Two local processes on 127.0.0.1 stand in for two hosts: each gets its own `TF_CONFIG` (the same
cluster, its own task) and its own folder, as a host would. One run of the pair serves both
checks: first one step of the same tiny model from the same weights on a fixed batch of four
split between them (against a one-device Trainer on the whole batch, computed in the chief),
then `python -m stages.train` itself, to see which of them writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from src.errors import PipelineError
from src.train.cluster import check_cluster, checkpoint_folder, is_chief, tf_config_task
from tests.support.pipeline import tiny_params, tiny_params_dict, tiny_split

REPO = Path(__file__).resolve().parents[2]
CLIP = 0.001  # binds: a clip of each worker's half-batch gradient would take another step
# The losses op by op, here and in the stage's run: each XLA compile of the fused loss costs
# 20-40 s on 2 busy cores, and the fused kernel holds no collective (test_distribute runs it).
TIMEOUT_S = 300  # a collective that waits for a peer forever fails the test instead
EPOCH_LINE = re.compile(r"epoch \d+/\d+: loss ")

WORKER = r"""
import json, runpy, sys, time
started = time.perf_counter()
import numpy as np
import keras
import tensorflow as tf
from tests.support.pipeline import tiny_params
from src.train.trainer import Trainer

params = tiny_params(batch_size=4, grad_clip_norm=CLIP, strategy="multi_worker", fused_loss=False)
worker = Trainer(params)  # MultiWorkerMirroredStrategy from TF_CONFIG, before any other TF op
keras.utils.set_random_seed(0)
single = Trainer(params, tf.distribute.get_strategy())  # the same seeded weights in both workers
start = single.model.get_weights()
worker.model.set_weights(start)
rng = np.random.default_rng(0)
batch = (rng.random((4, 32, 32, 3)) * np.array([0.1, 0.3, 0.6, 0.9])[:, None, None, None]).astype("float32")
share = next(iter(worker.distribute(tf.data.Dataset.from_tensors(batch))))
mine = worker.strategy.experimental_local_results(share)[0].numpy()

per_replica = tf.function(lambda b: worker.strategy.run(worker.batch_gradients, args=(b,)))(share)
arrays = {f"start_{i}": w for i, w in enumerate(start)}
local = [worker.strategy.experimental_local_results(g)[0] for g in per_replica[1]]  # the one replica here
arrays.update({f"grad_{i}": g for i, g in enumerate(local)})
result = {"replicas": worker.strategy.num_replicas_in_sync, "row_means": mine.mean(axis=(1, 2, 3)).tolist()}
result["loss_worker"] = float(worker.train_step(share)["total"])
arrays.update({f"worker_{i}": w for i, w in enumerate(worker.model.get_weights())})
if worker.strategy.cluster_resolver.task_id == 0:  # the one-device reference, once: the CPUs are shared
    _, expected = tf.function(single.batch_gradients)(tf.constant(batch))
    result["clipped_norm"] = float(tf.linalg.global_norm(expected))
    result["loss_single"] = float(single.train_step(tf.constant(batch))["total"])
    arrays.update({f"expected_{i}": g for i, g in enumerate(expected)})
    arrays.update({f"single_{i}": w for i, w in enumerate(single.model.get_weights())})
np.savez(sys.argv[1], **arrays)

from src.errors import PipelineError
from src.train.loop import check_workers_agree
index = worker.strategy.cluster_resolver.task_id
result["refusals"] = []
for epochs, digest in ((3, "ab" * 32), (3 + index, "ab" * 32), (3, str(index) * 64)):  # resuming
    try:
        check_workers_agree(worker.strategy, epochs, digest)
        result["refusals"].append(None)
    except PipelineError as err:
        result["refusals"].append(str(err))
result["step_s"] = time.perf_counter() - started
print(json.dumps(result), flush=True)

sys.argv = ["stages.train", *STAGE_ARGS]
started = time.perf_counter()
runpy.run_module("stages.train", run_name="__main__", alter_sys=True)
print(json.dumps({"stage_s": time.perf_counter() - started}), flush=True)
"""

STAGE_ARGS = [
    *("--split", "SPLIT", "--model", "models/curves.keras", "--run-file", "models/run.json"),
    *("--history", "reports/history.csv", "--metrics", "reports/metrics.json"),
    *("--checkpoints", ".checkpoints/train", "--params", "params.yaml"),
]


def free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def tf_config(ports: list[int], index: int) -> str:
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> dict:
    """Both workers' step results and folders, after the step and a whole `stages.train` run."""
    root = tmp_path_factory.mktemp("multi_worker")
    params = tiny_params(val_images=0)
    split = tiny_split(root, params)
    raw = tiny_params_dict()
    # The run is here for who writes what (the step above checks the numerics): one epoch.
    raw["train"].update(val_images=0, epochs=1, strategy="multi_worker", fused_loss=False)
    ports = free_ports(2)
    store = f"sqlite:///{root / 'mlflow.db'}"  # one store for both, like a tracking server
    script = WORKER.replace("CLIP", repr(CLIP)).replace(
        "STAGE_ARGS", repr([str(split) if a == "SPLIT" else a for a in STAGE_ARGS])
    )
    folders, logs, processes, timed_out = [], [], [], False
    started = time.perf_counter()
    for index in range(2):
        folder = root / f"host{index}"
        folder.mkdir()
        (folder / "params.yaml").write_text(yaml.safe_dump(raw))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env.update(PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'tests'}", MLFLOW_TRACKING_URI=store)
        env["TF_CONFIG"] = tf_config(ports, index)
        # Output to files, not pipes: a worker blocked on a full pipe would stall the other's
        # collectives too.
        out, err = (root / f"host{index}.out").open("w"), (root / f"host{index}.err").open("w")
        logs.append((out, err))
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", script, str(root / f"weights{index}.npz")],
                cwd=folder,
                env=env,
                stdout=out,
                stderr=err,
            )
        )
        folders.append(folder)
    try:
        for process in processes:
            process.wait(timeout=max(1.0, TIMEOUT_S - (time.perf_counter() - started)))
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for out, err in logs:
            out.close()
            err.close()
    stdout = [(root / f"host{i}.out").read_text() for i in range(2)]
    stderr = [(root / f"host{i}.err").read_text() for i in range(2)]
    for index, process in enumerate(processes):
        why = f"timed out after {TIMEOUT_S} s" if timed_out else f"rc {process.returncode}"
        assert process.returncode == 0, f"worker {index} ({why}):\n{stderr[index][-3000:]}"
    return {
        "seconds": time.perf_counter() - started,
        "steps": [json.loads(out.splitlines()[0]) for out in stdout],
        "stage_s": [json.loads(out.splitlines()[-1])["stage_s"] for out in stdout],
        "arrays": [np.load(root / f"weights{i}.npz") for i in range(2)],
        "stdout": stdout,
        "stderr": stderr,
        "folders": folders,
        "store": store,
    }


@pytest.mark.slow
def test_two_workers_all_reduce_the_whole_batch_gradient_and_take_the_one_device_step(cluster):
    first, second = cluster["steps"]
    # Each worker trained on its own half of the batch (rows 0-1 and 2-3, dimmest first)...
    assert first["replicas"] == second["replicas"] == 2
    assert len(first["row_means"]) == len(second["row_means"]) == 2
    assert max(first["row_means"]) < min(second["row_means"])
    saved = cluster["arrays"]

    count = sum(name.startswith("start_") for name in saved[0].files)  # the model's weights

    def arrays(worker: int, name: str) -> list[np.ndarray]:
        return [saved[worker][f"{name}_{i}"] for i in range(count)]

    expected, single = arrays(0, "expected"), arrays(0, "single")
    assert all(np.array_equal(a, b) for a, b in zip(arrays(0, "start"), arrays(1, "start"), strict=True))
    # ...yet each holds the gradient of the whole batch, clipped as one (by a clip that binds)...
    assert first["clipped_norm"] == pytest.approx(CLIP, rel=1e-4)
    scale = max(float(np.abs(e).max()) for e in expected)
    assert scale > 0
    for worker in (0, 1):
        diff = max(float(np.abs(g - e).max()) for g, e in zip(arrays(worker, "grad"), expected, strict=True))
        assert diff <= 1e-6 * max(1.0, scale) + 1e-8, f"worker {worker}'s gradient is not the whole batch's"
    # ...and both take the one-device step: the same weights as each other and as one device.
    for step in cluster["steps"]:
        assert abs(first["loss_single"] - step["loss_worker"]) <= 1e-5 * abs(first["loss_single"])
    moved = max(float(np.abs(a - b).max()) for a, b in zip(single, arrays(0, "start"), strict=True))
    assert moved > 1e-6, "the step must change the weights"
    between = max(
        float(np.abs(a - b).max()) for a, b in zip(arrays(0, "worker"), arrays(1, "worker"), strict=True)
    )
    assert between <= 1e-6 * moved, "the workers' weights must agree"
    for worker in (0, 1):
        diff = max(float(np.abs(a - b).max()) for a, b in zip(arrays(worker, "worker"), single, strict=True))
        assert diff <= 1e-3 * moved, f"worker {worker} took another step than one device"


@pytest.mark.slow
def test_only_the_chief_writes_and_both_train_alike(cluster):
    chief, worker = cluster["folders"]
    files = {p.relative_to(chief).as_posix() for p in chief.rglob("*") if p.is_file()}
    assert {"models/curves.keras", "models/run.json", "reports/history.csv", "reports/metrics.json"} <= files
    assert not (chief / ".checkpoints" / "train").exists(), "cleared once the outputs are written"
    left = sorted(p.relative_to(worker).as_posix() for p in worker.rglob("*") if p.is_file())
    # Its lock (each worker holds its own checkpoint folder's: train-worker1) is all it leaves.
    assert left == [".locks/train-worker1.lock", "params.yaml"], "a worker writes no output, run, checkpoint"
    assert "as worker 1 of 2 workers; the chief writes" in cluster["stdout"][1]
    runs = mlflow.MlflowClient(cluster["store"]).search_runs(
        [e.experiment_id for e in mlflow.MlflowClient(cluster["store"]).search_experiments()]
    )
    assert [r.info.run_id for r in runs] == [json.loads((chief / "models/run.json").read_text())["run_id"]]
    assert runs[0].info.status == "FINISHED"

    def epoch_lines(log: str) -> list[str]:  # "epoch 1/2: loss … / val …, val PSNR …, SSIM …", no timing
        return [line.rsplit(", ", 1)[0] for line in log.splitlines() if EPOCH_LINE.match(line)]

    assert len(epoch_lines(cluster["stderr"][0])) == 1
    assert epoch_lines(cluster["stderr"][0]) == epoch_lines(cluster["stderr"][1])


@pytest.mark.slow
def test_workers_resume_only_together(cluster):
    """Each worker resumes from its own checkpoints: at different epochs, or with other params,
    all of them refuse before the first step rather than mix two trainings."""
    for step in cluster["steps"]:
        same, epochs, params = step["refusals"]
        assert same is None
        assert "checkpoints stand after different epochs (3, 4)" in epochs
        assert "the workers differ in params.yaml or the split" in params


# The one-line refusals: no TensorFlow, no second process.


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "TF_CONFIG is not set"),
        ("{not json", "TF_CONFIG is not JSON"),
        ('{"task": {"type": "worker", "index": 0}}', 'TF_CONFIG has no "cluster"'),
        (
            '{"cluster": {"worker": "h:1"}, "task": {"type": "worker", "index": 0}}',
            'job "worker" is not a list',
        ),
        ('{"cluster": {"worker": ["h1", "h2:2"]}, "task": {"type": "worker", "index": 0}}', '"host:port"'),
        ('{"cluster": {"worker": ["h:1"]}}', 'TF_CONFIG has no "task"'),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "ps", "index": 0}}', 'task type is "ps"'),
        (
            '{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}',
            "task index is 2",
        ),
    ],
)
def test_a_missing_or_malformed_tf_config_is_one_line_naming_it(value, problem):
    environ = {} if value is None else {"TF_CONFIG": value}
    with pytest.raises(PipelineError) as refused:
        tf_config_task(environ)
    message = str(refused.value)
    assert message.startswith("train.strategy is multi_worker, but ") and problem in message
    assert "\n" not in message


def test_the_chief_is_worker_0_or_the_chief_task(monkeypatch):
    cluster = {"worker": ["a:1", "b:1"]}
    for index, chief in ((0, True), (1, False)):
        monkeypatch.setenv(
            "TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        )
        assert is_chief("multi_worker") is chief
        folder = checkpoint_folder("multi_worker", Path(".checkpoints/train"))
        assert folder == Path(".checkpoints/train" if chief else ".checkpoints/train-worker1")
    with_chief = {"chief": ["c:1"], **cluster}
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": with_chief, "task": {"type": "worker", "index": 0}})
    )
    assert not is_chief("multi_worker") and tf_config_task().workers == 3
    monkeypatch.delenv("TF_CONFIG")
    assert is_chief("default") and is_chief("mirrored"), "one host: TF_CONFIG is not read"


def test_the_batch_must_split_evenly_between_the_workers(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", tf_config([1, 2], 1))
    check_cluster(tiny_params(batch_size=4, strategy="multi_worker").train)
    with pytest.raises(PipelineError, match=r"train.batch_size \(3\) is not a multiple of the 2 workers"):
        check_cluster(tiny_params(batch_size=3, strategy="multi_worker").train)
    check_cluster(tiny_params(batch_size=3).train)  # one host: anything goes


def test_the_stage_refuses_a_missing_tf_config_before_tensorflow(tmp_path, monkeypatch):
    split = tiny_split(tmp_path, tiny_params(val_images=0))
    raw = tiny_params_dict()
    raw["train"].update(val_images=0, strategy="multi_worker")
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(PYTHONPATH=str(REPO), MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}")
    args = [a.replace("SPLIT", str(split)) for a in STAGE_ARGS]
    done = subprocess.run(
        [sys.executable, "-m", "stages.train", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: train.strategy is multi_worker, but TF_CONFIG is not set")
    assert sorted(p.name for p in work.iterdir()) == ["params.yaml"], "no MLflow store, checkpoint or output"
