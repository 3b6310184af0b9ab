"""The lift: nothing below the threshold, the darkening divided out above twice it, and in a
shipped graph only where the exposure gate holds the curves back."""

import keras
import numpy as np
import pytest

from src.errors import PipelineError
from src.evaluate.mixed_light import darken
from src.infer.enhancer import architecture_of
from src.light.compose import with_light
from src.light.network import brighten, build_light_gain, build_shadow_net, gain_from_darkening
from src.model.networks import build_dce_net, inference_model

BAND = (0.12, 0.30)
SCENE = (0.3, 0.5), (0.02, 0.05)  # a region lit from 0.3 to 0.5; a scene when 2 to 5 % of them are


def gain(darkening: float, threshold: float) -> float:
    above = np.array([darkening - threshold], np.float32)
    return float(keras.ops.convert_to_numpy(gain_from_darkening(above))[0])


def test_gain_ignores_darkening_up_to_the_threshold_and_lifts_the_rest():
    assert gain(0.0, 0.5) == 0.0 and gain(0.49, 0.5) == 0.0
    assert gain(1.0, 0.5) == pytest.approx(0.5) and gain(2.3, 0.2) == pytest.approx(2.1)


def test_brighten_undoes_a_shadow_made_in_linear_light():
    rng = np.random.default_rng(0)
    original = (0.1 + 0.8 * rng.random((20, 30, 3))).astype(np.float32)
    weight = np.ones((20, 30))
    shadowed = darken(original, weight, 0.2)
    restored = keras.ops.convert_to_numpy(brighten(shadowed, np.full((20, 30, 1), -np.log(0.2), np.float32)))
    np.testing.assert_allclose(restored, original, atol=1e-4)
    bright = np.full((4, 4, 3), 0.9, np.float32)
    assert keras.ops.convert_to_numpy(brighten(bright, np.full((4, 4, 1), 1.0, np.float32))).max() <= 1.0


def lit_and_plain(
    tmp_path, variant: str = "zero_dce_pp", darkening: float = 1.0
) -> tuple[keras.Model, keras.Model]:
    """A small gated model with the lift (saved and loaded), and the same without it; its
    shadow net predicts `darkening` everywhere."""
    keras.utils.set_random_seed(7)
    model = inference_model(build_dce_net(4, 8, variant), 3 if variant == "zero_dce_pp" else 1, None, BAND)
    net = build_shadow_net(4)
    head = net.get_layer("log_factor")
    head.set_weights([np.zeros_like(head.get_weights()[0]), np.array([darkening], np.float32)])
    lit = with_light(model, build_light_gain(net, 0.4, *SCENE), 4)
    lit.save(tmp_path / "lit.keras")
    return keras.saving.load_model(tmp_path / "lit.keras", compile=False), model


def lit_model(tmp_path, variant: str = "zero_dce_pp", darkening: float = 1.0) -> keras.Model:
    return lit_and_plain(tmp_path, variant, darkening)[0]


def test_a_lit_photo_gets_the_lift_and_a_dark_one_only_the_curves(tmp_path):
    model, plain = lit_and_plain(tmp_path)
    rng = np.random.default_rng(1)
    lit = (0.4 + 0.3 * rng.random((1, 24, 32, 3))).astype(np.float32)
    dark = (0.05 * rng.random((1, 24, 32, 3))).astype(np.float32)
    lifted = keras.ops.convert_to_numpy(model(lit))
    expected = keras.ops.convert_to_numpy(brighten(lit, np.full((1, 24, 32, 1), 1.0 - 0.4, np.float32)))
    np.testing.assert_allclose(lifted, expected, atol=1e-5)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(dark)), keras.ops.convert_to_numpy(plain(dark)), atol=1e-6
    )


def test_a_predicted_darkening_under_the_threshold_leaves_a_lit_photo_bit_for_bit(tmp_path):
    model = lit_model(tmp_path, darkening=0.3)
    lit = (0.4 + 0.3 * np.random.default_rng(2).random((1, 24, 32, 3))).astype(np.float32)
    assert np.array_equal(keras.ops.convert_to_numpy(model(lit)), lit)


def test_the_saved_graph_names_its_lift_and_a_gateless_model_is_refused(tmp_path):
    arch = architecture_of(lit_model(tmp_path, "zero_dce"))
    assert (arch.variant, arch.light_scale, arch.light_threshold, arch.gate_band) == (
        "zero_dce",
        4,
        0.4,
        BAND,
    )
    gateless = inference_model(build_dce_net(4, 8, "zero_dce"), 1)
    with pytest.raises(PipelineError, match=r"model\.exposure_gate"):
        with_light(gateless, build_light_gain(build_shadow_net(4), 0.4, *SCENE), 4)


def test_a_dark_photo_with_a_lit_share_gets_the_lift_and_one_with_a_lamp_the_curves(tmp_path):
    """Its mean is a dark photo's (the exposure gate's full strength), but a share of it is lit like a
    normal photo: the rest is shadow, so the curves, which would brighten the lit part too, stay off.
    One small lit block (a lamp in a night photo) leaves the curves on."""
    model, plain = lit_and_plain(tmp_path)
    image = np.full((1, 48, 64, 3), 0.03, np.float32)
    image[:, :16, :16] = 0.7  # one region of the scene gate's (4 small pixels of the 1/4 image)
    assert image.mean() < BAND[0]
    expected = keras.ops.convert_to_numpy(brighten(image, np.full((1, 48, 64, 1), 1.0 - 0.4, np.float32)))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(image)), expected, atol=1e-5)
    assert np.abs(keras.ops.convert_to_numpy(plain(image)) - expected).max() > 0.05
    lamp = np.full((1, 96, 192, 3), 0.03, np.float32)
    lamp[:, :16, :16] = 0.9  # 1 of the 72 regions: a 1.4 % share, below the share band
    with_lamp = keras.ops.convert_to_numpy(model(lamp))
    np.testing.assert_allclose(with_lamp, keras.ops.convert_to_numpy(plain(lamp)), atol=1e-6)
