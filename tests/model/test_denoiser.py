"""The zero-reference denoiser: Neighbor2Neighbor's sub-sampler and loss, and what it learns."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from src.infer.tiling import RECEPTIVE_RADIUS
from src.model.neighbor2neighbor import neighbor2neighbor, neighbour_indices, pixel_unshuffle, subsample
from src.model.networks import build_denoiser, receptive_radius


def test_each_pair_is_two_different_4_neighbours_of_one_cell():
    first, second = neighbour_indices(tf.constant([3, 64, 64, 3]), tf.constant([1, 2], tf.int64))
    first, second = first.numpy(), second.numpy()
    assert first.shape == (3, 32, 32)
    rows_a, cols_a = np.divmod(first, 2)
    rows_b, cols_b = np.divmod(second, 2)
    distance = np.abs(rows_a - rows_b) + np.abs(cols_a - cols_b)
    assert (distance == 1).all(), "never the same pixel, never the diagonal"
    assert set(np.unique(first)) == {0, 1, 2, 3}, "every position of the cell is drawn"


def test_subsample_takes_the_named_pixel_of_every_cell():
    image = tf.reshape(tf.range(2 * 4 * 6 * 1, dtype=tf.float32), [2, 4, 6, 1])
    index = tf.fill([2, 2, 3], 3)  # bottom-right of each 2x2 cell
    np.testing.assert_array_equal(subsample(image, index).numpy(), image.numpy()[:, 1::2, 1::2])


def test_the_same_seed_draws_the_same_pairs():
    shape, seed = tf.constant([1, 8, 8, 3]), tf.constant([7, 9], tf.int64)
    a, b = neighbour_indices(shape, seed), neighbour_indices(shape, seed)
    assert all(np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a, b, strict=True))


def test_an_untrained_denoiser_is_the_identity_and_its_reach_fits_the_tile_margin():
    denoiser = build_denoiser(8)
    image = np.random.default_rng(0).random((1, 20, 24, 3)).astype(np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(denoiser([image, image * 0.1])), image)
    assert receptive_radius(2) == RECEPTIVE_RADIUS


def test_trained_from_noisy_images_only_it_removes_noise():
    """No clean image is ever shown: the loss sees noisy crops only. Afterwards the
    output is closer to the (hidden) clean images than the noisy input was."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    clean = np.stack([0.3 + 0.2 * np.sin(6 * xx + k) * np.cos(4 * yy) for k in range(3)], -1)
    clean = np.repeat(clean[None], 8, 0).astype(np.float32)
    denoiser = build_denoiser(16)
    optimizer = keras.optimizers.Adam(2e-3)

    @tf.function
    def step(noisy, seed):
        with tf.GradientTape() as tape:
            loss = neighbor2neighbor(lambda a, o: denoiser([a, o], training=True), noisy, noisy, seed, 1.0)
        grads = tape.gradient(loss["denoise"], denoiser.trainable_variables)
        optimizer.apply_gradients(zip(grads, denoiser.trainable_variables, strict=True))
        return loss["denoise"]

    for i in range(150):
        noisy = clean + rng.normal(0, 0.08, clean.shape).astype(np.float32)
        step(tf.constant(noisy), tf.constant([0, i], tf.int64))
    noisy = clean + rng.normal(0, 0.08, clean.shape).astype(np.float32)
    denoised = keras.ops.convert_to_numpy(denoiser([noisy, noisy]))
    before = np.mean(np.square(noisy - clean))
    after = np.mean(np.square(denoised - clean))
    assert after < 0.6 * before, f"MSE to clean {before:.5f} -> {after:.5f}"


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_loss_terms_are_reported_and_combined(gamma):
    noisy = tf.random.stateless_uniform([2, 16, 16, 3], [1, 1])
    losses = neighbor2neighbor(lambda a, o: a * 0.5, noisy, noisy, tf.constant([0, 0], tf.int64), gamma)
    assert float(losses["denoise"]) == pytest.approx(float(losses["n2n_rec"] + gamma * losses["n2n_reg"]))


def test_the_dilated_denoiser_on_the_image_is_the_plain_one_on_each_sub_image():
    """What makes training on sub-images and deploying on whole images the same net."""
    keras.utils.set_random_seed(1)
    plain, dilated = build_denoiser(8, 1), build_denoiser(8, 2)
    weights = [
        np.random.default_rng(2).normal(0, 0.1, w.shape).astype(np.float32) for w in plain.get_weights()
    ]
    plain.set_weights(weights)
    dilated.set_weights(weights)
    image = tf.random.stateless_uniform([1, 24, 32, 3], [3, 4])
    whole = pixel_unshuffle(dilated([image, image]), 2)
    parts = plain([pixel_unshuffle(image, 2), pixel_unshuffle(image, 2)])
    # Equal away from the border, where the zero padding of the two differs.
    np.testing.assert_allclose(whole.numpy()[:, 6:-6, 6:-6], parts.numpy()[:, 6:-6, 6:-6], atol=1e-5)
