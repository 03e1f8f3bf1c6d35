"""The handwritten digits (1,797 8x8 images, the UCI copy scikit-learn bundles), as 3x32x32 RGB in [0, 1].

Bilinear upsampling 8 -> 32, the grey level copied to three channels, and a fixed stratified split: 1,437 training
and 360 test images. Real data that needs no download and no library beyond numpy: the raw images, their labels and
the split's indices ship with convbench (``data/digits.npz``; source, licence and how it was made in
``data/DIGITS.md``), and the upsampling is one small matrix product. The arrays are bit for bit what
``scipy.ndimage.zoom(order=1, grid_mode=True, mode="nearest")`` of scikit-learn's ``load_digits`` split by
``train_test_split(test_size=0.2, random_state=0, stratify=y)`` gave (tests/datasets/test_digits.py compares them).
"""
from __future__ import annotations

from functools import cache
from importlib.resources import files

import numpy as np

from harness.datasets.base import Dataset

SIZE, SCALE = 8, 4
INFO = {"source": "UCI optical digits (scikit-learn's copy), shipped with convbench", "resize": "bilinear 8->32"}


def load_digits32() -> Dataset:
    with (files("harness.datasets") / "data" / "digits.npz").open("rb") as fh, np.load(fh, allow_pickle=False) as raw:
        images, labels, train, test = (raw[name] for name in ("images", "labels", "train", "test"))
    x = upsample(images.astype(np.float32) / 16.0)
    x = np.repeat(x[:, None, :, :], 3, axis=1)
    y = labels.astype(np.int64)
    return Dataset("digits", np.ascontiguousarray(x[train]), y[train], np.ascontiguousarray(x[test]), y[test], 10,
                   dict(INFO))


@cache
def weights(size: int = SIZE, scale: int = SCALE) -> np.ndarray:
    """The (size*scale, size) matrix of linear interpolation weights: output pixel i samples the input at
    (i + 0.5) / scale - 0.5 (pixel centres aligned, SciPy's grid_mode), clamped to the edge pixels (mode nearest)."""
    at = (np.arange(size * scale) + 0.5) / scale - 0.5
    left = np.floor(at).astype(int)
    frac = at - left
    w = np.zeros((size * scale, size))
    rows = np.arange(size * scale)
    np.add.at(w, (rows, np.clip(left, 0, size - 1)), 1.0 - frac)
    np.add.at(w, (rows, np.clip(left + 1, 0, size - 1)), frac)
    return w


def upsample(images: np.ndarray) -> np.ndarray:
    """(n, 8, 8) -> (n, 32, 32) float32, bilinear. In float64 every product and sum is exact (pixels are multiples
    of 1/16 and weights of 1/8), so the result does not depend on the order of the sums."""
    w = weights(images.shape[-1], SCALE)
    return (w @ images.astype(np.float64) @ w.T).astype(np.float32)
