"""The shadow lift in tiles: its gain map comes from the whole photo, so a photo larger than a
tile gets the pixels of one whole pass, from the command line and from the server alike."""

import io

import keras
import numpy as np
import pytest
from PIL import Image

from src.infer.enhance import main
from src.infer.enhancer import Enhancer
from src.infer.photos import read_photo
from src.infer.tiling import enhance_tiled
from src.light.compose import with_light
from src.light.network import build_light_gain
from src.model.denoise import denoiser_layer
from src.model.loading import load_keras_model
from src.model.networks import build_dce_net, inference_model
from tests.support.shadow_nets import brightness_net

BAND = (0.12, 0.30)
SCENE = (0.3, 0.5), (0.02, 0.05)  # a region lit from 0.3 to 0.5; a scene when 2 to 5 % of them are


def lit_model(path, variant: str) -> str:
    """A gated model with the lift, whose shadow net reads darkening from brightness."""
    keras.utils.set_random_seed(5)
    scale = 5 if variant == "zero_dce_pp" else 1
    model = inference_model(build_dce_net(4, 8, variant), scale, denoiser_layer(0.05, 0.2, 1.0), BAND)
    gain = build_light_gain(brightness_net(0.6), 0.3, *SCENE, gate_band=BAND, reference_quantile=0.25)
    with_light(model, gain, 4).save(path)
    return str(path)


def half_lit(height: int, width: int) -> np.ndarray:
    """A lit photo (mean above the gate's band) whose left part is in shadow, with noise."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, width)[None, :, None]
    light = 40 + 160 / (1 + np.exp(-(x - 0.35) / 0.05))
    return np.clip(light + rng.integers(0, 30, (height, width, 3)), 0, 255).astype(np.uint8)


def to8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.int32)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["zero_dce_pp", "zero_dce"])
def test_a_lit_photo_in_tiles_equals_the_whole_pass_from_cli_and_server(tmp_path, variant):
    from src.infer.image_model import enhance_file, serving_photos

    model_path = lit_model(tmp_path / "lit.keras", variant)
    rgb = half_lit(203, 561)  # wider than the server's 512 px tile; no side a multiple of the scales
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    assert (
        main(
            [str(tmp_path / "photo.png"), "-o", str(tmp_path / "out"), "--model", model_path, "--tile", "96"]
        )
        == 0
    )
    written = np.asarray(Image.open(tmp_path / "out" / "photo.png")).astype(np.int32)
    enhancer = Enhancer(load_keras_model(model_path))
    image = rgb.astype(np.float32) / 255
    strength = enhancer.strength_of(image)
    assert strength == 0.0, "lit: the gate leaves it to the lift"
    whole = enhancer(image, strength)
    assert np.abs(whole - image).max() > 0.1, "the lift acts on this photo"
    assert np.abs(written - to8(whole)).max() <= 1
    naive = enhance_tiled(lambda part: enhancer(part, strength), image, 96, 32)
    assert np.abs(to8(naive) - to8(whole)).max() > 2, "tiles judging their own shadows would differ"
    photos = serving_photos(enhancer)
    assert photos.tiles(read_photo(tmp_path / "photo.png")) > 1
    served = enhance_file(photos, (tmp_path / "photo.png").read_bytes())
    assert np.abs(np.asarray(Image.open(io.BytesIO(served))).astype(np.int32) - to8(whole)).max() <= 1
