"""--compile-cache: the cache state each row records, measured from the cache folder's files (cold, warm, unused,
empty when off); end to end with real frameworks, a first run cold and a second with the same folder warm."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from helpers import needs, run_cli

from harness.worker.compile_cache import CacheWatch, snapshot


def test_off_is_none(tmp_path: Path):
    assert CacheWatch.start(None, True).state() is None


def test_states_follow_the_files(tmp_path: Path):
    folder = tmp_path / "jax"
    watch = CacheWatch.start(str(folder), True)   # the folder need not exist yet
    assert watch.state() == "unused"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "program-cache").write_bytes(b"x" * 10)
    assert watch.state() == "cold"
    assert snapshot(str(folder)) == {(str(Path("sub") / "program-cache"), 10)}
    again = CacheWatch.start(str(folder), True)
    assert again.state() == "warm"
    (folder / "other-cache").write_bytes(b"y")
    assert again.state() == "cold"   # a new program compiled beside the cached ones


def test_a_compile_mode_the_framework_does_not_cache_is_unused_not_warm(tmp_path: Path):
    (tmp_path / "entry.pb").write_bytes(b"x")
    assert CacheWatch.start(str(tmp_path), False).state() == "unused"


def states(out: Path) -> list[str]:
    run_dir = max(out.iterdir())
    with open(run_dir / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all(r["status"] == "ok" for r in rows), rows
    print([(r["phase"], r["first_step_s"], r["compile_cache"]) for r in rows])   # the first steps, for the reader
    return [r["compile_cache"] for r in rows]


def speed_run(out: Path, framework: str, *args: str) -> list[str]:
    done = run_cli("run", "--mode", "speed", "--frameworks", framework, "--models", "lenet5", "--batch-size", "8",
                   "--steps", "3", "--warmup", "1", "--threads", "1", "--output", str(out), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return states(out)


@pytest.mark.e2e
@pytest.mark.parametrize("framework, compile_mode", [
    pytest.param("jax", "auto", marks=needs("jax")),
    pytest.param("tensorflow", "xla", marks=needs("tensorflow")),
    pytest.param("torch", "default", marks=needs("torch")),   # torch.compile on CPU builds C++: about 50 s for both
])
def test_a_second_run_with_the_same_cache_is_warm(tmp_path: Path, framework: str, compile_mode: str):
    cache = tmp_path / "cache"
    first = speed_run(tmp_path / "first", framework, "--compile", compile_mode, "--compile-cache", str(cache))
    assert first == ["cold"] * 3
    assert any((cache / framework).iterdir())
    second = speed_run(tmp_path / "second", framework, "--compile", compile_mode, "--compile-cache", str(cache))
    assert second == ["warm"] * 3


@pytest.mark.e2e
@needs("tensorflow")
def test_a_compile_mode_without_a_persistent_cache_is_unused(tmp_path: Path):
    cache = tmp_path / "cache"
    assert speed_run(tmp_path / "out", "tensorflow", "--compile", "auto", "--compile-cache", str(cache)) == ["unused"] * 3


@pytest.mark.e2e
@needs("jax")
def test_without_the_flag_the_column_is_empty(tmp_path: Path):
    assert speed_run(tmp_path / "out", "jax") == [""] * 3


@pytest.mark.parametrize("below, message", [("", "is not a folder"), ("below", "cannot make the --compile-cache folder")])
def test_a_bad_folder_is_one_line_before_any_cell(tmp_path: Path, below: str, message: str):
    (tmp_path / "file").write_text("x")
    bad = tmp_path / "file" / below if below else tmp_path / "file"
    out = tmp_path / "out"
    done = run_cli("run", "--mode", "speed", "--models", "lenet5", "--compile-cache", str(bad), "--output", str(out))
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not out.exists()
