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
        """Zero-pad by ``pad`` pixels, crop each image at its offset, flip the flagged ones (the crops are exact
        copies, so this equals any per-image implementation bit for bit). ``layout="nhwc"``: the same crops of
        (n, h, w, c) images, returned in that layout."""
        return self.take(padded_pair(images, pad, layout), np.arange(len(images)), pad, layout)

    def take(self, pair: np.ndarray, index: np.ndarray, pad: int = PAD, layout: str = "nchw") -> np.ndarray:
        """The crops of images ``index`` of a set padded once (``padded_pair``: the padded images and their
        mirror images), equal to ``apply(images[index])``: one gather of crop windows, and no flip pass (a
        flipped crop is the mirror image's crop at offset ``2 pad - dx``). Each window's rows are contiguous
        runs (w floats; NHWC: w * c), which numpy copies fast."""
        dx = np.where(self.flip, 2 * pad - self.dx, self.dx)
        side = self.flip.astype(np.intp)
        if layout == "nhwc":
            _, n, hp, wp, c = pair.shape
            h, w = hp - 2 * pad, wp - 2 * pad
            rows = pair.reshape(2, n, hp, wp * c)   # a pixel row as one run: a crop row is w * c floats at dx * c
            windows = sliding_window_view(rows, (h, w * c), axis=(2, 3))   # (2, n, 2 pad + 1, ..., h, w c)
            return windows[side, index, self.dy, dx * c].reshape(len(index), h, w, c)
        h, w = pair.shape[3] - 2 * pad, pair.shape[4] - 2 * pad
        windows = sliding_window_view(pair, (h, w), axis=(3, 4))   # (2, n, c, 2 pad + 1, 2 pad + 1, h, w), a view
        return windows[side, index, :, self.dy, dx]                 # (b, c, h, w), a copy


def padded_pair(images: np.ndarray, pad: int = PAD, layout: str = "nchw") -> np.ndarray:
    """(2, n, ...): ``images`` zero-padded by ``pad`` pixels on every side, and the same flipped left to right
    (a copy, 2 x (1 + 2 pad / h)^2 the memory of ``images``: 3.1x for CIFAR's 32 x 32). Made once for a training
    set, every augmented batch is then one gather out of it (``Crops.take``)."""
    spatial = ((pad, pad), (pad, pad))
    padded = np.pad(images, ((0, 0), *spatial, (0, 0)) if layout == "nhwc" else ((0, 0), (0, 0), *spatial))
    return np.stack([padded, padded[:, :, ::-1] if layout == "nhwc" else padded[..., ::-1]])


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
                  shard: tuple[int, int] = (0, 1), layout: str = "nchw",
                  padded: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled full batches (the smaller last batch is dropped: it would retrace compiled steps).

    ``shard=(rank, world)``: this process's contiguous slice of every global batch, gathered and augmented
    alone (the augmentation is drawn for the whole global batch, so the slices together equal it).
    ``layout="nhwc"``: ``x`` is the training set in (n, h, w, c); the batches are the same pixels in that layout.
    ``padded``: ``x`` is the training set's ``padded_pair``, so augmented batches are cropped straight out of it;
    the batches are the same pixels as from the unpadded set."""
    centre = slice(PAD, -PAD)
    for idx, crops in batch_plan(len(y), batch_size, seed, epoch, augment, shard):
        if crops is not None:
            xb = crops.take(x, idx, layout=layout) if padded else crops.apply(x[idx], layout=layout)
        elif padded:
            xb = x[0, idx][:, centre, centre] if layout == "nhwc" else x[0, idx][:, :, centre, centre]
        else:
            xb = x[idx]
        yield np.ascontiguousarray(xb), y[idx]


def test_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every test sample once, in order; the last batch may be smaller."""
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size], y[start:start + batch_size]


def pad_crop_flip(images: np.ndarray, rng: np.random.Generator, pad: int = PAD) -> np.ndarray:
    """Zero-pad by ``pad`` pixels, take a random crop of the original size, flip half horizontally."""
    return Crops.draw(rng, len(images), pad).apply(images, pad)
