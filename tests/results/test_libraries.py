"""The report libraries: a command that needs one that is missing says which, and the pip command, in one line."""
from __future__ import annotations

import importlib.util

import pytest

from harness.errors import ConvbenchError
from harness.results import libraries


def test_nothing_missing_here():
    assert libraries.missing() == []   # the test environment installs the report extra
    libraries.require("convbench report")


def test_a_missing_library_is_named_with_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "plotly" else real(name, *a))
    with pytest.raises(ConvbenchError) as info:
        libraries.require("convbench history")
    assert str(info.value) == ("convbench history needs plotly, which is not installed: it comes with convbench's "
                               "'report' extra (pip install 'convbench[report]')")
