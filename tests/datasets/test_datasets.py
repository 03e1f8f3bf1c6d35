"""Datasets: digits, synthetic, the CIFAR-10 reader on good and broken releases, batching."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import extract, make_release

from harness.datasets import load_dataset
from harness.datasets.batches import pad_crop_flip, train_batches
from harness.datasets.batches import test_batches as eval_batches
from harness.datasets.cifar10 import load_cifar10
from harness.errors import ConvbenchError


def test_digits_is_real_fixed_and_cifar_shaped():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.x_train.shape == (1437, 3, 32, 32) and a.x_test.shape == (360, 3, 32, 32)
    assert a.x_train.dtype == np.float32 and 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_train, b.y_train)
    assert np.bincount(a.y_test).min() >= 35  # stratified split
    assert np.array_equal(a.x_train[:, 0], a.x_train[:, 2])  # grey copied to RGB


def test_synthetic_takes_any_shape():
    d = load_dataset("synthetic", shape=(3, 224, 224), num_classes=1000, seed=1, synthetic_size=(4, 2))
    assert d.x_train.shape == (4, 3, 224, 224) and d.y_train.max() < 1000
    assert np.array_equal(d.x_train, load_dataset("synthetic", shape=(3, 224, 224), num_classes=1000, seed=1,
                                                  synthetic_size=(4, 2)).x_train)


def test_unknown_dataset():
    with pytest.raises(ConvbenchError, match="unknown dataset 'cifar' .*did you mean 'cifar10'"):
        load_dataset("cifar")


def test_batches_same_order_for_a_seed_and_drop_last():
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    y = np.arange(10)
    first = [yb.tolist() for _, yb in train_batches(x, y, 3, seed=5, epoch=0)]
    again = [yb.tolist() for _, yb in train_batches(x, y, 3, seed=5, epoch=0)]
    other = [yb.tolist() for _, yb in train_batches(x, y, 3, seed=5, epoch=1)]
    assert first == again != other and len(first) == 3
    assert [len(b) for _, b in eval_batches(x, y, 4)] == [4, 4, 2]


def test_augmentation_pads_crops_and_flips_deterministically():
    imgs = np.random.default_rng(0).random((64, 3, 8, 8), dtype=np.float32)
    a = pad_crop_flip(imgs, np.random.default_rng(1))
    b = pad_crop_flip(imgs, np.random.default_rng(1))
    assert a.shape == imgs.shape and np.array_equal(a, b) and not np.array_equal(a, imgs)
    assert (a == 0).any()  # some zero padding came in


def per_image_pad_crop_flip(images: np.ndarray, rng: np.random.Generator, pad: int = 4) -> np.ndarray:
    """The augmentation as it was first written, image by image: the vectorised one must equal it bit for bit."""
    n, c, h, w = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dy, dx, flip = rng.integers(0, 2 * pad + 1, n), rng.integers(0, 2 * pad + 1, n), rng.random(n) < 0.5
    out = np.empty_like(images)
    for i in range(n):
        crop = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop[:, :, ::-1] if flip[i] else crop
    return out


@pytest.mark.parametrize("shape", [(128, 3, 32, 32), (7, 1, 5, 9), (1, 3, 8, 8)])
def test_vectorised_augmentation_equals_the_per_image_loop(shape):
    imgs = np.random.default_rng(3).random(shape, dtype=np.float32)
    for seed in range(3):
        expected = per_image_pad_crop_flip(imgs, np.random.default_rng(seed))
        got = pad_crop_flip(imgs, np.random.default_rng(seed))
        assert got.dtype == imgs.dtype and got.flags.c_contiguous and np.array_equal(got, expected)


@pytest.mark.parametrize("augment", [False, True])
def test_channels_last_batches_are_the_same_pixels(augment):
    """The loop's NHWC batches (for plugins with prepare_nhwc_batch) are the NCHW batches, transposed, bit for bit:
    same order, same crops, same flips."""
    x = np.random.default_rng(1).random((48, 3, 10, 12), dtype=np.float32)
    y = np.arange(48)
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    for shard in ((0, 1), (1, 2)):
        nchw = list(train_batches(x, y, 16, seed=4, epoch=2, augment=augment, shard=shard))
        nhwc = list(train_batches(x_nhwc, y, 16, seed=4, epoch=2, augment=augment, shard=shard, layout="nhwc"))
        assert len(nchw) == len(nhwc) == 3
        for (xa, ya), (xb, yb) in zip(nchw, nhwc):
            assert xb.flags.c_contiguous and np.array_equal(xb, xa.transpose(0, 2, 3, 1)) and np.array_equal(ya, yb)


def test_shards_together_are_the_global_batches():
    """Each data-parallel rank gathers and augments only its slice; the slices are the global batch's."""
    x = np.random.default_rng(0).random((40, 3, 8, 8), dtype=np.float32)
    y = np.arange(40)
    whole = list(train_batches(x, y, 8, seed=2, epoch=1, augment=True))
    parts = [list(train_batches(x, y, 8, seed=2, epoch=1, augment=True, shard=(r, 2))) for r in range(2)]
    for (xb, yb), (x0, y0), (x1, y1) in zip(whole, *parts):
        assert np.array_equal(np.concatenate([x0, x1]), xb) and np.array_equal(np.concatenate([y0, y1]), yb)


