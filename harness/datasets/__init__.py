"""Framework-neutral datasets: float32 NCHW images in [0, 1] and int64 labels, as numpy arrays."""
from __future__ import annotations

from harness.datasets.base import DATASETS, Dataset, load_dataset

__all__ = ["Dataset", "load_dataset", "DATASETS"]
