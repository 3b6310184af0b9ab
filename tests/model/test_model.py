"""DCE-Net's structure and the curve's guarantees."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from src.model.networks import apply_curves, build_dce_net, inference_model, upsample_like, validation_model


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


def test_zero_dce_pp_matches_the_papers_size_and_shares_one_curve_map():
    model = build_dce_net(iterations=8, variant="zero_dce_pp")
    assert model.count_params() == 10_561
    image = np.random.default_rng(2).random((1, 19, 26, 3)).astype(np.float32)
    enhanced, curves = (keras.ops.convert_to_numpy(t) for t in model(image))
    assert enhanced.shape == image.shape and curves.shape == (1, 19, 26, 24)
    np.testing.assert_array_equal(curves[..., :3], curves[..., 21:], "every iteration applies the same map")


@pytest.mark.parametrize("size", [(37, 53), (48, 60), (4, 5), (7, 3), (1, 1)])
def test_upsample_like_samples_as_tf_image_resize(size):
    low = np.random.default_rng(3).random((1, 4, 5, 3)).astype(np.float32)
    small, like = keras.Input((None, None, 3)), keras.Input((None, None, 3))
    resize = keras.Model([small, like], upsample_like(small, like))
    got = resize([low, np.zeros((1, *size, 3), np.float32)])
    np.testing.assert_allclose(got, tf.image.resize(low, size, "bilinear"), atol=1e-6)


def test_zero_dce_pp_inference_estimates_curves_on_the_downscaled_image(tmp_path):
    trained = build_dce_net(iterations=4, filters=8, variant="zero_dce_pp")
    image = np.random.default_rng(4).random((1, 40, 61, 3)).astype(np.float32)
    full = inference_model(trained, scale_factor=1)
    np.testing.assert_allclose(full(image), trained(image)[0], atol=1e-6)
    scaled = inference_model(trained, scale_factor=4)
    assert scaled.get_layer("downscale").pool_size == (4, 4)
    curve_net = trained.get_layer("curve_net")
    small = tf.nn.avg_pool2d(image, 4, 4, "SAME")
    alpha = tf.image.resize(curve_net(small), (40, 61), "bilinear")
    np.testing.assert_allclose(scaled(image), apply_curves(image, alpha, 4), atol=1e-5)
    enhanced, curves = validation_model(trained, 4)(image)
    np.testing.assert_allclose(enhanced, scaled(image), atol=1e-6)
    assert curves.shape == (1, 40, 61, 12)
    scaled.save(tmp_path / "pp.keras")
    reloaded = keras.saving.load_model(tmp_path / "pp.keras", compile=False)
    np.testing.assert_allclose(reloaded(image), scaled(image), atol=1e-6)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="zero_dce_pp"):
        build_dce_net(variant="zero_dce_ppp")
