"""The shipped digits: numpy alone prepares them, bit for bit as the earlier SciPy/scikit-learn preparation did."""
from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest

from harness.datasets.digits import load_digits32, upsample


def test_upsampling_is_bilinear_with_centres_aligned_and_edges_clamped():
    img = np.zeros((1, 8, 8), np.float32)
    img[0, 0, 0] = 1.0
    big = upsample(img)[0]
    assert big.shape == (32, 32) and big.dtype == np.float32
    assert big[0, 0] == big[1, 1] == 1.0            # before the first centre: the edge pixel itself
    assert big[2, 2] == 0.875 ** 2 and big[3, 3] == 0.625 ** 2 and big[4, 4] == 0.375 ** 2   # 1/8 steps
    assert big[6:, :].max() == 0.0 and big[:, 6:].max() == 0.0
    ramp = np.tile(np.arange(8, dtype=np.float32) / 16, (1, 8, 1))
    assert np.all(np.diff(upsample(ramp)[0], axis=0) == 0)                       # constant along columns stays so
    assert np.array_equal(upsample(np.full((2, 8, 8), 0.5, np.float32)), np.full((2, 32, 32), 0.5, np.float32))


def test_the_shipped_file_holds_the_images_labels_and_split():
    with (files("harness.datasets") / "data" / "digits.npz").open("rb") as fh, np.load(fh) as raw:
        images, labels, train, test = raw["images"], raw["labels"], raw["train"], raw["test"]
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and images.max() == 16
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    assert (len(train), len(test)) == (1437, 360) and np.bincount(labels[test]).min() >= 35
    assert (files("harness.datasets") / "data" / "DIGITS.md").read_text().count("CC BY 4.0") >= 1


def test_prepared_arrays_equal_scipy_and_scikit_learn_bit_for_bit():
    """The preparation convbench used before shipping the data (scikit-learn's load_digits, SciPy's zoom,
    train_test_split), recomputed here where both are installed (the test extra installs them)."""
    zoom = pytest.importorskip("scipy.ndimage").zoom
    sk_datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.model_selection import train_test_split
    raw = sk_datasets.load_digits()
    images = raw.images.astype(np.float32) / 16.0
    big = zoom(images, (1, 4, 4), order=1, grid_mode=True, mode="nearest").clip(0.0, 1.0)
    x = np.repeat(big[:, None, :, :], 3, axis=1).astype(np.float32)
    y = raw.target.astype(np.int64)
    want = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    d = load_digits32()
    for got, ref in zip((d.x_train, d.x_test, d.y_train, d.y_test), want):
        assert got.dtype == ref.dtype and got.shape == ref.shape and got.tobytes() == ref.tobytes()
    assert d.x_train.flags.c_contiguous and d.x_test.flags.c_contiguous
