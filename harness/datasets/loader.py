"""The name -> loader table: each dataset's module is imported only when that dataset is asked for."""
from __future__ import annotations

from pathlib import Path

from harness.datasets.base import Dataset
from harness.errors import ConvbenchError
from harness.registry import unknown_name

DATASETS = ("digits", "cifar10", "synthetic")
SYNTHETIC_SIZE = (512, 256)   # (train, test) images of a train-mode cell's synthetic set


def load_dataset(name: str, *, data_dir: str | Path | None = None, shape: tuple[int, int, int] = (3, 32, 32),
                 num_classes: int = 10, seed: int = 0, synthetic_size: tuple[int, int] = SYNTHETIC_SIZE,
                 checksums_off: bool = False) -> Dataset:
    """Loads ``name``. ``shape``, ``num_classes`` and ``synthetic_size`` (train, test) shape the
    synthetic set only; the real sets have their own."""
    if name == "digits":
        from harness.datasets.digits import load_digits32
        return load_digits32()
    if name == "cifar10":
        from harness.datasets.cifar10 import OFFICIAL_MD5, load_cifar10
        return load_cifar10(data_dir, checksums=None if checksums_off else OFFICIAL_MD5)
    if name == "synthetic":
        from harness.datasets.synthetic import make_synthetic
        return make_synthetic(shape, num_classes, seed, *synthetic_size)
    raise ConvbenchError(unknown_name("dataset", name, DATASETS))
