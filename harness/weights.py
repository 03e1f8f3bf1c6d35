"""Portable weights: one seeded initialisation and one .npz layout for every framework.

Layout (keys are ``<dotted layer path>.<param>``, all float32):
- convolution ``weight`` (out, in, kh, kw) [OIHW], ``bias`` (out,)
- linear ``weight`` (out, in) with ``in`` in NCHW flatten order (C-major), ``bias`` (out,)
- batch norm ``weight`` (gamma), ``bias`` (beta), ``running_mean``, ``running_var`` (C,)

Initialisation (numpy ``default_rng(seed)``, layers in definition order): conv and linear weights
He-normal, std = sqrt(2 / fan_in); biases 0; batch norm gamma 1, beta 0, mean 0, var 1.
"""
from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

from harness.errors import ConvbenchError
from harness.graph import ModelDef
from harness.shapes import summarize


def init_weights(model: ModelDef, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for key, shape in summarize(model).param_shapes.items():
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
    expected = summarize(model).param_shapes
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise ConvbenchError(f"{source} do not fit model {model.name!r}: missing {missing[:3]}, unexpected {extra[:3]}")
    for key, shape in expected.items():
        if tuple(weights[key].shape) != tuple(shape):
            raise ConvbenchError(f"{source}: {key} has shape {weights[key].shape}, model {model.name!r} needs {shape}")


def save_weights(path: str | os.PathLike[str], weights: dict[str, np.ndarray], **meta: str) -> None:
    """Writes atomically (temp file + rename); ``meta`` strings go in as ``__meta__.<key>`` arrays."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    arrays = {k: np.asarray(v, np.float32) for k, v in weights.items()}
    arrays.update({f"__meta__.{k}": np.array(v) for k, v in meta.items()})
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_weights(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(weights, meta) from a portable .npz; ConvbenchError naming the file when it is unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            items = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ConvbenchError(f"cannot read weight file {str(path)!r}: {exc}") from None
    meta = {k.split(".", 1)[1]: str(v) for k, v in items.items() if k.startswith("__meta__.")}
    return {k: v for k, v in items.items() if not k.startswith("__meta__.")}, meta
