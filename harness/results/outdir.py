"""The folder a writer writes into (report.md, report.html, history.csv/.html): created or a one-line user error."""
from __future__ import annotations

from pathlib import Path

from harness.errors import ConvbenchError


def output_dir(out_dir: str | Path | None, default: Path) -> Path:
    """``out_dir``, or ``default`` when it is None, created with its parents; ConvbenchError (one line) when it
    cannot be created."""
    out = Path(out_dir) if out_dir is not None else default
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConvbenchError(f"cannot create {str(out)!r}: {exc.strerror or exc}") from None
    return out
