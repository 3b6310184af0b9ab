"""The fast inference path gives what the saved graph gives, for both variants."""

import keras
import numpy as np
import pytest
from keras import layers

from src.errors import PipelineError
from src.infer.enhancer import Architecture, Enhancer, architecture_of
from src.model.networks import build_dce_net, inference_model


def saved(tmp_path, variant: str, scale: int, iterations: int = 4, filters: int = 8) -> keras.Model:
    """A small model of the variant, through a .keras file as users get it."""
    keras.utils.set_random_seed(3)
    model = inference_model(build_dce_net(iterations, filters, variant), scale)
    model.save(tmp_path / "m.keras")
    return keras.saving.load_model(tmp_path / "m.keras", compile=False)


@pytest.mark.parametrize(
    ("variant", "scale", "expected"),
    [
        ("zero_dce", 1, Architecture("zero_dce", 4, 8, 1)),
        ("zero_dce_pp", 1, Architecture("zero_dce_pp", 4, 8, 1)),
        ("zero_dce_pp", 5, Architecture("zero_dce_pp", 4, 8, 5)),
    ],
)
def test_architecture_is_read_back_from_a_saved_graph(tmp_path, variant, scale, expected):
    assert architecture_of(saved(tmp_path, variant, scale)) == expected


@pytest.mark.parametrize(("variant", "scale"), [("zero_dce", 1), ("zero_dce_pp", 1), ("zero_dce_pp", 5)])
@pytest.mark.parametrize("size", [(40, 60), (33, 71)])
def test_fused_float32_matches_the_saved_graph(tmp_path, variant, scale, size):
    model = saved(tmp_path, variant, scale)
    image = np.random.default_rng(5).random((*size, 3)).astype(np.float32) * 0.5
    expected = keras.ops.convert_to_numpy(model(image[None]))[0]
    fast = Enhancer(model)
    np.testing.assert_allclose(fast(image), expected, atol=2e-6)
    np.testing.assert_allclose(Enhancer(model, fused=False)(image), expected, atol=1e-6)


def test_bfloat16_path_stays_close_to_float32(tmp_path):
    model = saved(tmp_path, "zero_dce", 1)
    image = np.random.default_rng(6).random((48, 64, 3)).astype(np.float32) * 0.5
    fast = Enhancer(model, "mixed_bfloat16")
    assert fast.parity_max_abs <= 0.05
    difference = np.abs(fast(image) - Enhancer(model)(image))
    assert 0 < difference.max() <= 0.05, "bf16 convolutions change the curves a little, not a lot"


def test_tiles_are_exact_only_without_downscaling(tmp_path):
    assert Enhancer(saved(tmp_path, "zero_dce", 1)).exact_in_tiles
    assert not Enhancer(saved(tmp_path, "zero_dce_pp", 4)).exact_in_tiles


def test_a_foreign_model_runs_plain_but_is_refused_by_the_fast_path():
    image = keras.Input((None, None, 3))
    output = layers.Conv2D(3, 3, padding="same", activation="sigmoid")(image)
    foreign = keras.Model(image, output, name="other")
    rgb = np.full((8, 8, 3), 0.2, np.float32)
    assert Enhancer(foreign, fused=False)(rgb).shape == (8, 8, 3)
    with pytest.raises(PipelineError, match="not a Zero-DCE"):
        Enhancer(foreign)
    with pytest.raises(PipelineError, match="precision"):
        Enhancer(foreign, precision="float16")
