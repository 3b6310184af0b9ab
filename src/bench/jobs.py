"""The measurement subprocesses: one job per fresh process, its result as one JSON line.

Peak memory is then that measurement's own, and one precision policy can not leak into
the next measurement.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import subprocess
import sys

from src.bench.inference import measure_inference
from src.bench.training import measure_reference, measure_training
from src.config import Params, load_params
from src.errors import PipelineError


def peak_rss_mb() -> float:
    """This process's peak resident memory (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _params_for(params: Params, variant: str, precision: str) -> Params:
    model = dataclasses.replace(params.model, variant=variant)
    train = dataclasses.replace(params.train, precision=precision)
    return dataclasses.replace(params, model=model, train=train)


def worker(job: dict) -> dict:
    """One measurement, in this (fresh) process."""
    params = load_params(job["params"])
    kind = job["kind"]
    # The reference job's variant ("reference") labels the Keras example's own model, not a
    # model.variant, which replace() would reject: that job keeps params.yaml's model.
    variant = params.model.variant if kind == "reference_train" else job.get("variant", "zero_dce")
    params = _params_for(params, variant, job.get("precision", "float32"))
    if kind == "train":
        result = measure_training(params, job["paths"], job["warmup_epochs"], job["timed_epochs"])
    elif kind == "reference_train":
        result = measure_reference(params, job["paths"], job["warmup_epochs"], job["timed_epochs"])
    else:
        sizes = [tuple(size) for size in job["sizes"]]
        result = measure_inference(
            params,
            job["variant"],
            job["precision"],
            job["path"],
            job["runs"],
            sizes,
            job.get("denoiser", "none"),
        )
    return {
        **{k: v for k, v in job.items() if k not in ("paths", "params", "sizes")},
        **result,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_worker(job: dict) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "src.bench", "--worker-job", json.dumps(job)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise PipelineError(f"bench: the {job['kind']} measurement of {job.get('variant')} failed: {tail}")
    return json.loads(lines[-1])
