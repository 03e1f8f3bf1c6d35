"""convbench: train and time classic CNNs identically across deep-learning frameworks."""
from __future__ import annotations

import pluggy

__version__ = "0.1.0"
PROJECT = "convbench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["hookimpl", "hookspec", "__version__", "PROJECT"]
