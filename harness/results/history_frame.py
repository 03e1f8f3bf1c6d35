"""history.csv of ``convbench history``: one row per run and cell as a pandas DataFrame."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from harness.results.cells import key_dict
from harness.results.history_model import Cells, ChangePoint, labels

if TYPE_CHECKING:   # a report library (libraries.py), imported where used: convbench starts without it
    import pandas as pd


def history_frame(cells: Cells, found: Sequence[ChangePoint] = ()) -> pd.DataFrame:
    """One row per run and cell, oldest first: settings, headline value, the change against the previous run and
    against the pinned baseline run, and on the first run after a cell's change point: that change point."""
    import pandas as pd
    names = labels(list(cells))
    at = {(cp.key, cp.after.run): cp for cp in found}
    records = []
    for key, points in cells.items():
        for p in points:
            c, b, cp = p.comparison, p.vs_baseline, at.get((key, p.run))
            records.append({"run": p.run, "started": p.started.isoformat(sep=" "), "cell": names[key],
                            **key_dict(key), "framework_version": p.version,
                            "status": "/".join(dict.fromkeys(r["status"] for r in p.rows)),
                            "metric": p.metric or None, "value": p.value, "low": p.low, "high": p.high,
                            "n": len(p.values), "test_accuracy": p.accuracy,
                            "previous_run": p.previous.run if p.previous else None,
                            "previous_version": p.previous.version if p.previous else None,
                            "change_pct": c.change_pct if c else None, "p_value": c.p_value if c else None,
                            "test": c.test if c else None, "verdict": c.verdict if c else None,
                            "baseline_run": p.baseline.run if p.baseline else None,
                            "baseline_change_pct": b.change_pct if b else None, "baseline_p_value": b.p_value if b else None,
                            "baseline_verdict": b.verdict if b else None,
                            "change_point_after": cp.before.run if cp else None,
                            "change_point_pct": cp.split.comparison.change_pct if cp else None,
                            "change_point_q": cp.q_value if cp else None, "change_point_verdict": cp.verdict if cp else None})
    frame = pd.DataFrame(records)
    return frame.sort_values(["started", "run", "cell"], kind="stable").reset_index(drop=True) if records else frame
