"""scikit-learn's bundled handwritten digits (1,797 8x8 images), as 3x32x32 RGB in [0, 1].

Bilinear upsampling 8 -> 32, the grey level copied to three channels, and a fixed stratified split
(seed 0): 1,437 training and 360 test images. Real data that needs no download.

The prepared arrays are kept in the cache directory (keyed by the scikit-learn and SciPy versions that
made them), so a worker does not import scikit-learn and SciPy for every cell (docs/performance.md: their cost).
"""
from __future__ import annotations

import os
import zipfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

from harness.datasets.base import Dataset, cache_dir

TEST_FRACTION = 0.2
FORMAT = 1  # bump when the preparation below changes
ARRAYS = ("x_train", "y_train", "x_test", "y_test")
INFO = {"source": "sklearn.datasets.load_digits", "resize": "bilinear 8->32"}


def load_digits32() -> Dataset:
    path = cache_dir() / f"digits32-v{FORMAT}-sklearn{version('scikit-learn')}-scipy{version('scipy')}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = [data[name] for name in ARRAYS]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        arrays = prepare()
        keep(path, dict(zip(ARRAYS, arrays)))
    return Dataset("digits", *arrays, 10, dict(INFO))


def prepare() -> list[np.ndarray]:
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    raw = load_digits()
    images = raw.images.astype(np.float32) / 16.0
    big = zoom(images, (1, 4, 4), order=1, grid_mode=True, mode="nearest").clip(0.0, 1.0)
    x = np.repeat(big[:, None, :, :], 3, axis=1).astype(np.float32)
    y = raw.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_FRACTION, random_state=0, stratify=y)
    return [np.ascontiguousarray(x_tr), y_tr, np.ascontiguousarray(x_te), y_te]


def keep(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Best effort and atomic (per-process temp file + rename): a read-only cache only costs time."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
