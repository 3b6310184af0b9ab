"""The seed every measurement starts from, so runs of one job build the same weights."""

from __future__ import annotations


def keras_seed(seed: int) -> None:
    import keras  # lazy: only worker processes load Keras

    keras.utils.set_random_seed(seed)
