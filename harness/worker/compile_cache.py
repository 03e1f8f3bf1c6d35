"""The state of a cell's persistent compilation cache (``--compile-cache``), measured rather than assumed: the files
(name and size) in the framework's cache folder before its model is built and after the cell's work.

"cold": the cell added entries (it compiled and stored its programs); "warm": the folder held entries and the cell
added none (its programs came from the cache); "unused": nothing was added and the framework keeps no persistent
cache for the run's ``--compile`` (``FrameworkSpec.compile_cache_modes``), or the folder stayed empty. None: the
flag is off.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

Snapshot = frozenset[tuple[str, int]]


def snapshot(folder: str) -> Snapshot:
    """Every file under ``folder`` as (relative path, size); a missing folder is empty."""
    root = Path(folder)
    out = set()
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            try:
                out.add((str(path.relative_to(root)), path.stat().st_size))
            except OSError:   # removed while we looked (a framework's temporary file)
                continue
    return frozenset(out)


@dataclass(frozen=True)
class CacheWatch:
    """A cache folder's files when the cell started; ``state()`` compares them with the folder now."""
    folder: str | None
    used: bool
    before: Snapshot = frozenset()

    @classmethod
    def start(cls, folder: str | None, used: bool) -> "CacheWatch":
        return cls(folder, used, snapshot(folder) if folder else frozenset())

    def state(self) -> str | None:
        if self.folder is None:
            return None
        added = {name for name, _ in snapshot(self.folder)} - {name for name, _ in self.before}
        if added:
            return "cold"
        return "warm" if self.used and self.before else "unused"
