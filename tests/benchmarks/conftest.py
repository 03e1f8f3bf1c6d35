"""Tests of the lab (benchmarks/, not installed). Its scripts and modules import each other by bare name
(``paired``, ``idiomatic``, ``handwritten``), as they do when run as ``python benchmarks/<script>.py``, so the
folder goes on sys.path here, found from this file as a fresh checkout has it."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    """The checkout's benchmarks/ folder."""
    return BENCHMARKS
