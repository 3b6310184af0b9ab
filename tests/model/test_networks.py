"""DCE-Net's structure and the curve's guarantees."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from src.config import load_params
from src.model.networks import apply_curves, build_dce_net, inference_model, upsample_like, validation_model
from tests.support.data import REPO_ROOT


def as_numpy(tensor) -> np.ndarray:
    return keras.ops.convert_to_numpy(tensor)


@pytest.mark.parametrize(("variant", "documented"), [("zero_dce", 79_416), ("zero_dce_pp", 10_561)])
def test_parameter_counts_at_the_configured_size_are_the_documented_ones(variant, documented):
    params_text = (REPO_ROOT / "params.yaml").read_text()
    assert re.search(rf"{variant}: .*\({documented:,} parameters\)", params_text), "params.yaml says so"
    model = load_params(REPO_ROOT / "params.yaml").model
    assert build_dce_net(model.iterations, model.filters, variant).count_params() == documented


def inbound(node: object) -> list[str]:
    """The layers feeding a layer, in order, from the `keras_history` of its saved config."""
    if isinstance(node, dict):
        config = node.get("config")
        if isinstance(config, dict) and "keras_history" in config:
            return [config["keras_history"][0]]
        node = list(node.values())
    if isinstance(node, list | tuple):
        return [name for value in node for name in inbound(value)]
    return []


def test_dce_net_has_the_papers_seven_layers_and_symmetric_skips():
    model = build_dce_net()
    wiring = {layer["name"]: inbound(layer["inbound_nodes"]) for layer in model.get_config()["layers"]}
    expected = {
        "skip_3_4": ["conv3", "conv4"],
        "skip_2_5": ["conv2", "conv5"],
        "skip_1_6": ["conv1", "conv6"],
        "conv5": ["skip_3_4"],
        "conv6": ["skip_2_5"],
        "conv7": ["skip_1_6"],
    }
    assert {name: wiring[name] for name in expected} == expected
    counts = {layer.name: layer.count_params() for layer in model.layers if layer.count_params()}

    def conv(inputs: int, outputs: int) -> int:
        return 3 * 3 * inputs * outputs + outputs  # 3x3 kernels and a bias

    # conv5..conv7 read a skip: their own input concatenated with an earlier layer's, 64 channels.
    assert counts == {
        "conv1": conv(3, 32),
        **{f"conv{i}": conv(32, 32) for i in (2, 3, 4)},
        "conv5": conv(64, 32),
        "conv6": conv(64, 32),
        "conv7": conv(64, 3 * 8),
    }


def test_the_network_applies_its_own_curve_maps_to_an_image_of_any_size():
    model = build_dce_net(iterations=8)
    image = np.random.default_rng(0).random((1, 17, 23, 3)).astype(np.float32)
    image[0, 0, 0], image[0, -1, -1] = 0.0, 1.0
    enhanced, curves = (as_numpy(t) for t in model(image))
    assert enhanced.shape == (1, 17, 23, 3)
    assert curves.shape == (1, 17, 23, 24), "one RGB map per iteration"
    assert curves.std() > 0 and np.abs(curves).max() <= 1.0, "per-pixel tanh maps"
    np.testing.assert_allclose(enhanced, as_numpy(apply_curves(image, curves, 8)), atol=1e-6)
    assert enhanced.min() >= 0.0 and enhanced.max() <= 1.0
    np.testing.assert_allclose(enhanced[0, 0, 0], 0.0, atol=1e-6)  # black and white are fixed points
    np.testing.assert_allclose(enhanced[0, -1, -1], 1.0, atol=1e-6)


def test_saturated_curve_maps_still_keep_the_output_in_unit_range():
    model = build_dce_net(iterations=8)
    conv7 = model.get_layer("conv7")
    kernel, bias = conv7.get_weights()
    conv7.set_weights([kernel * 1e4, bias])  # tanh at ±1 nearly everywhere: the strongest curves
    image = np.random.default_rng(5).random((2, 16, 16, 3)).astype(np.float32)
    enhanced, curves = (as_numpy(t) for t in model(image))
    assert np.mean(np.abs(curves) > 0.99) > 0.9 and curves.min() < -0.99 and curves.max() > 0.99
    assert enhanced.min() >= 0.0 and enhanced.max() <= 1.0


def test_a_zero_curve_is_the_identity():
    x = np.random.default_rng(6).random((1, 5, 7, 3)).astype(np.float32)
    for channels in (24, 3):  # one map per iteration (Zero-DCE) or one shared map (Zero-DCE++)
        zero = np.zeros((1, 5, 7, channels), np.float32)
        np.testing.assert_array_equal(as_numpy(apply_curves(x, zero, 8)), x)


@pytest.mark.parametrize("alpha", [-1.0, -0.5, 0.0, 0.3, 1.0])
def test_curve_keeps_range_and_order(alpha):
    x = np.linspace(0.0, 1.0, 101, dtype=np.float32).reshape(1, 1, 101, 1).repeat(3, axis=-1)
    curves = np.full((1, 1, 101, 24), alpha, np.float32)
    y = keras.ops.convert_to_numpy(apply_curves(x, curves, 8))
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert np.all(np.diff(y[0, 0, :, 0]) >= -1e-7), "LE must be monotonic in the input"
    assert y[0, 0, 0, 0] == pytest.approx(0.0) and y[0, 0, -1, 0] == pytest.approx(1.0)


def test_each_iteration_applies_its_own_curve_map():
    x = np.linspace(0.05, 0.95, 12, dtype=np.float32).reshape(1, 1, 12, 1).repeat(3, axis=-1)
    for iteration in range(8):
        curves = np.zeros((1, 1, 12, 24), np.float32)
        curves[..., 3 * iteration : 3 * iteration + 3] = -1.0  # this iteration alone: LE(x) = 2x - x²
        np.testing.assert_allclose(as_numpy(apply_curves(x, curves, 8)), 2 * x - x**2, rtol=1e-6)


def test_negative_alpha_brightens_positive_darkens_and_stronger_curves_move_further():
    """LE(x) = x + α(x² − x), the Keras example's sign: x² − x < 0 inside (0, 1), so α < 0 raises
    dark pixels (the paper writes x + αx(1 − x), where α > 0 does)."""
    x = np.full((1, 2, 2, 3), 0.2, np.float32)

    def curve(alpha: float, iterations: int = 8) -> np.ndarray:
        return as_numpy(apply_curves(x, np.full((1, 2, 2, 3 * iterations), alpha, np.float32), iterations))

    np.testing.assert_allclose(curve(-0.8, iterations=1), 0.2 + 0.8 * 0.2 * 0.8, rtol=1e-6)
    assert (curve(-0.8) > x).all() and (curve(0.8) < x).all()
    brightness = [float(curve(alpha).mean()) for alpha in (-1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0)]
    assert brightness == sorted(brightness, reverse=True) and len(set(brightness)) == len(brightness)
    assert curve(-1.0).mean() > 0.9, "eight full-strength iterations lift 0.2 close to white"


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
