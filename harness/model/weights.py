"""Portable weights: one seeded initialisation and one .npz layout for every framework.

Layout (keys are ``<dotted layer path>.<param>``, all float32):
- convolution ``weight`` (out, in, kh, kw) [OIHW], ``bias`` (out,)
- linear ``weight`` (out, in) with ``in`` in NCHW flatten order (C-major), ``bias`` (out,)
- batch norm ``weight`` (gamma), ``bias`` (beta), ``running_mean``, ``running_var`` (C,)

Checkpoints may also hold the optimiser's momentum buffers as ``__momentum__.<key>`` arrays (same
layout as the parameter ``<key>``); ``load_weights`` leaves them out, ``load_checkpoint`` returns them.

Initialisation (numpy ``default_rng(seed)``, layers in definition order): conv and linear weights
He-normal, std = sqrt(2 / fan_in); biases 0; batch norm gamma 1, beta 0, mean 0, var 1.
"""
from __future__ import annotations

import math
import os
import zipfile

import numpy as np

from harness.atomic import write_atomic
from harness.errors import ConvbenchError
from harness.model.graph import ModelDef
from harness.model.shapes import model_summary

META, MOMENTUM = "__meta__.", "__momentum__."


def init_weights(model: ModelDef, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for key, shape in model_summary(model).param_shapes.items():
        kind = key.rsplit(".", 1)[1]
        if kind == "weight" and len(shape) > 1:
            fan_in = math.prod(shape[1:])
            out[key] = rng.standard_normal(shape, dtype=np.float32) * np.float32(math.sqrt(2.0 / fan_in))
        elif kind in ("weight", "running_var"):
            out[key] = np.ones(shape, np.float32)
        else:
            out[key] = np.zeros(shape, np.float32)
    return out


def check_weights(model: ModelDef, weights: dict[str, np.ndarray], source: str = "weights") -> None:
    """Raises ConvbenchError unless ``weights`` has exactly the model's keys and shapes."""
    check_fit(model, model_summary(model).param_shapes, weights, source)


def trainable_shapes(model: ModelDef) -> dict[str, tuple[int, ...]]:
    """The keys and shapes of the trainable parameters (what momentum buffers are kept for)."""
    return {k: tuple(v) for k, v in model_summary(model).param_shapes.items()
            if k.rsplit(".", 1)[1] not in ("running_mean", "running_var")}


def check_momentum(model: ModelDef, momentum: dict[str, np.ndarray], source: str = "momentum") -> None:
    """Raises ConvbenchError unless ``momentum`` has exactly the model's trainable keys and shapes."""
    check_fit(model, trainable_shapes(model), momentum, source)


def check_fit(model: ModelDef, expected: dict[str, tuple[int, ...]], arrays: dict[str, np.ndarray], source: str) -> None:
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise ConvbenchError(f"{source} do not fit model {model.name!r}: missing {missing[:3]}, unexpected {extra[:3]}")
    for key, shape in expected.items():
        if tuple(arrays[key].shape) != tuple(shape):
            raise ConvbenchError(f"{source}: {key} has shape {arrays[key].shape}, model {model.name!r} needs {shape}")


def save_weights(path: str | os.PathLike[str], weights: dict[str, np.ndarray],
                 momentum: dict[str, np.ndarray] | None = None, **meta: str) -> None:
    """Writes atomically (harness.atomic: nothing left behind, an earlier file intact when the disk refuses, then
    ``WriteFailed`` naming the file); ``meta`` strings go in as ``__meta__.<key>`` arrays."""
    arrays = {k: np.asarray(v, np.float32) for k, v in weights.items()}
    arrays.update({f"{MOMENTUM}{k}": np.asarray(v, np.float32) for k, v in (momentum or {}).items()})
    arrays.update({f"{META}{k}": np.array(v) for k, v in meta.items()})
    write_atomic(path, lambda fh: np.savez(fh, **arrays))


def load_weights(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(weights, meta) from a portable .npz; ConvbenchError naming the file when it is unreadable."""
    weights, _, meta = load_checkpoint(path)
    return weights, meta


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, str]]:
    """(weights, momentum buffers (empty when the file has none), meta) from a portable .npz."""
    try:
        with np.load(path, allow_pickle=False) as data:
            items = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ConvbenchError(f"cannot read weight file {str(path)!r}: {exc}") from None
    parts: dict[str, dict[str, np.ndarray]] = {META: {}, MOMENTUM: {}, "": {}}
    for key, value in items.items():
        prefix = next(p for p in (META, MOMENTUM, "") if key.startswith(p))
        parts[prefix][key[len(prefix):]] = value
    return parts[""], parts[MOMENTUM], {k: str(v) for k, v in parts[META].items()}
