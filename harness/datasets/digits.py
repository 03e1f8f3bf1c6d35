"""scikit-learn's bundled handwritten digits (1,797 8x8 images), as 3x32x32 RGB in [0, 1].

Bilinear upsampling 8 -> 32, the grey level copied to three channels, and a fixed stratified split
(seed 0): 1,437 training and 360 test images. Real data that needs no download.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import zoom
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from harness.datasets.base import Dataset

TEST_FRACTION = 0.2


def load_digits32() -> Dataset:
    raw = load_digits()
    images = raw.images.astype(np.float32) / 16.0
    big = zoom(images, (1, 4, 4), order=1, grid_mode=True, mode="nearest").clip(0.0, 1.0)
    x = np.repeat(big[:, None, :, :], 3, axis=1).astype(np.float32)
    y = raw.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_FRACTION, random_state=0, stratify=y)
    return Dataset("digits", np.ascontiguousarray(x_tr), y_tr, np.ascontiguousarray(x_te), y_te, 10,
                   {"source": "sklearn.datasets.load_digits", "resize": "bilinear 8->32"})
