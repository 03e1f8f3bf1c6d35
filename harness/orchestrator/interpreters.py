"""Which Python runs each framework's workers: one environment per framework (their CUDA builds pin different
versions of the same NVIDIA wheels, so on GPUs they rarely install together).

Given, in order of precedence: ``--python torch=/envs/torch/bin/python`` (repeatable), the environment variable
``CONVBENCH_PYTHON_TORCH``, and the ``[python]`` table of a TOML config file (``--config``, or
``$CONVBENCH_CONFIG``). A framework without an entry runs in the orchestrator's own interpreter. A bare name
(``python3.11``) is looked up on PATH, as a shell would; a relative path is relative to the working directory, or
in a config file to the file's folder. Every interpreter named must be a Python with the same convbench (version
and build identity, ``harness.identity``) as the orchestrator: checked by its probe.
"""
from __future__ import annotations

import os
import platform
import shutil
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


CONFIG_TABLES = ("python", "slurm")   # the tables a config file may have ([slurm]: harness.orchestrator.slurm)


def from_config(path: str | Path | None) -> dict[str, str]:
    """The ``[python]`` table of a TOML config file: ``torch = "/envs/torch/bin/python"``, relative paths resolved
    against the file's folder. Any other table or top-level key is refused (a typo would be silently ignored)."""
    if path is None:
        return {}
    data = read_toml(path, "config file")
    for key, value in data.items():
        if key not in CONFIG_TABLES:
            what = f"table [{key}]" if isinstance(value, dict) else f"key {key!r} outside a table"
            raise ConvbenchError(f"config file {str(path)!r}: unknown {what}; known tables: "
                                 + ", ".join(f"[{t}]" for t in CONFIG_TABLES))
    table = data.get("python", {})
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ConvbenchError(f"config file {str(path)!r}: [python] maps framework names to interpreter paths")
    folder = Path(os.path.abspath(Path(path).expanduser())).parent
    return {fw: locate(python, folder) for fw, python in table.items()}


def locate(python: str, base: Path | None = None) -> str:
    """An interpreter as given -> the path a worker is started with: a bare name looked up on PATH (left as it is
    when absent, for ``problem`` to report), a relative path made absolute against ``base`` (default: the working
    directory), ``~`` expanded."""
    if os.sep not in python and not (os.altsep and os.altsep in python):
        found = shutil.which(python)
        return str(Path(found).absolute()) if found else python
    path = Path(python).expanduser()
    return str(path if path.is_absolute() else (base or Path.cwd()) / path)


def resolve_pythons(cli: Sequence[str] | None, config: str | None, known: Sequence[str],
            environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """framework -> interpreter path, command line over environment over config file; absolute paths (a bare name
    not on PATH stays as given). A framework name that no plugin registers is a one-line error naming where it
    was given (a typo would silently run elsewhere)."""
    config = config or environ.get(CONFIG_ENV)
    sources = ((from_config(config), f"in config file {str(config)!r} [python]"),
               (from_environment(environ), "in CONVBENCH_PYTHON_*"), (parse(cli or ()), "in --python"))
    merged: dict[str, str] = {}
    for entries, where in sources:
        for framework in entries:
            if framework not in known:
                from harness.registry import unknown_name
                raise ConvbenchError(f"{unknown_name('framework', framework, known)} ({where})")
        merged.update(entries)
    return {fw: locate(path) for fw, path in merged.items()}


def problem(path: str) -> str | None:
    """Why ``path`` cannot be a worker's interpreter, before anything runs there (None: it may be)."""
    p = Path(path)
    if not p.is_absolute() and os.sep not in path:
        return f"no {path!r} on PATH (give the interpreter's path, e.g. /envs/torch/bin/python)"
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
    from harness.identity import build_id
    if python is None:
        installed, reason = spec.installed()
        return {"executable": sys.executable, "python": platform.python_version(), "convbench": __version__,
                "build": build_id(), "installed": installed, "reason": reason, "version": spec.version()}
    base = {"executable": python, "python": "?", "convbench": "?", "installed": False, "version": None}
    if why := problem(python):
        return {**base, "reason": why}
    from harness.orchestrator.workers import WorkerStartError, run_job, worker_env
    from harness.worker.protocol import InfoJob
    with tempfile.TemporaryDirectory(prefix="convbench-info-") as tmp:
        try:
            result = run_job(InfoJob(spec.name), worker_env(spec, 1), Path(tmp) / "info.log", 120, python=python)
        except WorkerStartError as exc:
            return {**base, "reason": str(exc)}
        payload = result.payload
        why = result.failure(lines=1) or (None if payload and "executable" in payload else "no interpreter facts")
    if why or payload is None:
        return {**base, "reason": f"cannot run convbench's worker: {why}"}
    if differs := mismatch(payload):
        return {**payload, "installed": False, "reason": differs}
    return payload


def mismatch(facts: Mapping[str, Any]) -> str | None:
    """How another interpreter's convbench (its worker's ``interpreter`` facts) differs from this one: another
    version, or the same version built from other code (naming the files that differ); None when it is this one."""
    from harness import __version__
    from harness.identity import build_id, differing_files
    found = facts.get("convbench")
    if found != __version__:
        return f"has convbench {found}, this convbench is {__version__}: install {__version__} there"
    if facts.get("build") == build_id():
        return None
    if not facts.get("build"):
        return f"has convbench {found} from older code (no build identity): install this convbench there"
    files = differing_files(facts.get("build_files") or {})
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return (f"has convbench {found} built from other code (build {facts['build']} there, {build_id()} here; "
            f"{len(files)} file(s) differ: {shown}): install this convbench there")
