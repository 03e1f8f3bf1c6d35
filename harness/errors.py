"""The one error class for user mistakes: the CLI prints it as one line and exits 2."""
from __future__ import annotations


class ConvbenchError(Exception):
    """A user-facing error (bad input, missing file, unknown name); never a bug."""

    exit_code = 2
