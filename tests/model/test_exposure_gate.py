"""The exposure gate: dark photos get the full model, lit ones come back unchanged."""

import itertools

import keras
import numpy as np
import pytest

from src.infer.enhancer import Enhancer, architecture_of, gate_band_of
from src.infer.tiling import enhance_tiled
from src.model.denoise import denoiser_layer
from src.model.networks import build_dce_net, gate_layer, gate_strength, inference_model

BAND = (0.12, 0.30)


def strength(brightness: float) -> float:
    image = np.full((1, 8, 8, 3), brightness, np.float32)
    return float(keras.ops.convert_to_numpy(gate_strength(image, gate_layer(BAND))).ravel()[0])


def test_strength_is_full_below_the_band_none_above_and_falls_in_between():
    assert strength(0.05) == 1.0 and strength(0.12) == pytest.approx(1.0)
    assert strength(0.30) == pytest.approx(0.0, abs=1e-6) and strength(0.6) == 0.0
    inside = [strength(b) for b in np.linspace(0.13, 0.29, 9)]
    assert all(1 > a > b > 0 for a, b in itertools.pairwise(inside)), inside


def saved(tmp_path, variant="zero_dce", denoise=True, band=BAND) -> keras.Model:
    keras.utils.set_random_seed(4)
    denoiser = denoiser_layer(0.05, 0.2, 1.0) if denoise else None
    model = inference_model(build_dce_net(4, 8, variant), 1 if variant == "zero_dce" else 3, denoiser, band)
    model.save(tmp_path / "m.keras")
    return keras.saving.load_model(tmp_path / "m.keras", compile=False)


def test_a_lit_photo_comes_back_bit_for_bit_and_a_dark_one_is_changed(tmp_path):
    model = saved(tmp_path)
    rng = np.random.default_rng(2)
    lit = (0.35 + 0.5 * rng.random((30, 40, 3))).astype(np.float32)
    dark = (0.1 * rng.random((30, 40, 3))).astype(np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(lit[None]))[0], lit)
    np.testing.assert_array_equal(Enhancer(model)(lit), lit)
    assert np.abs(Enhancer(model)(dark) - dark).max() > 1e-3


def test_band_and_denoiser_are_read_back_from_the_saved_file(tmp_path):
    arch = architecture_of(saved(tmp_path))
    assert arch.gate_band == pytest.approx(BAND)
    assert arch.denoiser == (0.05, 0.2, 1.0)
    assert gate_band_of(gate_layer((0.2, 0.5))) == pytest.approx((0.2, 0.5))
    plain = architecture_of(saved(tmp_path, denoise=False, band=None))
    assert (plain.denoiser, plain.gate_band) == (None, None)


@pytest.mark.parametrize("variant", ["zero_dce", "zero_dce_pp"])
def test_fast_path_matches_the_saved_graph_with_gate_and_denoiser(tmp_path, variant):
    model = saved(tmp_path, variant)
    image = (np.random.default_rng(5).random((37, 52, 3)) * 0.4).astype(np.float32)  # mean 0.2: in the band
    expected = keras.ops.convert_to_numpy(model(image[None]))[0]
    np.testing.assert_allclose(Enhancer(model)(image), expected, atol=2e-6)


@pytest.mark.slow
def test_tiles_share_the_whole_photos_strength_and_match_a_whole_pass(tmp_path):
    enhancer = Enhancer(saved(tmp_path))
    rng = np.random.default_rng(6)
    image = (rng.random((100, 150, 3)) * 0.1).astype(np.float32)
    image[:, 110:] += 0.5  # one bright strip: a tile there alone would be judged "lit"
    s = enhancer.strength_of(image)
    assert 0 < s < 1
    whole = enhancer(image)
    tiled = enhance_tiled(lambda part: enhancer(part, s), image, tile=48, margin=28)  # reach: 7 + 21 px
    np.testing.assert_allclose(tiled, whole, atol=2e-6)
