"""The adaptive TV denoiser: the algorithm against skimage's, its gain map, and the saved graph."""

import keras
import numpy as np
import pytest
from skimage.restoration import denoise_tv_chambolle

from src.infer.enhancer import Enhancer, architecture_of
from src.infer.tiling import RECEPTIVE_RADIUS
from src.model.denoise import TV_ITERATIONS, adaptive_tv, denoiser_layer, tv_function
from src.model.networks import build_dce_net, inference_model, receptive_radius


def _noisy(shape=(1, 40, 48, 3), seed=0, level=0.5, sigma=0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(level + sigma * rng.standard_normal(shape), 0, 1).astype(np.float32)


def _opponent(x: np.ndarray) -> np.ndarray:
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    return np.stack([(r + g + b) / np.sqrt(3), (r - b) / np.sqrt(2), (r - 2 * g + b) / np.sqrt(6)], -1)


def _from_opponent(y: np.ndarray) -> np.ndarray:
    basis = np.stack([_opponent(np.eye(3)[i]) for i in range(3)])  # rows: R, G, B in the basis
    return y @ basis.T


def test_with_gain_power_0_it_is_skimage_chambolle_per_opponent_channel():
    """The same iteration as skimage's, at a fixed count: skimage returns the image of its
    last-but-one projection, so its 21 iterations are our 20."""
    image = _noisy()
    ours = keras.ops.convert_to_numpy(adaptive_tv(image, image / 8, 0.05, 0.2, 0.0))[0]
    channels = _opponent(image[0].astype(np.float64))
    theirs = np.stack(
        [
            denoise_tv_chambolle(channels[..., c], weight=w, eps=0, max_num_iter=TV_ITERATIONS + 1)
            for c, w in enumerate((0.05, 0.2, 0.2))
        ],
        -1,
    )
    np.testing.assert_allclose(ours, np.clip(_from_opponent(theirs), 0, 1), atol=2e-5)


def test_pixels_the_curves_lifted_more_are_smoothed_more():
    """The same noise on both halves; the left half was darker in the original, so the curves
    amplified it more and its noise must be removed harder."""
    enhanced = _noisy((1, 40, 80, 3))
    original = enhanced / 4
    original[:, :, :40] = enhanced[:, :, :40] / 16
    out = keras.ops.convert_to_numpy(adaptive_tv(enhanced, original, 0.02, 0.02, 1.0))[0]
    left, right = out[:, 4:36].std(), out[:, 44:76].std()
    assert left < 0.6 * right
    flat = keras.ops.convert_to_numpy(adaptive_tv(enhanced, original, 0.02, 0.02, 0.0))[0]
    assert flat[:, 4:36].std() == pytest.approx(flat[:, 44:76].std(), rel=0.2), "power 0: one weight"


def test_zero_weights_return_the_input():
    image = _noisy()
    out = keras.ops.convert_to_numpy(adaptive_tv(image, image, 0.0, 0.0, 1.0))
    np.testing.assert_allclose(out, image, atol=1e-5)


def test_the_saved_model_carries_its_strengths_and_the_fast_path_agrees(tmp_path):
    keras.utils.set_random_seed(0)
    net = build_dce_net(4, 8, "zero_dce")
    model = inference_model(net, 1, denoiser_layer(0.05, 0.2, 1.0), (0.12, 0.3))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert architecture_of(loaded).denoiser == (0.05, 0.2, 1.0)
    image = _noisy((1, 37, 53, 3), level=0.08, sigma=0.02)
    enhancer = Enhancer(loaded)  # checks the XLA path against the saved graph itself
    np.testing.assert_allclose(enhancer(image[0]), keras.ops.convert_to_numpy(model(image))[0], atol=1e-4)
    compiled = tv_function((0.05, 0.2, 1.0))(image * 4, image).numpy()
    np.testing.assert_allclose(
        compiled, keras.ops.convert_to_numpy(adaptive_tv(image * 4, image, 0.05, 0.2, 1.0)), atol=1e-5
    )


def test_its_reach_fits_the_tile_margin():
    assert receptive_radius(True) == RECEPTIVE_RADIUS
