"""The one way every writer (report.md, report.html, history) makes its output folder, or says why it cannot."""
from __future__ import annotations

import pytest
from helpers import make_run

from harness.errors import ConvbenchError
from harness.results.history import write_history
from harness.results.outdir import output_dir
from harness.results.report import write_report
from harness.results.report_html import write_html


def test_the_folder_and_its_parents_are_made(tmp_path):
    assert output_dir(tmp_path / "a" / "b", tmp_path / "default") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and not (tmp_path / "default").exists()
    assert output_dir(str(tmp_path / "a" / "b"), tmp_path) == tmp_path / "a" / "b"     # already there
    assert output_dir(None, tmp_path / "default") == tmp_path / "default" and (tmp_path / "default").is_dir()


@pytest.mark.parametrize("writer", ["report", "html", "history"])
def test_every_writer_says_in_one_line_why_it_cannot_make_the_folder(tmp_path, writer):
    run_dir = make_run(tmp_path / "results", mode="speed", dataset="synthetic")
    (tmp_path / "file").write_text("in the way")
    blocked = tmp_path / "file" / "out"
    write = {"report": lambda: write_report(run_dir, blocked), "html": lambda: write_html(run_dir, blocked),
             "history": lambda: write_history(tmp_path / "results", blocked)}[writer]
    with pytest.raises(ConvbenchError) as err:
        write()
    assert str(err.value) == f"cannot create {str(blocked)!r}: Not a directory"
