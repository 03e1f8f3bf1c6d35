"""The Dataset record and where datasets are kept."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


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


def cache_dir() -> Path:
    """Where datasets are looked for and kept: $CONVBENCH_DATA, else ~/.cache/convbench."""
    return Path(os.environ.get("CONVBENCH_DATA") or Path.home() / ".cache" / "convbench")