def test_cifar_archive_with_its_checksums(tmp_path):
    sums = make_release(tmp_path)
    d = load_cifar10(tmp_path, checksums=sums)
    assert d.x_train.shape == (100, 3, 32, 32) and d.x_test.shape == (20, 3, 32, 32)
    assert d.info["verified"] is True and d.x_train.max() <= 1.0


def test_cifar_extracted_folder(tmp_path):
    sums = make_release(tmp_path)
    extract(tmp_path)
    assert load_cifar10(tmp_path, checksums=sums).x_train.shape[0] == 100


def test_cifar_official_checksum_refuses_other_archive(tmp_path):
    make_release(tmp_path)
    with pytest.raises(ConvbenchError, match="cifar-10-python.tar.gz.*MD5 .* does not match"):
        load_cifar10(tmp_path)


def test_cifar_truncated_archive_names_the_file(tmp_path):
    make_release(tmp_path)
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ConvbenchError, match="cifar-10-python.tar.gz.*not a readable gzip tar"):
        load_cifar10(tmp_path, checksums=None)


def test_cifar_corrupt_and_missing_batch_name_the_file(tmp_path):
    sums = make_release(tmp_path)
    folder = extract(tmp_path)
    (folder / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(ConvbenchError, match="data_batch_3.*MD5"):
        load_cifar10(tmp_path, checksums=sums)
    with pytest.raises(ConvbenchError, match="data_batch_3 is not a CIFAR-10 python batch"):
        load_cifar10(tmp_path, checksums=None)
    (folder / "data_batch_3").unlink()
    with pytest.raises(ConvbenchError, match="missing: .*data_batch_3"):
        load_cifar10(tmp_path, checksums=None)


def test_cifar_missing_release_and_missing_dir(tmp_path):
    with pytest.raises(ConvbenchError, match="CIFAR-10 not found in"):
        load_cifar10(tmp_path)
    with pytest.raises(ConvbenchError, match="does not exist"):
        load_cifar10(tmp_path / "nope")


def test_cifar_download_verifies_checksum(tmp_path, monkeypatch):
    sums = make_release(tmp_path / "server")
    monkeypatch.setenv("CONVBENCH_DATA", str(tmp_path / "cache"))
    url = (tmp_path / "server" / "cifar-10-python.tar.gz").as_uri()
    assert load_cifar10(checksums=sums, url=url).x_test.shape[0] == 20
    assert (tmp_path / "cache" / "cifar-10-python.tar.gz").exists()
    monkeypatch.setenv("CONVBENCH_DATA", str(tmp_path / "cache2"))
    with pytest.raises(ConvbenchError, match="downloaded .* has MD5"):
        load_cifar10(url=url)
    with pytest.raises(ConvbenchError, match="cannot download CIFAR-10"):
        load_cifar10(url=(tmp_path / "missing.tar.gz").as_uri())


def test_batch_plan_is_what_train_batches_gathers():
    """A plugin gathering from indices (batch_plan) gets the pixels train_batches makes: same draws, any shard."""
    from harness.datasets.batches import batch_plan, train_batches
    rng = np.random.default_rng(5)
    x, y = rng.random((40, 3, 6, 6), dtype=np.float32), rng.integers(0, 10, 40)
    for augment in (False, True):
        for shard in ((0, 1), (1, 2)):
            plan = list(batch_plan(len(x), 8, 7, 2, augment, shard))
            made = list(train_batches(x, y, 8, 7, 2, augment, shard))
            assert len(plan) == len(made) == 5
            for (idx, crops), (xb, yb) in zip(plan, made):
                assert (crops is not None) == augment
                np.testing.assert_array_equal(yb, y[idx])
                np.testing.assert_array_equal(xb, x[idx] if crops is None else crops.apply(x[idx]))


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_crops_from_the_padded_pair_are_the_batch_crops(layout):
    """The loop's fast path (the training set padded and mirrored once, each batch one gather of windows) makes
    the pixels of gathering, padding, cropping and flipping each batch: any layout, shard, non-square images."""
    from harness.datasets.batches import PAD, padded_pair
    rng = np.random.default_rng(8)
    x, y = rng.random((48, 3, 10, 12), dtype=np.float32), rng.integers(0, 10, 48)
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "nhwc" else x
    pair = padded_pair(x, PAD, layout)
    assert pair.shape[:2] == (2, 48)
    for augment in (False, True):
        for shard in ((0, 1), (1, 2)):
            slow = list(train_batches(x, y, 16, 4, 2, augment, shard, layout))
            fast = list(train_batches(pair, y, 16, 4, 2, augment, shard, layout, padded=True))
            assert len(slow) == len(fast) == 3
            for (xa, ya), (xb, yb) in zip(slow, fast):
                assert xb.flags.c_contiguous and xb.shape == xa.shape
                np.testing.assert_array_equal(xb, xa)
                np.testing.assert_array_equal(yb, ya)
