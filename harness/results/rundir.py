"""Run directories: a fresh one per run (never reused), the lock that lets one convbench at a time work in it, and
the meta.json beside the results (written when the run starts, completed when it ends, resumes appended). meta.json's
``git_commit`` and ``git_dirty`` are those of the source checkout convbench runs from, None when it runs installed.

meta.json carries the results schema version (``schema_version``, harness/results/schema) and ``format``, its major
(the integer version written before there was a schema_version), with the convbench version; ``--resume`` refuses a
folder of another format or version.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from harness import PROJECT, __version__
from harness.atomic import WriteFailed, write_atomic
from harness.errors import ConvbenchError
from harness.results.runs import read_json
from harness.results.schema import FORMAT, SCHEMA_VERSION

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the tomli backport, a dependency there
    import tomli as tomllib

META = "meta.json"
LOCK = ".lock"
RUN_ID = "%Y%m%d-%H%M%S"


def new_run_dir(output: str | Path) -> tuple[str, Path]:
    """Creates ``output/<run-id>``, where run-id is a UTC timestamp (with -2, -3, ... if taken)."""
    root = Path(output)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root, prefix=".convbench-write-test-"):  # unique: runs may start together
            pass
    except OSError as exc:
        raise ConvbenchError(f"output directory {str(root)!r} is not writable: {exc.strerror or exc}") from None
    base = dt.datetime.now(dt.timezone.utc).strftime(RUN_ID)
    for n in range(1, 1000):
        run_id = base if n == 1 else f"{base}-{n}"
        try:
            (root / run_id).mkdir()
            return run_id, root / run_id
        except FileExistsError:
            continue
    raise ConvbenchError(f"cannot create a new run directory under {str(root)!r}")


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Holds an advisory lock on the run folder while the block runs; a second run or resume of the same folder
    gets ConvbenchError (one line) instead of running the same cells at once. The kernel drops the lock when the
    process dies, however it dies. Where the OS has no ``fcntl`` (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = run_dir / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise WriteFailed(path, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise ConvbenchError(f"{str(run_dir)!r} is in use by another convbench ({holder}); wait for it to "
                                 "finish or stop it, then resume") from None
        try:   # who holds it, for the message above; the lock itself does not depend on it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {now()}".encode(), 0)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)   # the lock goes with it; the file stays (unlinking it would let two holders in)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


PACKAGE = Path(__file__).resolve().parent.parent   # harness/


def git(*args: str, cwd: Path = PACKAGE) -> str | None:
    """``git ARGS``'s output in ``cwd``, or None when git is missing or fails."""
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def source_checkout(package: Path = PACKAGE) -> Path | None:
    """The git work tree this convbench runs from, or None when it is not a source checkout: the package must sit
    directly in the work tree's top level (``top/harness``) beside this project's ``pyproject.toml``. An installed
    convbench inside someone else's repository (a virtual environment in a project folder) is no checkout of it."""
    top = git("rev-parse", "--show-toplevel", cwd=package)
    if not top or Path(top).resolve() != package.parent:
        return None
    try:
        project = tomllib.loads((package.parent / "pyproject.toml").read_text()).get("project", {})
    except (OSError, ValueError):
        return None
    return package.parent if project.get("name") == PROJECT else None


def git_state(package: Path = PACKAGE) -> tuple[str | None, bool | None]:
    """(the checkout's commit, whether its tracked files differ from it, as ``git describe --dirty`` counts), or
    (None, None) when convbench is not running from a source checkout."""
    top = source_checkout(package)
    commit = git("rev-parse", "HEAD", cwd=top) if top else None
    if top is None or not commit:
        return None, None
    changes = git("status", "--porcelain", "--untracked-files=no", cwd=top)
    return commit, None if changes is None else bool(changes)


def git_commit() -> str | None:
    return git_state()[0]


def base_meta(run_id: str, argv: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "format": FORMAT,
        "run_id": run_id,
        "started": now(),
        "finished": None,
        "command": ["convbench", *argv],
        "settings": settings,
        "harness_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "host": socket.gethostname(),
        **dict(zip(("git_commit", "git_dirty"), git_state())),
    }


def start_meta(run_dir: Path, run_id: str, argv: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """The meta.json a run starts with. A new run's is ``base_meta``. A resumed run (its folder has a meta.json or a
    journal) keeps its own start, command and version and gets an entry in ``resumes``: when, with which version,
    commit and host; a folder whose meta.json was lost takes its start from the run id."""
    previous = read_json(run_dir / META)
    if not isinstance(previous, dict) and not (run_dir / "journal.jsonl").exists():
        return base_meta(run_id, argv, settings)
    meta = base_meta(run_id, argv, settings)
    resume = {"started": meta["started"], "harness_version": __version__, "git_commit": meta["git_commit"],
              "host": meta["host"]}
    if isinstance(previous, dict):
        meta = {**meta, **previous}
    else:
        meta["started"] = run_id_time(run_id) or meta["started"]
        meta["meta_lost"] = "meta.json was missing when the run was resumed; started is the run id's time"
    for key in ("interrupted", "stopped"):   # this attempt's own, set when it ends
        meta.pop(key, None)
    meta.update(settings=settings, finished=None, resumes=[*meta.get("resumes", []), resume])
    return meta


def run_id_time(run_id: str) -> str | None:
    try:
        when = dt.datetime.strptime(run_id.split("-")[0] + "-" + run_id.split("-")[1], RUN_ID)
    except (ValueError, IndexError):
        return None
    return when.replace(tzinfo=dt.timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, data: Any) -> None:
    """Atomically; ``WriteFailed`` (one line naming the file) when the disk refuses."""
    write_atomic(path, json.dumps(data, indent=2, default=str))
