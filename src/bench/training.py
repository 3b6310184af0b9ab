"""Training throughput: our trainer, and the keras-io recipe on the same images and settings."""

from __future__ import annotations

import time

from src.config import Params


def measure_training(params: Params, paths: list[str], warmup_epochs: int, timed_epochs: int) -> dict:
    """Our trainer's steady-state images/s (after warm-up epochs that trace the step and
    fill the decode cache), the share of that time spent waiting for input, and how
    fast the input pipeline alone delivers batches."""
    # Lazy: each measurement runs in a worker process of its own (TensorFlow, set up there).
    from src import runtime
    from src.data.pipeline import TrainingImages
    from src.train.loop import train_epoch
    from src.train.trainer import Trainer

    runtime.configure(params.train)
    trainer = Trainer(params)
    cfg = params.train
    images = TrainingImages(paths, cfg.crop_size, cfg.batch_size, cfg.seed)
    for epoch in range(warmup_epochs):
        train_epoch(trainer, images, epoch, desc="warm-up")
    runs = [train_epoch(trainer, images, warmup_epochs + e, desc="timed") for e in range(timed_epochs)]
    seconds = sum(r.seconds for r in runs)
    count = sum(len(r.losses) for r in runs) * cfg.batch_size
    started = time.perf_counter()
    delivered = 0
    for epoch in range(timed_epochs):
        for batch in images.epoch(100 + epoch):
            delivered += int(batch.shape[0])
    pipeline_seconds = time.perf_counter() - started
    return {
        "images_per_s": round(count / seconds, 2),
        "images": count,
        "seconds": round(seconds, 2),
        "input_wait_fraction": round(sum(r.input_wait_seconds for r in runs) / seconds, 4),
        "pipeline_images_per_s": round(delivered / pipeline_seconds, 1),
    }


def measure_reference(params: Params, paths: list[str], warmup_epochs: int, timed_epochs: int) -> dict:
    import keras  # lazy: worker only, as TensorFlow below

    from src.bench.keras_io_recipe import measure_reference_training

    keras.utils.set_random_seed(params.train.seed)  # runs of one job build the same weights
    result = measure_reference_training(
        paths,
        params.train.crop_size,
        params.train.batch_size,
        warmup_epochs,
        timed_epochs,
        params.train.learning_rate,
    )
    return {k: round(float(v), 4) for k, v in result.items()}
