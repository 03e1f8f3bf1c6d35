from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.plugin_manager import build_registries, get_plugin_manager

REGISTRIES = build_registries(get_plugin_manager())
ALL_MODELS = REGISTRIES.models.names()
FRAMEWORKS = REGISTRIES.frameworks.names()


def framework_installed(name: str) -> bool:
    """True when a plugin registers the framework and the framework itself imports."""
    if name not in REGISTRIES.frameworks.names():
        return False
    return importlib.util.find_spec(REGISTRIES.frameworks.get(name).module) is not None


def needs(framework: str) -> pytest.MarkDecorator:
    """Skip only when the framework is not installed (CI installs all three, so CI never skips)."""
    return pytest.mark.skipif(not framework_installed(framework), reason=f"{framework} is not installed")


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


@pytest.fixture(scope="session")
def registries():
    return REGISTRIES
