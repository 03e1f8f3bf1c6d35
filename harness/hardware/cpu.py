"""Built-in device plugin: the CPU, for every framework (nothing to synchronise; peak RSS)."""
from __future__ import annotations

import resource
import sys

from harness import hookimpl
from harness.devices import parse_device


def max_rss_mb() -> float:
    """This process's peak resident set in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


@hookimpl(trylast=True)
def convbench_synchronize(framework: str, device: str) -> bool | None:
    return True if parse_device(device).is_cpu else None


@hookimpl(trylast=True)
def convbench_peak_memory_mb(framework: str, device: str, reset: bool) -> float | None:
    """ru_maxrss cannot be reset: a reset answers None (the hook's "cannot be reset")."""
    return (None if reset else max_rss_mb()) if parse_device(device).is_cpu else None
