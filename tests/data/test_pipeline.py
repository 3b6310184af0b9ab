"""The tf.data pipelines on the tiny fixture: what a training epoch and a validation pass yield."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from src.data.images import read_rgb
from src.data.pipeline import TrainingImages, paired_images
from tests.support.data import FIXTURE_DATASET

CROP, BATCH = 32, 2
# Four low-light images: two full batches, so an epoch shows every image exactly once.
LOWS = [str(FIXTURE_DATASET / "our485" / "low" / f"{ident}.png") for ident in (2, 18, 39, 52)]
PAIRS = [("eval15", 1), ("our485", 2), ("eval15", 146)]
# The flips an augmented crop may have had, each its own inverse: (up-down, left-right).
FLIPS = {(False, False): (), (False, True): (1,), (True, False): (0,), (True, True): (0, 1)}


def epoch_crops(images: TrainingImages, epoch: int) -> np.ndarray:
    """Every crop of one epoch, in order, as one float array [count, size, size, 3]."""
    return np.concatenate([batch.numpy() for batch in images.epoch(epoch)])


def locate(crop: np.ndarray, sources: list[np.ndarray]) -> tuple[int, tuple[bool, bool], tuple[int, int]]:
    """Which source image, flips and top-left corner a crop is an exact copy of (uint8 pixels)."""
    pixels = np.rint(crop * 255).astype(np.uint8)
    assert np.array_equal(pixels / np.float32(255), crop), "crop values are not uint8 pixels / 255"
    found = []
    for flips, axes in FLIPS.items():
        window = np.flip(pixels, axis=axes) if axes else pixels
        for index, source in enumerate(sources):
            rows = np.lib.stride_tricks.sliding_window_view(source, window.shape[:2], axis=(0, 1))
            # Narrow by the first row, then confirm the whole window.
            first_rows = np.all(rows[:, :, :, 0, :] == window[0].T, axis=(2, 3))
            for top, left in zip(*np.nonzero(first_rows), strict=True):
                if np.array_equal(source[top : top + len(window), left : left + len(window)], window):
                    found.append((index, flips, (int(top), int(left))))
    assert len(found) == 1, f"a crop should come from exactly one place, found {found}"
    return found[0]


@pytest.fixture(scope="module")
def sources() -> list[np.ndarray]:
    return [read_rgb(path) for path in LOWS]


def test_an_epoch_is_full_batches_of_configured_crops_with_values_in_unit_range() -> None:
    images = TrainingImages(LOWS[:3], CROP, BATCH, seed=0)
    assert images.steps_per_epoch == 1  # 3 images: one batch of 2, the remainder dropped
    batches = [batch.numpy() for batch in images.epoch(0)]
    assert len(batches) == images.steps_per_epoch
    for batch in batches:
        assert batch.shape == (BATCH, CROP, CROP, 3) and batch.dtype == np.float32
        assert batch.min() >= 0.0 and batch.max() <= 1.0
        assert batch.max() > 1.0 / 255, "values must be pixels / 255, not all zero"


def test_every_image_is_cropped_exactly_once_per_epoch_from_its_own_pixels(sources) -> None:
    images = TrainingImages(LOWS, CROP, BATCH, seed=3)
    placements = [[locate(crop, sources) for crop in epoch_crops(images, epoch)] for epoch in range(3)]
    orders = [[index for index, _, _ in placed] for placed in placements]
    for order in orders:
        assert sorted(order) == [0, 1, 2, 3], "a shuffle, not a resample"
    assert len({tuple(order) for order in orders}) > 1, "the order is shuffled anew each epoch"
    every = [p for placed in placements for p in placed]
    assert len({corner for _, _, corner in every}) > 1, "crops are taken at random positions"
    flips = [flip for _, flip, _ in every]
    assert {up_down for up_down, _ in flips} == {True, False}, "crops are randomly flipped up-down"
    assert {left_right for _, left_right in flips} == {True, False}, "and randomly flipped left-right"
    assert placements[0] != placements[1], "each epoch draws new crops"


def test_the_same_seed_gives_the_same_crops_and_another_seed_different_ones() -> None:
    first = epoch_crops(TrainingImages(LOWS, CROP, BATCH, seed=7), 0)
    np.testing.assert_array_equal(epoch_crops(TrainingImages(LOWS, CROP, BATCH, seed=7), 0), first)
    assert not np.array_equal(epoch_crops(TrainingImages(LOWS, CROP, BATCH, seed=8), 0), first)


def test_a_resumed_training_sees_the_batches_an_uninterrupted_one_would_have() -> None:
    uninterrupted = TrainingImages(LOWS, CROP, BATCH, seed=5)
    seen = [epoch_crops(uninterrupted, epoch) for epoch in range(3)]
    resumed = TrainingImages(LOWS, CROP, BATCH, seed=5)  # a new process, starting at epoch 2
    np.testing.assert_array_equal(epoch_crops(resumed, 2), seen[2])
    np.testing.assert_array_equal(epoch_crops(uninterrupted, 1), seen[1], err_msg="a replayed epoch repeats")
    assert not np.array_equal(seen[1], seen[2])


def test_images_are_decoded_once_and_served_from_memory_afterwards(tmp_path) -> None:
    copies = [tmp_path / f"{i}.png" for i in range(len(LOWS))]
    for source, copy in zip(LOWS, copies, strict=True):
        shutil.copyfile(source, copy)
    images = TrainingImages([str(p) for p in copies], CROP, BATCH, seed=1)
    pairs = paired_images([str(copies[0])], [str(copies[1])])
    first, (low, _) = epoch_crops(images, 0), next(iter(pairs))
    for copy in copies:
        copy.unlink()  # from now on only the cache can answer
    assert epoch_crops(images, 1).shape == first.shape
    np.testing.assert_array_equal(epoch_crops(images, 0), first)
    np.testing.assert_array_equal(next(iter(pairs))[0], low)


def test_fewer_images_than_one_batch_are_refused() -> None:
    with pytest.raises(ValueError, match="fewer than one batch of 4"):
        TrainingImages(LOWS[:3], CROP, batch_size=4, seed=0)


def test_validation_pairs_are_whole_images_scaled_to_unit_range_in_the_given_order() -> None:
    lows = [str(FIXTURE_DATASET / subset / "low" / f"{ident}.png") for subset, ident in PAIRS]
    highs = [str(FIXTURE_DATASET / subset / "high" / f"{ident}.png") for subset, ident in PAIRS]
    dataset = paired_images(lows, highs)
    for _ in range(2):  # the second pass comes from the cache, and must be the same
        got = [(low.numpy(), high.numpy()) for low, high in dataset]
        assert len(got) == len(PAIRS)
        for (low, high), low_path, high_path in zip(got, lows, highs, strict=True):
            assert low.shape == (1, 80, 120, 3) and low.dtype == np.float32
            np.testing.assert_array_equal(low[0], read_rgb(low_path) / np.float32(255))
            np.testing.assert_array_equal(high[0], read_rgb(high_path) / np.float32(255))


def test_validation_lists_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        paired_images(LOWS[:2], LOWS[:1])
