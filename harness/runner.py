"""The orchestrator: probes frameworks, runs each cell in its own worker process, gathers rows.

It never imports a deep-learning framework: everything framework-side happens in
``python -m harness.worker``, with thread settings given explicitly in the environment.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.frameworks import FrameworkSpec
from harness.records import cell_id, make_row

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


@dataclass
class Probe:
    framework: str
    available: bool
    reason: str = ""
    version: str | None = None
    devices: list[dict[str, Any]] = field(default_factory=list)

    def device(self, name: str) -> dict[str, Any] | None:
        wanted = "cuda:0" if name == "cuda" else name
        return next((d for d in self.devices if d["name"] == wanted), None)


def worker_env(spec: FrameworkSpec | None, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    env["TF_NUM_INTEROP_THREADS"] = "1" if threads <= 2 else "2"
    env["TF_CPP_MIN_LOG_LEVEL"] = env.get("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    if spec is not None:
        env.update(spec.env)
    return env


def run_worker(args: list[str], env: dict[str, str], log: Path, timeout: float | None,
            on_line: Callable[[str], None]) -> tuple[int, dict[str, Any] | None]:
    """Runs one worker; returns (exit code, its JSON payload or None)."""
    with tempfile.TemporaryDirectory(prefix="convbench-") as tmp:
        out = Path(tmp) / "out.json"
        with open(log, "ab") as err:
            proc = subprocess.Popen([sys.executable, "-m", "harness.worker", *args, str(out)],
                                    stdout=subprocess.PIPE, stderr=err, env=env, text=True, start_new_session=True)
            assert proc.stdout is not None
            for line in proc.stdout:
                on_line(line.rstrip("\n"))
            code = proc.wait(timeout=timeout)
        payload = json.loads(out.read_text()) if out.exists() else None
    return code, payload


def probe_framework(spec: FrameworkSpec, threads: int, log: Path) -> Probe:
    installed, reason = spec.installed()
    if not installed:
        return Probe(spec.name, False, reason)
    code, payload = run_worker(["probe", spec.name], worker_env(spec, threads), log, 300, lambda line: None)
    if code != 0 or payload is None:
        why = (payload or {}).get("error") or f"probe exited with code {code}; see {log}"
        return Probe(spec.name, False, f"import failed: {why}")
    return Probe(spec.name, True, "", payload.get("version"), payload.get("devices", []))


def run_cell(cell: dict[str, Any], spec: FrameworkSpec, cell_dir: Path,
             on_line: Callable[[str], None]) -> dict[str, Any]:
    """Runs one cell in a fresh worker; always returns a row, whatever happened to the worker."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    spec_path = cell_dir / "cell.json"
    spec_path.write_text(json.dumps(cell, indent=1))
    log = cell_dir / "worker.log"
    code, payload = run_worker(["cell", str(spec_path)], worker_env(spec, cell["threads"]), log, None, on_line)
    if payload is not None and "status" in payload:
        history = payload.pop("history", None)
        if history is not None:
            (cell_dir / "epochs.json").write_text(json.dumps(history, indent=1))
        return payload
    if payload is not None:
        return make_row(cell, status="error", error=payload["error"])
    tail = log.read_text(errors="replace").strip().splitlines()[-5:]
    how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return make_row(cell, status="crashed", error=f"worker {how}: {' | '.join(tail)}")


def cell_name(cell: dict[str, Any]) -> str:
    return cell_id(cell["framework"], cell["model"], cell["device"])
