"""convbench: train and time classic CNNs identically across deep-learning frameworks.

A plugin author imports what a plugin needs from here: ``from harness import hookimpl, FrameworkPlugin,
FrameworkSpec, DeviceInfo, Execution, BuildSettings, ModelDef, Device, ConvbenchError``. The names other
than the markers load on first use, so importing the package stays cheap.
"""
from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from typing import Any

import pluggy

PROJECT = "convbench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# name -> the module that defines it
_EXPORTS = {
    "FrameworkPlugin": "harness.plugin_base", "Execution": "harness.plugin_base", "unknown_phase": "harness.plugin_base",
    "FrameworkSpec": "harness.frameworks", "DeviceInfo": "harness.frameworks",
    "BuildSettings": "harness.settings", "DataParallel": "harness.settings",
    "ModelDef": "harness.model.graph", "Device": "harness.devices", "ConvbenchError": "harness.errors",
    "NativeModel": "harness.native", "Registry": "harness.registry",
}

__all__ = ["hookimpl", "hookspec", "__version__", "PROJECT", *_EXPORTS]


@cache
def _version() -> str:
    """convbench's version, written in one place, pyproject.toml: in a source checkout read from that file (what
    runs there, installed or not, even when the metadata on the path is another checkout's or stale), else from
    the installed distribution's metadata; "0+unknown" when neither exists (a bare copy of the package)."""
    if found := _checkout_version(Path(__file__).resolve().parent.parent / "pyproject.toml"):
        return found
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed
    try:
        return installed(PROJECT)
    except PackageNotFoundError:
        return "0+unknown"


def _checkout_version(pyproject: Path) -> str | None:
    """The version in ``pyproject`` when it is convbench's own, else None."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:   # none: an installed package
        return None
    try:
        import tomllib
    except ImportError:   # Python 3.10: tomli, a dependency there
        try:
            import tomli as tomllib
        except ImportError:
            return None
    try:
        project = tomllib.loads(text).get("project", {})
    except ValueError:
        return None
    found = project.get("version") if project.get("name") == PROJECT else None
    return found if isinstance(found, str) else None


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
