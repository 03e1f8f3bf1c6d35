"""The packaging tests' fixture: the two wheels, built once per session (helpers in venvs.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from venvs import build_wheels


@pytest.fixture(scope="session")
def wheels(tmp_path_factory) -> dict[str, Path]:
    return build_wheels(tmp_path_factory.mktemp("wheels"))
