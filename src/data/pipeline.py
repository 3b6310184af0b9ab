"""tf.data input pipelines: decode once, cache in memory, augment on the fly.

PNG decoding costs more than a training step at small crop sizes, so images are
decoded a single time and kept (as uint8, 0.7 MB per 600×400 image); every epoch
only shuffles, crops and flips. Randomness comes from (seed, epoch), so a resumed
training sees exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def _decode(path: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


def _to_unit(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(image, tf.float32) / 255.0


class TrainingImages:
    """Low-light training images (Zero-DCE needs no ground truth to train)."""

    def __init__(self, paths: Sequence[str], crop_size: int, batch_size: int, seed: int):
        if len(paths) < batch_size:
            raise ValueError(f"{len(paths)} training images are fewer than one batch of {batch_size}")
        self.count = len(paths)
        self.crop_size = crop_size
        self.batch_size = batch_size
        self.seed = seed
        self._decoded = (
            tf.data.Dataset.from_tensor_slices(list(paths)).map(_decode, num_parallel_calls=AUTOTUNE).cache()
        )

    @property
    def steps_per_epoch(self) -> int:
        return self.count // self.batch_size

    def epoch(self, epoch: int) -> tf.data.Dataset:
        """Batches for one epoch: a seeded shuffle, then a random crop and flips per image."""
        rng = np.random.default_rng([self.seed, epoch])
        crop_seeds = rng.integers(0, 2**31 - 1, size=(self.count, 2), dtype=np.int64)
        shuffle_seed = int(rng.integers(0, 2**31 - 1))
        size = self.crop_size

        def augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
            crop = tf.image.stateless_random_crop(image, [size, size, 3], seed=seed)
            crop = tf.image.stateless_random_flip_left_right(crop, seed=seed + 1)
            crop = tf.image.stateless_random_flip_up_down(crop, seed=seed + 2)
            return _to_unit(crop)

        pairs = tf.data.Dataset.zip(self._decoded, tf.data.Dataset.from_tensor_slices(crop_seeds))
        return (
            pairs.shuffle(self.count, seed=shuffle_seed, reshuffle_each_iteration=False)
            .map(augment, num_parallel_calls=AUTOTUNE, deterministic=True)
            .batch(self.batch_size, drop_remainder=True)
            .prefetch(AUTOTUNE)
        )


def paired_images(low_paths: Sequence[str], high_paths: Sequence[str]) -> tf.data.Dataset:
    """(low, high) float pairs at full resolution, one per batch, decoded once and cached.

    Batches of one because a user's validation set may mix image sizes.
    """
    if len(low_paths) != len(high_paths):
        raise ValueError("low and high path lists differ in length")
    paths = tf.data.Dataset.from_tensor_slices((list(low_paths), list(high_paths)))
    pairs = paths.map(lambda lo, hi: (_decode(lo), _decode(hi)), num_parallel_calls=AUTOTUNE).cache()
    return pairs.map(lambda lo, hi: (_to_unit(lo)[None], _to_unit(hi)[None])).prefetch(AUTOTUNE)
