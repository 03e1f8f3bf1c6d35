"""Framework-neutral datasets: float32 NCHW images in [0, 1] and int64 labels, as numpy arrays."""
from __future__ import annotations

from harness.datasets.base import Dataset, cache_dir
from harness.datasets.loader import DATASETS, load_dataset

__all__ = ["Dataset", "load_dataset", "DATASETS", "cache_dir"]
