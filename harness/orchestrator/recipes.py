"""Recipe files (TOML) and the recipe's ranges; ``plan.resolve_settings`` merges them with the command line and
the defaults of ``harness.settings`` in one place.

A recipe file holds any of: epochs, batch_size, lr, momentum, weight_decay, schedule, decay_factor,
augment, target, optimizer. Command-line options override the file; the file overrides the defaults.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (still in many GPU containers): the same parser as the tomli backport
    import tomli as tomllib

from harness.errors import ConvbenchError
from harness.settings import OPTIMIZERS

KEYS = {"epochs": int, "batch_size": int, "lr": float, "momentum": float, "weight_decay": float, "schedule": str,
        "decay_factor": float, "augment": bool, "target": float, "optimizer": str}


def read_toml(path: str | Path, kind: str) -> dict[str, Any]:
    """A TOML file as a dict; an unreadable or invalid file is one line naming it (``kind``: "recipe file")."""
    try:
        return tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConvbenchError(f"cannot read {kind} {str(path)!r}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConvbenchError(f"{kind} {str(path)!r} is not valid TOML: {exc}") from None


def load_recipe_file(path: str | Path) -> dict[str, Any]:
    data = read_toml(path, "recipe file")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in KEYS:
            raise ConvbenchError(f"recipe file {str(path)!r}: unknown key {key!r}; known: {', '.join(KEYS)}")
        kind = KEYS[key]
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ConvbenchError(f"recipe file {str(path)!r}: {key} must be {kind.__name__}, got {value!r}")
        if kind is float and not math.isfinite(value):   # TOML has inf and nan literals
            raise ConvbenchError(f"recipe file {str(path)!r}: {key} must be a finite number, got {value!r}")
        out[key] = value
    return out


def check_recipe(recipe: dict[str, Any]) -> None:
    """The recipe's values in range (every key of KEYS; ``batch_size`` and ``target`` may be None); inf and nan
    are out of every range."""
    for key, kind in KEYS.items():
        if kind is float and recipe[key] is not None and not math.isfinite(recipe[key]):
            raise ConvbenchError(f"{key} must be a finite number, got {recipe[key]}")
    for key in ("epochs", "batch_size"):
        if recipe[key] is not None and recipe[key] < 1:
            raise ConvbenchError(f"{key} must be at least 1, got {recipe[key]}")
    for key in ("lr", "decay_factor"):
        if not recipe[key] > 0:
            raise ConvbenchError(f"{key} must be positive, got {recipe[key]}")
    if not 0 <= recipe["momentum"] < 1 or recipe["weight_decay"] < 0:
        raise ConvbenchError("momentum must be in [0, 1) and weight_decay >= 0")
    if recipe["target"] is not None and not 0 < recipe["target"] <= 1:
        raise ConvbenchError(f"target is a test accuracy in (0, 1], got {recipe['target']}")
    if recipe["optimizer"] not in OPTIMIZERS:
        raise ConvbenchError(f"unknown optimizer {recipe['optimizer']!r}; known: {', '.join(OPTIMIZERS)}")
