"""Random images and labels at any shape and class count (for speed runs)."""
from __future__ import annotations

import numpy as np

from harness.datasets.base import Dataset


def make_synthetic(shape: tuple[int, int, int], num_classes: int, seed: int, n_train: int, n_test: int) -> Dataset:
    rng = np.random.default_rng(seed)
    def images(n: int) -> np.ndarray:
        return rng.random((n, *shape), dtype=np.float32)
    x_tr, x_te = images(n_train), images(n_test)
    y_tr = rng.integers(0, num_classes, n_train, dtype=np.int64)
    y_te = rng.integers(0, num_classes, n_test, dtype=np.int64)
    return Dataset("synthetic", x_tr, y_tr, x_te, y_te, num_classes, {"seed": seed})
