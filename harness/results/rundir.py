"""Run directories: a fresh one per run (never reused) and the meta.json beside the results."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import ConvbenchError


def new_run_dir(output: str | Path) -> tuple[str, Path]:
    """Creates ``output/<run-id>``, where run-id is a UTC timestamp (with -2, -3, ... if taken)."""
    root = Path(output)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".convbench-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConvbenchError(f"output directory {str(root)!r} is not writable: {exc.strerror or exc}") from None
    base = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        run_id = base if n == 1 else f"{base}-{n}"
        try:
            (root / run_id).mkdir()
            return run_id, root / run_id
        except FileExistsError:
            continue
    raise ConvbenchError(f"cannot create a new run directory under {str(root)!r}")


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def base_meta(run_id: str, argv: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": ["convbench", *argv],
        "settings": settings,
        "harness_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "host": socket.gethostname(),
        "git_commit": git_commit(),
    }


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
