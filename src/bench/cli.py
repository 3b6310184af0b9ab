"""Speed benchmark: `python -m src.bench` prints a table and writes JSON.

It measures, for each model variant and precision, training throughput (images/s at
the params' crop and batch size, on real training images), inference latency
(median ms after warm-up at 600×400 and 1200×900) and peak memory; and in the same
invocation the plain Keras recipe of `src.bench.keras_io_recipe`, so the printed ratios compare
runs made side by side on one machine in one state. Each measurement runs in its own
process: peak memory is then that measurement's own, and one precision policy can
not leak into the next measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from src.bench.jobs import run_worker, worker
from src.bench.machine_info import machine
from src.bench.plan import SIZES, VARIANTS, Settings, plan, training_paths
from src.bench.report import render, summarise, write_json
from src.config import DEFAULT_PARAMS, PRECISIONS, load_params
from src.errors import PipelineError, cli_entry
from src.quiet_tensorflow import add_verbose_flag


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT") from None
    return width, height


@cli_entry
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m src.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    parser.add_argument("--split", type=Path, default=Path("data/split"), help="train images from train.csv")
    parser.add_argument("--images", type=Path, nargs="*", default=[], help="or these image files/folders")
    parser.add_argument("--train-images", type=int, default=96, help="images per epoch (0: all)")
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--timed-epochs", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10, help="timed inference calls per size")
    parser.add_argument(
        "--reference-repeats", type=int, default=3, help="reference trainings; ratios use the fastest"
    )
    parser.add_argument("--sizes", type=_size, nargs="+", default=list(SIZES), help="WIDTHxHEIGHT ...")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--out", type=Path, default=Path("reports/bench.json"))
    parser.add_argument("--worker-job", help=argparse.SUPPRESS)
    add_verbose_flag(parser)  # read by src.quiet_tensorflow before TensorFlow loads
    args = parser.parse_args(argv)
    if args.worker_job:
        print(json.dumps(worker(json.loads(args.worker_job))))
        return

    params = load_params(args.params)
    paths = training_paths(args.images, args.split, args.train_images)
    if len(paths) < params.train.batch_size:
        raise PipelineError(
            f"bench: {len(paths)} training images are fewer than one batch of {params.train.batch_size}"
        )
    settings = Settings(
        params.train.crop_size,
        params.train.batch_size,
        len(paths),
        args.warmup_epochs,
        args.timed_epochs,
        args.runs,
        params.model.scale_factor,
    )
    jobs = plan(args, settings, paths)
    results = []
    started = time.perf_counter()
    for number, job in enumerate(jobs, 1):
        label = f"{job['kind']} {job['variant']} {job['precision']} {job.get('path', '')}".strip()
        print(f"[{number}/{len(jobs)}] {label} ...", file=sys.stderr, flush=True)
        results.append(run_worker({**job, "sizes": args.sizes}))
    report = {"machine": machine(), "settings": dataclasses.asdict(settings), "results": results}
    report["summary"] = summarise(results)
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(render(report))
    write_json(report, args.out)
    print(f"written {args.out} ({report['seconds']:.0f} s)", file=sys.stderr)
