"""One colour per framework, the same in the PNG plots (matplotlib) and the HTML pages (plotly)."""
from __future__ import annotations

from typing import Sequence

COLOURS = {"torch": "#EE4C2C", "tensorflow": "#FF8F00", "paddle": "#2932E1"}
OTHER_COLOURS = ("#2CA02C", "#9467BD", "#8C564B", "#17BECF", "#7F7F7F")


def colour(framework: str, order: Sequence[str]) -> str:
    """A fixed colour per framework (brand colours for the built-in three)."""
    base = framework.split("@")[0]
    if base in COLOURS:
        return COLOURS[base]
    others = [f for f in order if f.split("@")[0] not in COLOURS]
    return OTHER_COLOURS[others.index(framework) % len(OTHER_COLOURS)] if framework in others else "#000000"
