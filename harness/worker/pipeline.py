"""A cell's input path: how the training loop's batches are made (``InputPath``, chosen once per cell), and made
ahead of the step that needs them (``Prefetcher``: a background thread gathers and augments the next batches,
numpy releasing the GIL in its copies, while the framework runs the current step)."""
from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass
from typing import Any, ContextManager, Generic, Iterator, TypeVar

import numpy as np

from harness.datasets.batches import PAD, batch_plan, padded_pair, train_batches

T = TypeVar("T")
_DONE = object()


class Prefetcher(Generic[T]):
    """Iterates ``source`` in a daemon thread, ``depth`` items ahead. An exception in the source is raised
    in the consumer at the item where it happened; ``close()`` (or leaving a ``with`` block) stops the thread
    when the consumer stops early (a target reached, a diverged loss)."""

    def __init__(self, source: Iterator[T], depth: int = 2) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(source,), daemon=True, name="convbench-prefetch")
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, source: Iterator[T]) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failure(exc))
            return
        self._put(_DONE)

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        item = self._queue.get()
        if item is _DONE:
            self._queue.put(_DONE)  # stays exhausted
            raise StopIteration
        if isinstance(item, _Failure):
            raise item.exc
        return item  # type: ignore[return-value]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> "Prefetcher[T]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def pipelined(native: object) -> bool:
    """True when the plugin's model has the optional PipelinedModel methods."""
    return all(callable(getattr(native, m, None)) for m in ("prepare_batch", "train_step_async", "read_losses"))


def batch_layout(native: object) -> str:
    """"nhwc" when a pipelined model takes NHWC batches (``prepare_nhwc_batch``): the loop then gathers them from
    a channels-last copy of the training set, so no batch is transposed on the way in; otherwise "nchw"."""
    return "nhwc" if pipelined(native) and callable(getattr(native, "prepare_nhwc_batch", None)) else "nchw"


def holds_data(native: object) -> bool:
    """True when a pipelined model can hold the training set itself and gather batches from it by index
    (the optional ``hold_train_set`` and ``gather_batch``)."""
    return pipelined(native) and all(callable(getattr(native, m, None)) for m in ("hold_train_set", "gather_batch"))


@dataclass(frozen=True)
class InputPath:
    """How one cell's batches are made, chosen once before its first epoch (``input_path``).

    ``x``: what the loop gathers batches from: the training set in the model's layout, zero-padded with its
    mirror image once when augmenting (``padded_pair``: each batch's crops and flips are then one gather), empty
    when the model holds the set (``held``: it gathers and augments each batch itself from numpy-drawn indices,
    crops and flips)."""
    x: np.ndarray
    layout: str
    held: bool
    padded: bool

    def host_batches(self, y_train: np.ndarray, batch_size: int, seed: int, epoch: int, augment: bool,
                     shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch's batches as numpy (images, labels), gathered and augmented on the host."""
        return train_batches(self.x, y_train, batch_size, seed, epoch, augment, shard, self.layout, self.padded)

    def model_batches(self, native: Any, y_train: np.ndarray, batch_size: int, seed: int, epoch: int,
                      augment: bool, shard: tuple[int, int] = (0, 1)) -> Iterator[object]:
        """One epoch's batches as a pipelined model takes them: made by the model from indices when it holds
        the training set (``gather_batch``), else gathered and augmented in numpy and handed over."""
        if self.held:
            for idx, crops in batch_plan(len(y_train), batch_size, seed, epoch, augment, shard):
                yield native.gather_batch(idx, crops)
            return
        prepare = native.prepare_nhwc_batch if self.layout == "nhwc" else native.prepare_batch
        for arrays in self.host_batches(y_train, batch_size, seed, epoch, augment, shard):
            yield prepare(*arrays)

    def loop_batches(self, native: Any, y_train: np.ndarray, batch_size: int, seed: int, epoch: int,
                     augment: bool, shard: tuple[int, int] = (0, 1)) -> Iterator[object]:
        """One epoch's batches as the training loop is fed them (``run_epoch(..., prepared=self.held)``): the
        model's own when it holds the set, else numpy (images, labels) that the loop hands over."""
        if self.held:
            return self.model_batches(native, y_train, batch_size, seed, epoch, augment, shard)
        return self.host_batches(y_train, batch_size, seed, epoch, augment, shard)

    def feeding(self, batches: Iterator[Any], prefetch: bool) -> ContextManager[Iterator[Any]]:
        """``batches`` made ahead in a background thread when ``prefetch`` (a GPU cell: the host works while the
        device computes) and the host makes them; inline otherwise (a CPU's cores already run the step)."""
        if prefetch and not self.held:
            return Prefetcher(batches)
        return contextlib.nullcontext(batches)

    def describe(self, native: object) -> str:
        if self.held:
            return f"held by the model: {type(native).__name__}.gather_batch"
        made = "cropped from the set padded and mirrored once" if self.padded else "gathered"
        return f"numpy {self.layout}, {made}, then {'prepare_nhwc_batch' if self.layout == 'nhwc' else 'prepare_batch'}"


def input_path(native: object, x_train: np.ndarray, y_train: np.ndarray, augment: bool) -> InputPath:
    """Gives a model that can hold the training set its copy (``hold_train_set``), else readies the host's:
    transposed once for a model that takes NHWC batches, padded once when augmenting (``padded_pair``)."""
    layout = batch_layout(native)
    x = x_train if layout == "nchw" else np.ascontiguousarray(x_train.transpose(0, 2, 3, 1))
    model: Any = native
    if holds_data(native) and bool(model.hold_train_set(x, y_train, PAD if augment else 0)):
        return InputPath(x[:0], layout, held=True, padded=False)   # the model has its own copy
    if augment:
        return InputPath(padded_pair(x, PAD, layout), layout, held=False, padded=True)
    return InputPath(x, layout, held=False, padded=False)
