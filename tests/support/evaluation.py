"""Stand-ins for the evaluation and figure tests: a split table over the fixture and plain
callables in place of the model (the network itself is tested elsewhere)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from tests.support.data import FIXTURE_DATASET


def split_frame(pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """A split table (as read_split returns) over fixture images: (subset, id) per row."""
    return pd.DataFrame(
        [
            {
                "name": f"{subset}/{ident}",
                "subset": subset,
                "split": "test",
                "low": str(FIXTURE_DATASET / subset / "low" / f"{ident}.png"),
                "high": str(FIXTURE_DATASET / subset / "high" / f"{ident}.png"),
            }
            for subset, ident in pairs
        ]
    )


TEST = split_frame([("eval15", "1"), ("eval15", "111"), ("our485", "2"), ("eval15", "146"), ("our485", "18")])


def identity(image: np.ndarray) -> np.ndarray:
    return image


def brighten(image: np.ndarray) -> np.ndarray:
    """A model that only learned "brighten": it blows out well-exposed images."""
    return np.clip(image * 1.8 + 0.1, 0.0, 1.0)


class Counting:
    """A callable that counts its calls, to see how often "the model" runs."""

    def __init__(self, enhance: Callable[[np.ndarray], np.ndarray]):
        self.enhance, self.calls = enhance, 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.enhance(image)
