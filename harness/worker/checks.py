"""Values a framework plugin's model hands back, checked where they cross into the harness (the contract is
``harness/native.py``): a loss is a real number, ``read_losses`` one loss per step, ``evaluate`` at most one hit
per image, ``execution_info`` the documented row columns with JSON scalar values. Numpy scalars are accepted
and converted; a value that breaks the contract fails the cell with a ``PluginFault`` naming the method, never
a corrupt row. A NaN or infinite training loss passes: that is the training's ``diverged``, not the plugin's.
"""
from __future__ import annotations

import numbers
import reprlib
from typing import Any

import numpy as np

from harness.errors import ConvbenchError

# what execution_info may report (docs/plugins.md): how the cell ran, read back from the framework
EXECUTION_KEYS = ("precision", "compile", "layout", "tf32", "autotune", "deterministic", "world_size")


class PluginFault(ConvbenchError):
    """A plugin's model returned a value that breaks its contract; the cell's row is ``error`` with this message
    ("plugin error: TorchModel.read_losses returned 3 losses for 4 steps")."""


def _method(native: object, method: str) -> str:
    return f"{type(native).__name__}.{method}"


_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother = 40, 60


def _shown(value: object) -> str:
    return f"{type(value).__name__} {_REPR.repr(value)}"


def real(native: object, method: str, value: object, what: str = "a number") -> float:
    """``value`` as a float: a Python or numpy real number, or a 0-d numpy array of one (NaN and inf included)."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise PluginFault(f"plugin error: {_method(native, method)} returned {_shown(value)}, not {what}")
    return float(value)


def loss(native: object, value: object) -> float:
    """``train_step``'s loss."""
    return real(native, "train_step", value, "a float loss")


def losses(native: object, values: object, steps: int) -> list[float]:
    """``read_losses``' list: one loss per step it was given, in order."""
    if not isinstance(values, (list, tuple)):
        raise PluginFault(f"plugin error: {_method(native, 'read_losses')} returned {_shown(values)}, not a list")
    if len(values) != steps:
        raise PluginFault(f"plugin error: {_method(native, 'read_losses')} returned {len(values)} losses for "
                          f"{steps} steps")
    return [real(native, "read_losses", v, "a float loss") for v in values]


def evaluation(native: object, value: object, images: int) -> tuple[float, int]:
    """``evaluate``'s (summed loss, correct predictions) for a batch of ``images``: at most one hit per image."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise PluginFault(f"plugin error: {_method(native, 'evaluate')} returned {_shown(value)}, not "
                          "(summed loss, correct predictions)")
    summed = real(native, "evaluate", value[0], "a float loss")
    hits = real(native, "evaluate", value[1], "a count of correct predictions")
    if not hits.is_integer() or not 0 <= hits <= images:
        raise PluginFault(f"plugin error: {_method(native, 'evaluate')} counted {value[1]!r} correct predictions in a "
                          f"batch of {images} images")
    return summed, int(hits)


def execution_info(native: object, info: object) -> dict[str, Any]:
    """``execution_info``'s row values: known columns only, each None, a string, a bool or a number."""
    method = _method(native, "execution_info")
    if not isinstance(info, dict):
        raise PluginFault(f"plugin error: {method} returned {_shown(info)}, not a dict")
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key not in EXECUTION_KEYS:
            raise PluginFault(f"plugin error: {method} returned the key {key!r}; known: {', '.join(EXECUTION_KEYS)}")
        if isinstance(value, np.generic):
            value = value.item()
        if value is not None and not isinstance(value, (str, bool, int, float)):
            raise PluginFault(f"plugin error: {method} returned {key}={_shown(value)}, not a string, bool or number")
        out[key] = value
    return out
