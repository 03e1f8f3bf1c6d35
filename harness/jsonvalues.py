"""Typed values to and from JSON: frozen dataclasses (settings, cells, worker jobs) written as plain JSON and
read back with every field's type checked, so a value crosses the process boundary and back unchanged."""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

from harness.devices import Device, parse_device
from harness.errors import ConvbenchError

T = TypeVar("T")


def to_json_value(value: Any) -> Any:
    """JSON-ready: dataclasses as dicts, tuples as lists, devices as their names."""
    if isinstance(value, Device):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    return value


def from_json_value(cls: type[T], data: Any) -> T:
    """Builds the dataclass ``cls`` from JSON data, checking each field's type (ints accepted for floats, lists
    for tuples, strings for devices; a float must be finite). Unknown keys are an error: such a file is written by
    this same version."""
    if not isinstance(data, dict):
        raise ConvbenchError(f"{cls.__name__}: expected an object, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConvbenchError(f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}")
    return cls(**{name: _coerce(value, hints[name], f"{cls.__name__}.{name}") for name, value in data.items()})


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        errors = []
        for option in typing.get_args(hint):
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConvbenchError as exc:
                errors.append(str(exc))
        raise ConvbenchError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConvbenchError(f"{where}: expected a list, got {value!r}")
        inner = typing.get_args(hint)[0]
        return tuple(_coerce(v, inner, where) for v in value)
    if hint is Device:
        if isinstance(value, Device):
            return value
        if not isinstance(value, str):
            raise ConvbenchError(f"{where}: expected a device name, got {value!r}")
        return parse_device(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else from_json_value(hint, value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(hint, type) or not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
        raise ConvbenchError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    if hint is float and not math.isfinite(value):   # JSON readers accept NaN and Infinity; no setting is either
        raise ConvbenchError(f"{where}: expected a finite number, got {value!r}")
    return value
