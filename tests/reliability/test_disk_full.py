"""A full disk, for real: a child process runs under RLIMIT_FSIZE with SIGXFSZ ignored, so a write past the limit fails
with EFBIG as it would with ENOSPC. Every refused write is one line naming the file and a non-zero exit; nothing
half-written or temporary is left; what was journaled stays, and ``--resume`` finishes the run afterwards."""
from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import FAULT_ENV, make_run, run_cli

from harness.atomic import write_atomic
from harness.commands import cli
from harness.results import journal

TOO_LARGE = os.strerror(errno.EFBIG)


def file_limit(nbytes: int):
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # inherited by the workers too
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return pre


def limited(nbytes: int, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **FAULT_ENV, **(env or {})}, preexec_fn=file_limit(nbytes))


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


WRITERS = """
import json, sys
from pathlib import Path
import numpy as np
from harness.atomic import WriteFailed, write_atomic
from harness.model.weights import save_weights
from harness.results.csvio import write_csv
from harness.results.rundir import write_json
folder = Path(sys.argv[1])
writes = {
    "notes.txt": lambda p: write_atomic(p, "x" * 5000),
    "results.csv": lambda p: write_csv([{"cell": "x" * 5000, "status": "ok"}], p),
    "meta.json": lambda p: write_json(p, {"x": "y" * 5000}),
    "checkpoint.npz": lambda p: save_weights(p, {"fc.weight": np.zeros((50, 50), np.float32)}, epoch="2"),
}
for name, write in writes.items():
    try:
        write(folder / name)
    except WriteFailed as exc:
        print(exc)
"""


def test_a_write_that_does_not_fit_is_one_line_and_leaves_the_old_file(tmp_path):
    names = ["notes.txt", "results.csv", "meta.json", "checkpoint.npz"]
    for name in names:
        (tmp_path / name).write_text("old")
    proc = limited(2000, "-c", WRITERS, str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"cannot write {str(tmp_path / n)!r}: {TOO_LARGE}" for n in names]
    assert listing(tmp_path) == sorted(names) and all((tmp_path / n).read_text() == "old" for n in names)


def test_an_atomic_file_gets_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644 and listing(tmp_path) == ["a.txt"]


APPEND = """
import sys
from pathlib import Path
from harness.atomic import WriteFailed
from harness.results import journal
try:
    journal.append(Path(sys.argv[1]), "c", [{"status": "ok", "note": "x" * 3000}])
except WriteFailed as exc:
    print(exc)
"""


def test_a_journal_append_that_does_not_fit_keeps_every_earlier_record(tmp_path):
    for cell in ("a", "b"):
        journal.append(tmp_path, cell, [{"status": "ok"}])
    size = (tmp_path / journal.JOURNAL).stat().st_size
    proc = limited(size + 100, "-c", APPEND, str(tmp_path))
    assert proc.stdout.strip() == f"cannot write {str(tmp_path / journal.JOURNAL)!r}: {TOO_LARGE}", proc.stderr
    assert (tmp_path / journal.JOURNAL).stat().st_size == size + 100            # torn: the disk took part of it
    records, skipped = journal.read(tmp_path)
    assert [r["cell"] for r in records] == ["a", "b"] and [s.line for s in skipped] == [3]
    journal.append(tmp_path, "c", [{"status": "ok"}])                              # room again: whole, own line
    assert [r["cell"] for r in journal.attempts(tmp_path)] == ["a", "b", "c"]


EPOCHS = """
import json, sys
from pathlib import Path
from harness.orchestrator.cells import rows_from_result
from harness.orchestrator.workers import WorkerResult
from harness.settings import Cell, RunSettings
cell = Cell(run_id="r", name="c", framework="faulty", model="fault_ok", run=RunSettings())
folder = Path(sys.argv[1])
payload = {"rows": [{"status": "ok", "note": ""}], "history": [{"epoch": 1, "pad": "x" * 5000}]}
print(json.dumps(rows_from_result(cell, WorkerResult(0, payload, folder / "worker.log"), folder)))
"""


def test_a_cell_whose_epochs_json_does_not_fit_keeps_its_row_with_a_note(tmp_path):
    proc = limited(2000, "-c", EPOCHS, str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"status": "ok", "note": f"epochs.json not saved ({TOO_LARGE})"}]
    assert listing(tmp_path) == []


