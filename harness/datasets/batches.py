"""Batches in the same order for every framework, and augmentation in numpy, vectorised.

The sample order, crop offsets and flip flags are drawn from ``default_rng([seed, epoch])`` and
``default_rng([seed, epoch, 1])`` for each global batch, whatever applies them, so every framework (and every
data-parallel rank, which takes its contiguous slice) sees the same pixels, bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

PAD = 4


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The sample order of one pass: a permutation from ``default_rng([seed, epoch])``."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


@dataclass(frozen=True)
class Crops:
    """One batch's augmentation: crop offsets into the padded image and horizontal flips, per image."""
    dy: np.ndarray
    dx: np.ndarray
    flip: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, pad: int = PAD) -> "Crops":
        dy = rng.integers(0, 2 * pad + 1, n)
        dx = rng.integers(0, 2 * pad + 1, n)
        return cls(dy, dx, rng.random(n) < 0.5)

    def __getitem__(self, part: slice) -> "Crops":
        return Crops(self.dy[part], self.dx[part], self.flip[part])

    def apply(self, images: np.ndarray, pad: int = PAD, layout: str = "nchw") -> np.ndarray:
        """Zero-pad by ``pad`` pixels, crop each image at its offset, flip the flagged ones: a few whole-batch
        numpy operations (the crops are exact copies, so this equals any per-image implementation bit for bit).
        ``layout="nhwc"``: the same crops of (n, h, w, c) images, returned in that layout."""
        if layout == "nhwc":
            n, h, w, c = images.shape
            padded = np.zeros((n, h + 2 * pad, w + 2 * pad, c), images.dtype)
            padded[:, pad:pad + h, pad:pad + w] = images
            windows = sliding_window_view(padded, (h, w), axis=(1, 2))   # (n, 2 pad + 1, 2 pad + 1, c, h, w)
            out = windows.transpose(0, 1, 2, 4, 5, 3)[np.arange(n), self.dy, self.dx]   # (n, h, w, c), a copy
            out[self.flip] = out[self.flip, :, ::-1]
            return out
        n, c, h, w = images.shape
        padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad), images.dtype)
        padded[:, :, pad:pad + h, pad:pad + w] = images
        windows = sliding_window_view(padded, (h, w), axis=(2, 3))   # (n, c, 2 pad + 1, 2 pad + 1, h, w), a view
        out = windows[np.arange(n), :, self.dy, self.dx]            # (n, c, h, w), a copy
        out[self.flip] = out[self.flip, :, :, ::-1]
        return out


def batch_plan(n: int, batch_size: int, seed: int, epoch: int, augment: bool = False,
               shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[np.ndarray, Crops | None]]:
    """Each full batch of one epoch as (sample indices, crops or None): what ``train_batches`` gathers and
    applies, drawn the same way, for a plugin that gathers the pixels itself from a training set it holds.
    ``shard=(rank, world)``: this process's contiguous slice of each global batch (crops sliced alike)."""
    rank, world = shard
    order = epoch_order(n, seed, epoch)
    rng = np.random.default_rng([seed, epoch, 1])
    lo, hi = rank * batch_size // world, (rank + 1) * batch_size // world
    for start in range(0, n - batch_size + 1, batch_size):
        idx = order[start:start + batch_size][lo:hi]
        yield idx, (Crops.draw(rng, batch_size)[lo:hi] if augment else None)


def train_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, epoch: int, augment: bool = False,
                  shard: tuple[int, int] = (0, 1), layout: str = "nchw") -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled full batches (the smaller last batch is dropped: it would retrace compiled steps).

    ``shard=(rank, world)``: this process's contiguous slice of every global batch, gathered and augmented
    alone (the augmentation is drawn for the whole global batch, so the slices together equal it).
    ``layout="nhwc"``: ``x`` is the training set in (n, h, w, c); the batches are the same pixels in that layout."""
    for idx, crops in batch_plan(len(x), batch_size, seed, epoch, augment, shard):
        xb = x[idx] if crops is None else crops.apply(x[idx], layout=layout)
        yield np.ascontiguousarray(xb), y[idx]


def test_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every test sample once, in order; the last batch may be smaller."""
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size], y[start:start + batch_size]


def pad_crop_flip(images: np.ndarray, rng: np.random.Generator, pad: int = PAD) -> np.ndarray:
    """Zero-pad by ``pad`` pixels, take a random crop of the original size, flip half horizontally."""
    return Crops.draw(rng, len(images), pad).apply(images, pad)
