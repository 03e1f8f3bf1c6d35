"""Fixtures for every test; the helpers themselves live in helpers.py."""
from __future__ import annotations

import signal

import pytest
from helpers import REGISTRIES


def pytest_configure(config):
    """The tests that press Ctrl-C or hang up on a run (tests/reliability, tests/orchestrator/test_reliability.py) need
    their runs to hear SIGINT and SIGHUP as a terminal's user would. A suite started where they are ignored (a
    non-interactive shell's background job ignores SIGINT, `nohup` SIGHUP: how a CI script or a detached tox run may
    start it) passes the ignoring on to every child, where Python keeps it and convbench keeps an inherited SIGHUP
    ignore on purpose (nohup's meaning), so those runs never ended and the tests timed out: undo it for the session."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture(scope="session")
def registries():
    return REGISTRIES
