"""Batches in the same order for every framework, and augmentation done once, in numpy."""
from __future__ import annotations

from typing import Iterator

import numpy as np


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The sample order of one pass: a permutation from ``default_rng([seed, epoch])``."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


def train_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, epoch: int,
                  augment: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled full batches (the smaller last batch is dropped: it would retrace compiled steps)."""
    order = epoch_order(len(x), seed, epoch)
    rng = np.random.default_rng([seed, epoch, 1])
    for start in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[start:start + batch_size]
        xb = x[idx]
        if augment:
            xb = pad_crop_flip(xb, rng)
        yield np.ascontiguousarray(xb), y[idx]


def test_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every test sample once, in order; the last batch may be smaller."""
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size], y[start:start + batch_size]


def pad_crop_flip(images: np.ndarray, rng: np.random.Generator, pad: int = 4) -> np.ndarray:
    """Zero-pad by ``pad`` pixels, take a random crop of the original size, flip half horizontally."""
    n, c, h, w = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dy = rng.integers(0, 2 * pad + 1, n)
    dx = rng.integers(0, 2 * pad + 1, n)
    flip = rng.random(n) < 0.5
    out = np.empty_like(images)
    for i in range(n):
        crop = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop[:, :, ::-1] if flip[i] else crop
    return out
