"""Synthetic shadows: seeded, smooth, within their factor range, and sometimes absent."""

import numpy as np

from src.light.shadows import shadow_log_field, shadow_weight

FACTORS = (0.03, 0.6)


def fields(seed: int, count: int = 200) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [shadow_log_field(40, 60, FACTORS, rng) for _ in range(count)]


def test_the_same_seed_gives_the_same_shadows_and_another_seed_others():
    assert all(np.array_equal(a, b) for a, b in zip(fields(1, 20), fields(1, 20), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(fields(1, 20), fields(2, 20), strict=True))


def test_fields_only_darken_and_never_below_the_deepest_factor():
    for field in fields(3):
        assert field.max() <= 0.0
        assert field.min() >= np.log(FACTORS[0]) - 1e-9


def test_about_a_quarter_of_the_examples_have_no_shadow_and_the_rest_a_real_one():
    deepest = np.array([field.min() for field in fields(4, 400)])
    untouched = float(np.mean(deepest == 0.0))
    assert 0.18 < untouched < 0.32, untouched
    shadowed = deepest[deepest < 0]
    # Log-uniform factors: both faint and deep shadows occur.
    assert shadowed.max() > np.log(0.45) and shadowed.min() < np.log(0.05)


def test_weights_are_smooth_so_no_edge_is_invented():
    rng = np.random.default_rng(5)
    for _ in range(100):
        weight = shadow_weight(80, 120, rng)
        assert weight.min() >= 0.0 and weight.max() <= 1.0
        steps = max(np.abs(np.diff(weight, axis=0)).max(), np.abs(np.diff(weight, axis=1)).max())
        assert steps < 0.5, "a shadow's border spreads over several pixels"
