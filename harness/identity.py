"""This convbench's build identity: a hash of the harness package's own source files, computed the same way in
the orchestrator and in a worker of another environment (``--python``), so two installs with the same version
string but different code (two commits, a local edit) are told apart. A git commit would miss an edit and an
installed copy has none; the files are what runs. Computed once per process (about a hundred small files)."""
from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


@cache
def source_hashes() -> dict[str, str]:
    """Each ``harness/**/*.py`` (path relative to the package's parent, '/'-separated) -> its SHA-256, 12 hex."""
    return {f"harness/{p.relative_to(PACKAGE).as_posix()}": hashlib.sha256(p.read_bytes()).hexdigest()[:12]
            for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


@cache
def build_id() -> str:
    """One hash of every source file's path and content, 12 hex."""
    text = "".join(f"{path} {digest}\n" for path, digest in sorted(source_hashes().items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def differing_files(theirs: dict[str, str]) -> list[str]:
    """The source files that differ between ``theirs`` (another install's ``source_hashes``) and this one's,
    missing on either side included, sorted."""
    ours = source_hashes()
    return sorted(path for path in {*ours, *theirs} if ours.get(path) != theirs.get(path))