def test_a_refused_write_no_writer_caught_is_still_one_line(monkeypatch, capsys):
    def full(args, argv):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/cells/c/cell.json")
    monkeypatch.setattr("harness.commands.list.run", full)
    assert cli.main(["list"]) == 2
    assert capsys.readouterr().err == f"convbench: error: cannot write '/x/cells/c/cell.json': {os.strerror(errno.ENOSPC)}\n"


RUN = ("-m", "harness", "run", "--frameworks", "faulty", "--epochs", "1", "--batch-size", "64")


@pytest.mark.e2e
def test_a_full_disk_mid_run_is_one_line_and_resume_finishes_the_run(tmp_path):
    run_cli(*RUN[2:], "--models", "fault_ok,fault_nan,fault_error", "--output", str(tmp_path), env=FAULT_ENV)
    run_dir = next(tmp_path.iterdir())
    limit = (run_dir / journal.JOURNAL).stat().st_size + 300    # the resume's first record will not fit
    assert all(p.stat().st_size < limit - 1000 for p in run_dir.rglob("*") if p.is_file() and p.name != "journal.jsonl"
               and p.suffix != ".npz")   # (the checkpoint of the kept cell is not written again)
    proc = limited(limit, "-m", "harness", "run", "--resume", str(run_dir))
    assert proc.returncode == 2
    assert proc.stderr == (f"convbench: error: cannot write {str(run_dir / journal.JOURNAL)!r}: {TOO_LARGE}. Every cell "
                           f"already journaled is kept; make room, then finish the run with: convbench run --resume "
                           f"{run_dir}\n")
    assert [r["rows"][0]["model"] for r in journal.attempts(run_dir)] == ["fault_ok", "fault_nan", "fault_error"]
    assert "journal.jsonl" in json.loads((run_dir / "meta.json").read_text())["stopped"]
    again = run_cli("run", "--resume", str(run_dir), env=FAULT_ENV)
    assert again.returncode == 1, again.stderr
    assert "line 4 is not a record" in again.stdout          # the torn record of the refused append
    df = pd.read_csv(run_dir / "results.csv")
    assert dict(zip(df["model"], df["status"])) == {"fault_ok": "ok", "fault_nan": "diverged", "fault_error": "error"}
    assert len(journal.attempts(run_dir)) == 5 and json.loads((run_dir / "meta.json").read_text()).get("stopped") is None


@pytest.mark.e2e
def test_a_finished_cell_keeps_its_row_when_its_last_checkpoint_does_not_fit(tmp_path):
    """Before: the cell's row was an 'error' (OSError) and checkpoint.npz.tmp was left behind."""
    proc = limited(20000, *RUN, "--models", "fault_ok", "--output", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    run_dir = next(tmp_path.iterdir())
    row = pd.read_csv(run_dir / "results.csv").iloc[0]
    assert row["status"] == "ok" and row["test_accuracy"] > 0.1
    assert f"checkpoint.npz not saved after epoch 1 ({TOO_LARGE})" in row["note"]
    assert listing(run_dir / "cells" / "faulty-fault_ok-cpu") == ["cell.json", "epochs.json", "worker.log"]


@pytest.mark.e2e
def test_report_and_history_on_a_full_disk_are_one_line(tmp_path):
    run_dir = make_run(tmp_path, frameworks=("torch", "paddle"))
    # Matplotlib's font cache, which a fresh environment builds on first use (and, on a full disk, says it could not
    # save on a line of its own): made here, before the limit, so the report's one line is all that is compared
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], check=True, capture_output=True)
    before = listing(tmp_path)
    proc = limited(4000, "-m", "harness", "report", str(run_dir))
    assert proc.returncode == 2
    assert proc.stderr == f"convbench: error: cannot write {str(run_dir / 'accuracy_vs_time.png')!r}: {TOO_LARGE}\n"
    proc = limited(100, "-m", "harness", "history", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr == f"convbench: error: cannot write {str(tmp_path / 'history.csv')!r}: {TOO_LARGE}\n"
    assert listing(tmp_path) == before           # nothing half-written, no temporary file
    assert run_cli("report", str(run_dir)).returncode == 0
