"""DCE-Net's structure and the curve's guarantees."""

import keras
import numpy as np
import pytest

from src.model import apply_curves, build_dce_net, inference_model


def test_parameter_count_matches_the_paper():
    assert build_dce_net().count_params() == 79_416


def test_outputs_any_size_and_curve_maps_per_iteration():
    model = build_dce_net(iterations=8)
    enhanced, curves = model(np.random.default_rng(0).random((1, 17, 23, 3)).astype(np.float32))
    assert enhanced.shape == (1, 17, 23, 3)
    assert curves.shape == (1, 17, 23, 24)


@pytest.mark.parametrize("alpha", [-1.0, -0.5, 0.0, 0.3, 1.0])
def test_curve_keeps_range_and_order(alpha):
    x = np.linspace(0.0, 1.0, 101, dtype=np.float32).reshape(1, 1, 101, 1).repeat(3, axis=-1)
    curves = np.full((1, 1, 101, 24), alpha, np.float32)
    y = keras.ops.convert_to_numpy(apply_curves(x, curves, 8))
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert np.all(np.diff(y[0, 0, :, 0]) >= -1e-7), "LE must be monotonic in the input"
    assert y[0, 0, 0, 0] == pytest.approx(0.0) and y[0, 0, -1, 0] == pytest.approx(1.0)


def test_positive_alpha_brightens():
    x = np.full((1, 2, 2, 3), 0.2, np.float32)
    y = keras.ops.convert_to_numpy(apply_curves(x, np.full((1, 2, 2, 24), -0.8, np.float32), 8))
    assert (y > x).all(), "α < 0 raises dark pixels: x + α(x² − x) with x² − x < 0"


def test_saved_inference_model_reloads_without_custom_objects(tmp_path):
    model = inference_model(build_dce_net())
    image = np.random.default_rng(1).random((1, 12, 20, 3)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(reloaded(image), model(image), atol=1e-6)
