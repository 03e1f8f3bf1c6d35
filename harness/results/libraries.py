"""The report libraries: pandas (results.csv), SciPy (the significance tests), Matplotlib (report.md's PNGs), Plotly
(the HTML reports) and rich (run's progress display). The orchestrator's commands use them, a worker never does, so
they are not among convbench's core dependencies but in its ``report`` extra, which a worker environment
(``--python``) goes without. A command that needs them checks before it starts and names what to install, in one
line."""
from __future__ import annotations

import importlib.util

from harness.errors import ConvbenchError

EXTRA = "report"
LIBRARIES = ("pandas", "scipy", "matplotlib", "plotly", "rich")


def missing() -> list[str]:
    return [name for name in LIBRARIES if importlib.util.find_spec(name) is None]


def require(command: str) -> None:
    """A one-line ConvbenchError when a report library is not installed, naming them and the pip command."""
    if absent := missing():
        one = len(absent) == 1
        raise ConvbenchError(f"{command} needs {', '.join(absent)}, which {'is' if one else 'are'} not installed: "
                             f"{'it comes' if one else 'they come'} with convbench's {EXTRA!r} extra "
                             f"(pip install 'convbench[{EXTRA}]')")
