"""convbench: train and time classic CNNs identically across deep-learning frameworks.

A plugin author imports what a plugin needs from here: ``from harness import hookimpl, FrameworkPlugin,
FrameworkSpec, DeviceInfo, Execution, BuildSettings, ModelDef, Device, ConvbenchError``. The names other
than the markers load on first use, so importing the package stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

import pluggy

__version__ = "0.1.0"
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


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
