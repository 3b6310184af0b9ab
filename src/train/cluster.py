"""This process's place in a multi-worker training cluster (`train.strategy: multi_worker`).

TensorFlow reads the cluster from the `TF_CONFIG` environment variable, a JSON object set on
every host: `{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker",
"index": 0}}`. It is read here too, without TensorFlow, so that a missing or malformed one is a
single line before TensorFlow loads, and so that every host knows before training starts whether
it is the chief: the one process that writes the MLflow run, the model and the reports.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from src.config import TrainConfig
from src.errors import PipelineError

TRAINING_JOBS = ("chief", "worker")  # MultiWorkerMirroredStrategy trains on these; no ps, no evaluator
EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


@dataclasses.dataclass(frozen=True)
class ClusterTask:
    type: str  # "chief" or "worker"
    index: int
    workers: int  # processes that train: the chief (if any) and the workers
    has_chief_job: bool

    @property
    def is_chief(self) -> bool:
        # TensorFlow's rule (multi_worker_util.is_chief): the `chief` task if the cluster has
        # one, else worker 0.
        return self.type == "chief" or (self.index == 0 and not self.has_chief_job)


def _problem(text: str) -> PipelineError:
    return PipelineError(f"train.strategy is multi_worker, but TF_CONFIG {text} (e.g. TF_CONFIG='{EXAMPLE}')")


def tf_config_task(environ: dict[str, str] | os._Environ = os.environ) -> ClusterTask:
    """This process's task from `TF_CONFIG`; a PipelineError naming the problem if it has none."""
    raw = environ.get("TF_CONFIG", "").strip()
    if not raw:
        raise _problem("is not set: set it on every host, with the same cluster and this host's task")
    try:
        config = json.loads(raw)
    except ValueError as err:
        raise _problem(f"is not JSON ({err})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise _problem('has no "cluster" object of jobs')
    for job, addresses in cluster.items():
        if job not in (*TRAINING_JOBS, "evaluator", "ps"):
            raise _problem(f'names an unknown job "{job}" in its cluster')
        if not isinstance(addresses, list) or not addresses or not all(_is_address(a) for a in addresses):
            raise _problem(f'job "{job}" is not a list of "host:port" addresses')
    if len(cluster.get("chief", [])) > 1:
        raise _problem('has more than one "chief"')
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise _problem('has no "task" object with "type" and "index"')
    task_type, index = task["type"], task["index"]
    if task_type not in TRAINING_JOBS:
        raise _problem(
            f'task type is {json.dumps(task_type)}: this pipeline trains as "chief" or "worker" only'
        )
    if task_type not in cluster:
        raise _problem(f'task type "{task_type}" is not a job of its cluster')
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[task_type]):
        raise _problem(
            f'task index is {json.dumps(index)}: job "{task_type}" has {len(cluster[task_type])} '
            f"task(s), indexed from 0"
        )
    workers = sum(len(cluster.get(job, [])) for job in TRAINING_JOBS)
    return ClusterTask(task_type, index, workers, has_chief_job="chief" in cluster)


def _is_address(value: object) -> bool:
    host, _, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    return bool(host) and port.isdigit()


def check_cluster(cfg: TrainConfig, params_file: Path | str = "params.yaml") -> None:
    """The train stage's preflight for `multi_worker`: a usable TF_CONFIG, and a batch that
    splits evenly between its workers (each takes an equal share of every global batch; an
    uneven split would weigh the images of the smaller shares more in the summed gradient)."""
    if cfg.strategy != "multi_worker":
        return
    workers = tf_config_task().workers
    if cfg.batch_size % workers:
        raise PipelineError(
            f"{params_file}: train.batch_size ({cfg.batch_size}) is not a multiple of the {workers} "
            "workers in TF_CONFIG"
        )


def is_chief(strategy: str) -> bool:
    """Whether this process writes the run's outputs: always, except on non-chief workers."""
    return strategy != "multi_worker" or tf_config_task().is_chief


def checkpoint_folder(strategy: str, folder: Path) -> Path:
    """Where this process keeps its checkpoints. Every worker saves them (TensorFlow's
    multi-worker checkpoints are written by all, each to its own place); non-chief workers use a
    folder beside the chief's, so a shared filesystem never mixes the two and each host resumes
    from its own."""
    if is_chief(strategy):
        return folder
    task = tf_config_task()
    return folder.with_name(f"{folder.name}-{task.type}{task.index}")
