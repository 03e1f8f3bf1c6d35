"""Fixtures for every test; the helpers themselves live in helpers.py."""
from __future__ import annotations

import pytest
from helpers import REGISTRIES


@pytest.fixture(scope="session")
def registries():
    return REGISTRIES
