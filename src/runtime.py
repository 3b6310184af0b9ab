"""Process-wide TensorFlow settings, which must be made before the first TF op runs."""

from __future__ import annotations

import keras
import tensorflow as tf

from src.config import TrainConfig


def configure(cfg: TrainConfig) -> None:
    """Apply thread count, precision policy and seeds from params.

    Thread settings only take effect before TensorFlow initialises its runtime, so whatever
    trains (the train stage, a tune worker, the bench) calls this before its first op.
    """
    if cfg.threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(cfg.threads, 2))
    keras.mixed_precision.set_global_policy(cfg.precision)
    keras.utils.set_random_seed(cfg.seed)
