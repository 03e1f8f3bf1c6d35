"""What a new run must satisfy before its folder is made and any cell starts: data that fits every model, batches
that split over the data-parallel ranks and fill at least one step, a readable ``--resume-from`` checkpoint, a
``--compile-cache`` folder that can be written.
Each is one line (a ConvbenchError) now rather than a failed cell later."""
from __future__ import annotations

import os
from pathlib import Path

from harness.datasets import load_dataset
from harness.datasets.loader import SYNTHETIC_SIZE
from harness.errors import ConvbenchError
from harness.model.graph import ModelDef
from harness.settings import RunSettings, cell_batch


def check_batches(settings: RunSettings, models: list[ModelDef]) -> None:
    """Each model's global batch splits evenly over the data-parallel devices or processes."""
    for m in models:
        batch = cell_batch(settings, m)
        if settings.world_size > 1 and batch % settings.world_size:
            raise ConvbenchError(f"global batch {batch} does not split evenly over {settings.world_size} devices")


def check_data(settings: RunSettings, models: list[ModelDef]) -> int:
    """A real dataset must be readable and fit every model (synthetic takes each model's shape); returns the size of
    its training set."""
    if settings.dataset == "synthetic":
        return SYNTHETIC_SIZE[0]
    data = load_dataset(settings.dataset, data_dir=settings.data_dir, checksums_off=settings.no_checksum)
    for m in models:
        if tuple(m.input_shape) != data.shape or m.num_classes != data.num_classes:
            raise ConvbenchError(f"model {m.name} takes {'x'.join(map(str, m.input_shape))} images and "
                                 f"{m.num_classes} classes; dataset {settings.dataset} has "
                                 f"{'x'.join(map(str, data.shape))} and {data.num_classes}: use --dataset synthetic")
    return len(data.y_train)


def check_batch_fits(settings: RunSettings, models: list[ModelDef], train_size: int) -> None:
    """In train mode each model's batch fits the training set: a larger one trains no step (full batches only),
    yet its cell would end ok at chance accuracy. Data parallel: the global batch, since every rank takes its slice
    of each global batch. (Speed mode times one batch of its own size.)"""
    if settings.mode != "train":
        return
    for m in models:
        if (batch := cell_batch(settings, m)) > train_size:
            raise ConvbenchError(f"batch {batch} ({m.name}) is larger than the {settings.dataset} training set of "
                                 f"{train_size} images: an epoch would train no step; use --batch-size {train_size} "
                                 "or less")


def check_resume_checkpoint(path: str, models: list[ModelDef], epochs: int | None) -> None:
    """One clear line now rather than a failed cell later."""
    from harness.model.weights import check_momentum, check_weights, load_checkpoint
    weights, momentum, meta = load_checkpoint(path)
    if len(models) != 1:
        raise ConvbenchError("--resume-from continues one model; pass exactly one with --models")
    check_weights(models[0], weights, source=f"checkpoint {path!r}")
    if momentum:
        check_momentum(models[0], momentum, source=f"checkpoint {path!r} momentum buffers")
    done = int(meta.get("epoch", 0))
    if epochs is not None and done >= epochs:
        raise ConvbenchError(f"checkpoint {path!r} has {done} epoch(s) already; ask for more with --epochs")


def check_compile_cache(path: str) -> None:
    """The ``--compile-cache`` folder exists (made here if missing) and can be written: each framework's cache is a
    subfolder of it, which the worker makes."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ConvbenchError(f"--compile-cache {path!r} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConvbenchError(f"cannot make the --compile-cache folder {path!r}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConvbenchError(f"--compile-cache {path!r} is not writable")
