"""Which Python runs each framework's workers: one environment per framework (their CUDA builds pin different
versions of the same NVIDIA wheels, so on GPUs they rarely install together).

Given, in order of precedence: ``--python torch=/envs/torch/bin/python`` (repeatable), the environment variable
``CONVBENCH_PYTHON_TORCH``, and the ``[python]`` table of a TOML config file (``--config``, or
``$CONVBENCH_CONFIG``). A framework without an entry runs in the orchestrator's own interpreter. Every
interpreter named must be a Python with the same convbench version as the orchestrator: checked by its probe.
"""
from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.errors import ConvbenchError
from harness.frameworks import FrameworkSpec
from harness.orchestrator.recipes import read_toml

ENV_PREFIX = "CONVBENCH_PYTHON_"
CONFIG_ENV = "CONVBENCH_CONFIG"


def parse(entries: Sequence[str]) -> dict[str, str]:
    """``["torch=/envs/torch/bin/python", ...]`` -> {"torch": "/envs/torch/bin/python"}."""
    out = {}
    for entry in entries:
        framework, sep, path = entry.partition("=")
        if not sep or not framework.strip() or not path.strip():
            raise ConvbenchError(f"--python takes FRAMEWORK=PATH (e.g. torch=/envs/torch/bin/python), got {entry!r}")
        out[framework.strip()] = path.strip()
    return out


def from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {k[len(ENV_PREFIX):].lower(): v for k, v in environ.items() if k.startswith(ENV_PREFIX) and v}


def from_config(path: str | Path | None) -> dict[str, str]:
    """The ``[python]`` table of a TOML config file: ``torch = "/envs/torch/bin/python"``."""
    if path is None:
        return {}
    table = read_toml(path, "config file").get("python", {})
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ConvbenchError(f"config file {str(path)!r}: [python] maps framework names to interpreter paths")
    return dict(table)


def resolve_pythons(cli: Sequence[str] | None, config: str | None, known: Sequence[str],
            environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """framework -> interpreter path, command line over environment over config file; absolute paths.
    A framework name that no plugin registers is a one-line error (a typo would silently run elsewhere)."""
    merged = {**from_config(config or environ.get(CONFIG_ENV)), **from_environment(environ), **parse(cli or ())}
    for framework in merged:
        if framework not in known:
            from harness.registry import unknown_name
            raise ConvbenchError(unknown_name("framework", framework, known) + " (in --python / CONVBENCH_PYTHON_*)")
    return {fw: str(Path(path).expanduser().absolute()) for fw, path in merged.items()}


def problem(path: str) -> str | None:
    """Why ``path`` cannot be a worker's interpreter, before anything runs there (None: it may be)."""
    p = Path(path)
    if not p.exists():
        return f"interpreter {path} does not exist"
    if not p.is_file() or not os.access(p, os.X_OK):
        return f"{path} is not an executable interpreter"
    return None


def to_entries(pythons: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(f"{fw}={path}" for fw, path in sorted(pythons.items()))


def interpreter_info(spec: FrameworkSpec, python: str | None) -> dict[str, Any]:
    """The framework's interpreter, its Python and convbench versions, and the framework's installed version there
    (asked of a worker without importing the framework; read here when the framework has no interpreter of its own).
    A broken interpreter is reported as the framework being unavailable, with the reason."""
    from harness import __version__
    if python is None:
        installed, reason = spec.installed()
        return {"executable": sys.executable, "python": platform.python_version(), "convbench": __version__,
                "installed": installed, "reason": reason, "version": spec.version()}
    base = {"executable": python, "python": "?", "convbench": "?", "installed": False, "version": None}
    if why := problem(python):
        return {**base, "reason": why}
    from harness.orchestrator.workers import run_job, worker_env
    from harness.worker.protocol import InfoJob
    with tempfile.TemporaryDirectory(prefix="convbench-info-") as tmp:
        result = run_job(InfoJob(spec.name), worker_env(spec, 1), Path(tmp) / "info.log", 120, python=python)
        payload = result.payload
        why = result.failure(lines=1) or (None if payload and "executable" in payload else "no interpreter facts")
    if why or payload is None:
        return {**base, "reason": f"cannot run convbench's worker: {why}"}
    if payload["convbench"] != __version__:
        return {**payload, "installed": False, "reason": f"has convbench {payload['convbench']}, this is {__version__}"}
    return payload
