"""The lift: nothing below the threshold, only darkening beyond the photo's own lit level, and in a
shipped graph only where the exposure gate (read on the lifted photo too) holds the curves back."""

import keras
import numpy as np
import pytest

from src.errors import PipelineError
from src.evaluate.mixed_light import darken
from src.infer.enhancer import architecture_of
from src.light.compose import with_light
from src.light.network import (
    brighten,
    build_light_gain,
    build_shadow_net,
    gain_from_darkening,
    lifted_scene_lit,
    relative_darkening,
)
from src.model.networks import build_dce_net, gate_layer, inference_model
from tests.support.shadow_nets import brightness_net

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


def constant_net(darkening: float) -> keras.Model:
    """A shadow net that predicts `darkening` everywhere."""
    net = build_shadow_net(4)
    head = net.get_layer("log_factor")
    head.set_weights([np.zeros_like(head.get_weights()[0]), np.array([darkening], np.float32)])
    return net


def lit_and_plain(
    tmp_path, variant: str = "zero_dce_pp", net: keras.Model | None = None, quantile: float = 0.25
) -> tuple[keras.Model, keras.Model]:
    """A small gated model with the lift (saved and loaded), and the same without it."""
    keras.utils.set_random_seed(7)
    model = inference_model(build_dce_net(4, 8, variant), 3 if variant == "zero_dce_pp" else 1, None, BAND)
    gain = build_light_gain(net or brightness_net(), 0.4, *SCENE, gate_band=BAND, reference_quantile=quantile)
    with_light(model, gain, 4).save(tmp_path / "lit.keras")
    return keras.saving.load_model(tmp_path / "lit.keras", compile=False), model


def lit_model(tmp_path, variant: str = "zero_dce_pp", net: keras.Model | None = None) -> keras.Model:
    return lit_and_plain(tmp_path, variant, net)[0]


def run(model: keras.Model, image: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(image))


def test_darkening_counts_from_the_photos_own_lit_level():
    even = np.full((1, 16, 16, 1), 1.5, np.float32)
    assert np.array_equal(keras.ops.convert_to_numpy(relative_darkening(even, 0.25)), np.zeros_like(even))
    step = np.full((1, 16, 16, 1), 0.5, np.float32)
    step[:, 8:] = 2.0  # the lower half 1.5 darker than the upper, all of it a little dark
    relative = keras.ops.convert_to_numpy(relative_darkening(step, 0.25))
    np.testing.assert_allclose(relative[:, :8], 0.0)
    np.testing.assert_allclose(relative[:, 8:], 1.5)
    # The median of an image mostly in shadow is the shadow: nothing is lifted.
    assert keras.ops.convert_to_numpy(relative_darkening(np.flip(step, 1)[:, ::-1], 0.75)).max() == 0.0


def test_the_scene_reads_lit_once_the_lift_explains_its_darkness():
    gate = gate_layer(BAND, "lifted")
    dark = np.full((1, 8, 8, 3), 0.1, np.float32)
    lit = np.zeros((1, 1, 1, 1), np.float32)
    none = np.zeros((1, 8, 8, 1), np.float32)
    assert np.array_equal(keras.ops.convert_to_numpy(lifted_scene_lit(dark, none, lit, gate)), lit)
    # Lifted to a mean the gate leaves alone: the curves have nothing left to do.
    lifted = keras.ops.convert_to_numpy(lifted_scene_lit(dark, none + 2.0, lit, gate))
    assert lifted.item() == pytest.approx(1.0)
    partly = keras.ops.convert_to_numpy(lifted_scene_lit(dark, none + 0.3, lit, gate)).item()
    assert 0.0 < partly < 1.0


def test_a_lit_photo_gets_the_lift_in_its_shadow_and_a_dark_one_only_the_curves(tmp_path):
    model, plain = lit_and_plain(tmp_path)
    photo = np.full((1, 24, 32, 3), 0.6, np.float32)
    photo[:, 12:] = 0.15  # the lower half in shadow; the mean is a lit photo's
    out = run(model, photo)
    assert np.array_equal(out[:, :8], photo[:, :8])  # the lit part, away from the border: untouched
    assert out[:, 16:].mean() > photo[:, 16:].mean() + 0.05
    dark = (0.05 * np.random.default_rng(1).random((1, 24, 32, 3))).astype(np.float32)
    np.testing.assert_allclose(run(model, dark), run(plain, dark), atol=1e-6)


def test_an_evenly_dim_photo_or_a_shadow_under_the_threshold_is_left_bit_for_bit(tmp_path):
    photo = (0.4 + 0.3 * np.random.default_rng(2).random((1, 24, 32, 3))).astype(np.float32)
    assert np.array_equal(run(lit_model(tmp_path, net=constant_net(1.5)), photo), photo)
    faint = np.full((1, 24, 32, 3), 0.45, np.float32)
    faint[:, 12:] = 0.36  # darker than the lit part by less than the threshold (log 0.4)
    assert np.array_equal(run(lit_model(tmp_path), faint), faint)


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
        with_light(gateless, build_light_gain(build_shadow_net(4), 0.4, *SCENE, gate_band=BAND), 4)


def test_a_dim_photo_with_a_lit_share_gets_the_lift_and_one_with_a_lamp_the_curves(tmp_path):
    """Its mean is in the exposure gate's band (the curves would act), but a share of it is lit like a
    normal photo: the rest is shadow, so the curves, which would brighten the lit part too, stay off
    and the lift alone brightens the rest. One small lit block (a lamp in a night photo) is below the
    lit level's quantile and the share band: the curves stay on, as without the lift."""
    model, plain = lit_and_plain(tmp_path)
    image = np.full((1, 48, 64, 3), 0.03, np.float32)
    image[:, :, :24] = 0.5  # 3/8 of the frame lit
    assert BAND[0] < image.mean() < BAND[1]
    light = model.get_layer("light_gain")
    gain, lit = light(keras.ops.average_pool(image, 4, 4, padding="same"))
    assert keras.ops.convert_to_numpy(lit).item() == 1.0
    full = keras.ops.image.resize(gain, (48, 64), interpolation="bilinear")
    expected = keras.ops.convert_to_numpy(brighten(image, full))
    np.testing.assert_allclose(run(model, image), expected, atol=1e-5)
    assert expected[:, :, 40:].mean() > 2 * 0.03  # the shadow lifted
    assert np.abs(run(plain, image) - expected).max() > 0.05
    lamp = np.full((1, 96, 192, 3), 0.03, np.float32)
    lamp[:, :16, :16] = 0.9  # 1 of the 72 regions: a 1.4 % share, below the share band
    np.testing.assert_allclose(run(model, lamp), run(plain, lamp), atol=1e-6)
