"""The journal never loses a complete record; one convbench at a time in a run folder; meta.json from the start, with
the run's own start kept across resumes; plan.json and meta.json say which format and version wrote them."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import FAULT_ENV, edit_json, run_cli, wait_for

from harness import __version__
from harness.errors import ConvbenchError
from harness.orchestrator.plan import Plan
from harness.results import journal
from harness.results.rundir import FORMAT, base_meta, locked, new_run_dir, start_meta
from harness.settings import RunSettings

ROW = {"status": "ok", "model": "m"}


def record(cell: str) -> bytes:
    return json.dumps({"cell": cell, "rows": [ROW]}).encode() + b"\n"


def test_a_record_appended_after_a_torn_tail_starts_its_own_line(tmp_path):
    """The defect: the torn tail and the next record became one line, and attempts() dropped both."""
    journal.append(tmp_path, "a", [ROW])
    with open(tmp_path / journal.JOURNAL, "ab") as fh:
        fh.write(record("b")[:25])                 # a process died mid-write
    journal.append(tmp_path, "c", [ROW])
    records, skipped = journal.read(tmp_path)
    assert [r["cell"] for r in records] == ["a", "c"]
    assert skipped == [journal.Skipped(2, "not valid JSON: a write cut short?")]
    assert list(journal.latest(tmp_path)) == ["a", "c"]


def test_a_complete_record_missing_only_its_newline_is_kept(tmp_path):
    (tmp_path / journal.JOURNAL).write_bytes(record("a") + record("b")[:-1])
    journal.append(tmp_path, "c", [ROW])
    assert [r["cell"] for r in journal.attempts(tmp_path)] == ["a", "b", "c"]
    assert journal.read(tmp_path)[1] == []


@pytest.mark.parametrize("line,why", [
    (b"[]", "a JSON list, not an object"),
    (b"{}", "no cell name"),
    (b'"text"', "a JSON str, not an object"),
    (b'{"cell": 3, "rows": [{"status": "ok"}]}', "no cell name"),
    (b'{"cell": "x", "rows": []}', "no rows with a status"),
    (b'{"cell": "x", "rows": [{"model": "m"}]}', "no rows with a status"),
    (b'{"cell": "\xff\xfe", "rows": []}', "not UTF-8"),
    (b'{"cell": "x", "ro', "not valid JSON: a write cut short?"),
])
def test_a_line_that_is_not_a_record_is_skipped_and_named(tmp_path, line, why):
    (tmp_path / journal.JOURNAL).write_bytes(record("a") + line + b"\n" + record("b"))
    records, skipped = journal.read(tmp_path)
    assert [r["cell"] for r in records] == ["a", "b"] and skipped == [journal.Skipped(2, why)]
    assert skipped[0].describe(tmp_path) == f"{tmp_path / journal.JOURNAL} line 2 is not a record ({why}); skipped"


def faulty_run(out: Path, models: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, Path]:
    proc = run_cli("run", "--frameworks", "faulty", "--models", models, "--epochs", "1", "--batch-size", "64",
                   "--output", str(out), env={**FAULT_ENV, **(env or {})})
    return proc, max(p for p in out.iterdir() if p.is_dir())


@pytest.mark.e2e
def test_resume_after_a_torn_tail_loses_no_cell(tmp_path):
    """Before: the re-run cell vanished from results.csv and the resume exited 0."""
    _, run_dir = faulty_run(tmp_path, "fault_ok,fault_nan")
    data = (run_dir / journal.JOURNAL).read_bytes()
    (run_dir / journal.JOURNAL).write_bytes(data[:len(data) - 300])       # fault_nan's record torn
    proc = run_cli("run", "--resume", str(run_dir), env=FAULT_ENV)
    assert proc.returncode == 1, proc.stderr
    assert f"warning: {run_dir / journal.JOURNAL} line 2 is not a record (not valid JSON" in proc.stdout
    df = pd.read_csv(run_dir / "results.csv")
    assert dict(zip(df["model"], df["status"])) == {"fault_ok": "ok", "fault_nan": "diverged"}


def test_a_second_holder_of_a_run_folder_is_refused(tmp_path):
    with locked(tmp_path):
        code = ("import sys; from pathlib import Path; from harness.results.rundir import locked\n"
                "from harness.errors import ConvbenchError\ntry:\n    with locked(Path(sys.argv[1])): pass\n"
                "except ConvbenchError as e: print(e); sys.exit(2)")
        other = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
        assert other.returncode == 2
        assert other.stdout.strip().startswith(f"{str(tmp_path)!r} is in use by another convbench (pid {os.getpid()} on ")
        with pytest.raises(ConvbenchError, match="in use by another convbench"):   # a second open file, same process
            with locked(tmp_path):
                pass
    with locked(tmp_path):   # released when the block ends
        pass


def test_the_writability_probe_never_collides(tmp_path):
    """Before: every run probed with one fixed file name, so two runs starting together could fail each other."""
    (tmp_path / ".convbench-write-test").mkdir()   # the old fixed name, taken
    run_id, run_dir = new_run_dir(tmp_path)
    assert run_dir.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == [".convbench-write-test", run_id]


def test_meta_of_a_resume_keeps_the_run_start_and_records_the_resume(tmp_path):
    first = base_meta("20260101-000000", ["run"], {"epochs": 1})
    assert first["format"] == FORMAT and first["finished"] is None
    assert "resumes" not in start_meta(tmp_path, "20260101-000000", ["run"], {})   # a new run's folder
    (tmp_path / "meta.json").write_text(json.dumps({**first, "started": "2026-01-01T00:00:00+00:00",
                                                    "finished": "2026-01-01T01:00:00+00:00", "interrupted": True}))
    meta = start_meta(tmp_path, "20260101-000000", ["run"], {"epochs": 1})
    assert meta["started"] == "2026-01-01T00:00:00+00:00" and meta["finished"] is None and "interrupted" not in meta
    assert [set(r) for r in meta["resumes"]] == [{"started", "harness_version", "git_commit", "host"}]
    (tmp_path / "meta.json").unlink()
    (tmp_path / journal.JOURNAL).write_bytes(record("a"))    # a run folder whose meta.json was lost
    lost = start_meta(tmp_path, "20260101-000000-2", ["run"], {})
    assert lost["started"] == "2026-01-01T00:00:00+00:00" and "meta_lost" in lost and len(lost["resumes"]) == 1


def saved_plan(run_dir: Path, **changes) -> Path:
    Plan("r", run_dir, ["run"], ["faulty"], ["fault_ok"], [0], RunSettings(epochs=1)).save()
    edit_json(run_dir / "plan.json", **changes)
    return run_dir


def test_plan_records_its_format_and_version_and_loads_back(tmp_path):
    data = json.loads((saved_plan(tmp_path) / "plan.json").read_text())
    assert (data["format"], data["harness_version"]) == (FORMAT, __version__)
    assert Plan.load(tmp_path).settings.epochs == 1


@pytest.mark.parametrize("changes,message", [
    ({"harness_version": "9.9.9"}, "was started by convbench 9.9.9; this is convbench {v}: resume it with convbench 9.9.9"),
    ({"format": 0, "harness_version": "9.9.9"}, "is a run folder of format 0 (convbench 9.9.9); convbench {v} reads format"),
    ({"format": None, "harness_version": None, "settings": {"epochs": 1, "new_knob": 1}},
     "was started by an earlier convbench (its plan.json has no format version) whose settings convbench {v} cannot read"),
])
def test_resume_across_versions_is_refused_naming_both(tmp_path, changes, message):
    """Before: 'RunSettings: unknown setting(s)', or a silent resume mixing the rows of two versions."""
    saved_plan(tmp_path, **changes)
    with pytest.raises(ConvbenchError) as err:
        Plan.load(tmp_path)
    assert message.format(v=__version__) in str(err.value) and "start a new run" in str(err.value)


def test_a_plan_from_before_formats_is_taken_when_it_reads(tmp_path):
    saved_plan(tmp_path, format=None, harness_version=None)
    assert Plan.load(tmp_path).models == ["fault_ok"]
    (tmp_path / "meta.json").write_text(json.dumps({"harness_version": "0.0.1"}))   # but its meta.json names another
    with pytest.raises(ConvbenchError, match="started by convbench 0.0.1"):
        Plan.load(tmp_path)


def slow_worker(run_dir: Path) -> bool:
    out = subprocess.run(["pgrep", "-f", f"{run_dir}/cells/faulty-fault_slow_ok-cpu/cell.json"], capture_output=True,
                         text=True)
    return bool(out.stdout.split())



@pytest.mark.e2e
def test_killed_run_has_meta_and_a_second_resume_is_refused(tmp_path):
    """Before: a killed run had no meta.json, --resume wrote its own start as the run's, and a second --resume of the
    same folder ran the same cell at once."""
    release = tmp_path / "release"
    env = {**os.environ, **FAULT_ENV, "FAULTY_RELEASE": str(release)}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "harness", "run", "--frameworks", "faulty", "--models", "fault_ok,fault_slow_ok",
           "--epochs", "1", "--batch-size", "64", "--output", str(out)]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: out.exists() and any(out.iterdir()))
    run_dir = next(out.iterdir())
    wait_for(lambda: slow_worker(run_dir))
    first.send_signal(signal.SIGKILL)
    first.wait()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["started"] and meta["finished"] is None and meta["format"] == FORMAT
    wait_for(lambda: not slow_worker(run_dir), 60)
    resume = [sys.executable, "-m", "harness", "run", "--resume", str(run_dir)]
    a = subprocess.Popen(resume, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: slow_worker(run_dir))
    b = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=300)
    assert b.returncode == 2 and b.stderr.startswith(f"convbench: error: {str(run_dir)!r} is in use by another convbench")
    assert len(b.stderr.strip().splitlines()) == 1
    release.write_text("")
    out_a, err_a = a.communicate(timeout=300)
    assert a.returncode == 0, err_a
    assert [r["cell"] for r in journal.attempts(run_dir)] == ["faulty-fault_ok-cpu", "faulty-fault_slow_ok-cpu"]
    after = json.loads((run_dir / "meta.json").read_text())
    assert after["started"] == meta["started"] and after["finished"] and after["interrupted"] is False
    assert len(after["resumes"]) == 1 and after["resumes"][0]["harness_version"] == __version__
    assert after["resumes"][0]["finished"] == after["finished"]
