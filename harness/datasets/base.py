"""The Dataset record and the name -> loader table."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import ConvbenchError
from harness.registry import unknown_name


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    info: dict[str, object] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


DATASETS = ("digits", "cifar10", "synthetic")


def cache_dir() -> Path:
    """Where datasets are looked for and kept: $CONVBENCH_DATA, else ~/.cache/convbench."""
    return Path(os.environ.get("CONVBENCH_DATA") or Path.home() / ".cache" / "convbench")


def load_dataset(name: str, *, data_dir: str | Path | None = None, shape: tuple[int, int, int] = (3, 32, 32),
                 num_classes: int = 10, seed: int = 0, synthetic_size: tuple[int, int] = (512, 256),
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
