"""The plain keras-io Zero-DCE baseline: its structure, its quirks (pinned), and its timing helper."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from src.bench.keras_io_recipe import (
    ReferenceZeroDCE,
    build_reference_dce_net,
    illumination_smoothness,
    measure_reference_training,
    reference_dataset,
    spatial_consistency,
)
from src.model import losses
from tests.support.data import FIXTURE_DATASET

RNG = np.random.default_rng(0)
PATHS = sorted(str(p) for p in FIXTURE_DATASET.glob("*/low/*.png"))  # 11 real low-light images


def test_dce_net_has_the_examples_parameter_count():
    assert build_reference_dce_net().count_params() == 79_416


def test_dataset_resizes_every_image_to_unit_squares_and_drops_the_remainder():
    batches = list(reference_dataset(PATHS, 32, 2))
    assert len(batches) == len(PATHS) // 2
    assert all(b.shape == (2, 32, 32, 3) and b.dtype == tf.float32 for b in batches)
    values = np.concatenate([b.numpy().ravel() for b in batches])
    assert values.min() >= 0.0 and values.max() <= 1.0


def test_short_fit_has_finite_losses_and_changes_the_weights():
    model = ReferenceZeroDCE()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = [w.numpy().copy() for w in model.dce_model.trainable_weights]
    history = model.fit(reference_dataset(PATHS[:4], 32, 2), epochs=1, shuffle=False, verbose=0).history
    assert set(history) == {"total", "smoothness", "spatial", "color", "exposure"}
    assert all(np.isfinite(v[-1]) for v in history.values())
    after = model.dce_model.trainable_weights
    assert any(not np.allclose(b, a.numpy()) for b, a in zip(before, after, strict=True))
    assert model(np.full((1, 16, 16, 3), 0.1, np.float32)).shape == (1, 16, 16, 3)


def test_measure_counts_only_the_timed_epochs():
    result = measure_reference_training(PATHS, crop_size=32, batch_size=2, warmup_epochs=1, timed_epochs=2)
    assert result["images"] == 2 * (len(PATHS) // 2) * 2
    assert result["seconds"] > 0 and result["images_per_s"] > 0
    assert result["images_per_s"] == pytest.approx(result["images"] / result["seconds"])
    assert np.isfinite(result["final_loss"])


def test_measure_rejects_fewer_images_than_a_batch():
    with pytest.raises(ValueError, match="fewer than one batch"):
        measure_reference_training(PATHS[:1], crop_size=32, batch_size=2)


def example_smoothness(x: np.ndarray) -> float:
    """The keras-io formula written out: counts from shape[2] and shape[3] of NHWC."""
    b, _, w, c = x.shape
    h_tv = np.sum((x[:, 1:] - x[:, :-1]) ** 2)
    w_tv = np.sum((x[:, :, 1:] - x[:, :, :-1]) ** 2)
    return 2 * (h_tv / ((w - 1) * c) + w_tv / (w * (c - 1))) / b


def test_smoothness_keeps_the_examples_wrong_axes():
    curves = RNG.uniform(-1, 1, (2, 8, 12, 24)).astype(np.float32)
    ours = float(illumination_smoothness(tf.constant(curves)))
    assert ours == pytest.approx(example_smoothness(curves), rel=1e-5)
    assert ours != pytest.approx(float(losses.illumination_smoothness(tf.constant(curves))), rel=1e-2)


def example_spatial(enhanced: np.ndarray, original: np.ndarray) -> float:
    """What the example's 1×3, 3-output kernels amount to, per 4×4 region (zero-padded)."""

    def regions(image: np.ndarray) -> np.ndarray:
        grey = image.mean(axis=-1)
        h, w = grey.shape[0] // 4, grey.shape[1] // 4
        return grey[: 4 * h, : 4 * w].reshape(h, 4, w, 4).mean(axis=(1, 3))

    y, i = regions(enhanced), regions(original)
    d = i - y
    padded = np.pad(d, ((0, 0), (1, 1)))
    left, right = d - padded[:, :-2], d - padded[:, 2:]
    return float(np.mean((4 * d**2 + left**2 + right**2) / 3))


def test_spatial_keeps_the_examples_kernels():
    original = RNG.random((16, 20, 3)).astype(np.float32)
    enhanced = RNG.random((16, 20, 3)).astype(np.float32)
    ours = float(spatial_consistency(tf.constant(enhanced[None]), tf.constant(original[None])))
    assert ours == pytest.approx(example_spatial(enhanced, original), rel=1e-5)
