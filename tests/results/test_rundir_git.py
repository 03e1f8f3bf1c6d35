"""meta.json's git_commit and git_dirty: a source checkout's, never those of whatever repository an installed convbench
sits in. Real git repositories in tmp_path; the package directory is a parameter, so nothing is copied."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.results.rundir import base_meta, git_state

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
PYPROJECT = '[project]\nname = "convbench"\nversion = "0.1.0"\n'


def repo(folder: Path, files: dict[str, str]) -> str:
    """A git repository holding ``files``, committed; returns the commit."""
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "c"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def test_a_source_checkout_records_its_commit_and_whether_it_was_dirty(tmp_path):
    commit = repo(tmp_path, {"pyproject.toml": PYPROJECT, "harness/__init__.py": ""})
    assert git_state(tmp_path / "harness") == (commit, False)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run.csv").write_text("x")   # untracked files (results, notes) are not a change
    assert git_state(tmp_path / "harness") == (commit, False)
    (tmp_path / "harness" / "__init__.py").write_text("# edited\n")
    assert git_state(tmp_path / "harness") == (commit, True)


@pytest.mark.parametrize("layout", ["installed in another project's venv", "another project's pyproject", "not in git"])
def test_no_commit_unless_it_is_this_projects_checkout(tmp_path, layout):
    """Was: git rev-parse HEAD wherever the installed package happened to be (a venv inside someone's project)."""
    package = tmp_path / ".venv" / "lib" / "site-packages" / "harness"
    if layout == "installed in another project's venv":
        repo(tmp_path, {"pyproject.toml": '[project]\nname = "myproject"\n', ".venv/lib/site-packages/harness/x.py": ""})
    elif layout == "another project's pyproject":
        package = tmp_path / "harness"
        repo(tmp_path, {"pyproject.toml": '[project]\nname = "myproject"\n', "harness/__init__.py": ""})
    else:
        package.mkdir(parents=True)
    assert git_state(package) == (None, None)


def test_meta_has_both_keys():
    meta = base_meta("r", ["run"], {})
    assert {"git_commit", "git_dirty"} <= set(meta)
    assert (meta["git_commit"] is None) == (meta["git_dirty"] is None)
