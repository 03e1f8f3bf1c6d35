"""--python and --config at the edges: an executable that is not a program, a bare name, another build of the same
version, a config file with a misspelt table or key and paths relative to it. Each fault is made for real: files
written by the test, a copy of this checkout with one file changed behind a wrapper interpreter."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from helpers import REGISTRIES, needs, run_cli

import harness
from harness import __version__
from harness.errors import ConvbenchError
from harness.identity import build_id, differing_files, source_hashes
from harness.orchestrator.interpreters import from_config, interpreter_info, mismatch, problem, resolve_pythons
from harness.orchestrator.probes import probe_framework
from harness.orchestrator.workers import Worker, WorkerStartError, worker_env
from harness.worker.jobs import interpreter
from harness.worker.protocol import InfoJob

ROOT = Path(harness.__file__).resolve().parent.parent
KNOWN = REGISTRIES.frameworks.names()
SPEC = REGISTRIES.frameworks.get(KNOWN[0])


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def not_a_program(tmp_path) -> Path:
    """Executable, but neither a binary nor a #! script: exec fails with ENOEXEC."""
    return executable(tmp_path / "notes", "these are notes, not a program\n")


def test_an_executable_that_is_not_a_program_is_the_probes_bad_interpreter_line(tmp_path, not_a_program):
    assert problem(str(not_a_program)) is None   # what can be seen before starting it looks fine
    with pytest.raises(WorkerStartError, match="is not a program this system can run \\(Exec format error\\)"):
        Worker(InfoJob(SPEC.name), worker_env(SPEC, 1), tmp_path / "w.log", python=str(not_a_program))
    probe = probe_framework(SPEC, 1, tmp_path / "probe.log", python=str(not_a_program))
    assert not probe.available and probe.bad_interpreter
    assert probe.reason == (f"--python {SPEC.name}={not_a_program}: {not_a_program} is not a program this system can "
                            "run (Exec format error): an interpreter is a binary or a script whose first line is #!")
    assert "is not a program this system can run" in interpreter_info(SPEC, str(not_a_program))["reason"]


def test_a_bare_name_is_looked_up_on_path_never_in_the_working_directory(tmp_path, monkeypatch):
    bin_dir, cwd = tmp_path / "bin", tmp_path / "cwd"
    bin_dir.mkdir(), cwd.mkdir()
    on_path = executable(bin_dir / "fakepython3", "#!/bin/sh\n")
    executable(cwd / "cwdpython3", "#!/bin/sh\n")   # in the working directory only: not what a bare name means
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.chdir(cwd)
    got = resolve_pythons([f"{KNOWN[0]}=fakepython3", f"{KNOWN[-1]}=cwdpython3"], None, KNOWN, {})
    assert got == {KNOWN[0]: str(on_path), KNOWN[-1]: "cwdpython3"}
    assert problem("cwdpython3") == "no 'cwdpython3' on PATH (give the interpreter's path, e.g. /envs/torch/bin/python)"
    assert resolve_pythons([f"{KNOWN[0]}=./cwdpython3"], None, KNOWN, {})[KNOWN[0]] == str(cwd / "cwdpython3")


@pytest.mark.parametrize("text, message", [
    ('[pyhton]\ntorch = "/envs/torch/bin/python"\n', "unknown table [pyhton]; known tables: [python], [slurm]"),
    ('torch = "/envs/torch/bin/python"\n', "unknown key 'torch' outside a table; known tables: [python], [slurm]"),
    ('[python]\ntorch = "/x"\n[python.extra]\n', "[python] maps framework names to interpreter paths"),
])
def test_a_config_file_with_an_unknown_table_or_key_is_refused(tmp_path, text, message):
    config = tmp_path / "convbench.toml"
    config.write_text(text)
    with pytest.raises(ConvbenchError) as info:
        from_config(config)
    assert str(info.value) == f"config file {str(config)!r}: {message}"


def test_a_misspelt_framework_in_the_config_file_names_the_file(tmp_path):
    config = tmp_path / "convbench.toml"
    config.write_text('[python]\ntroch = "/envs/torch/bin/python"\n')
    with pytest.raises(ConvbenchError, match=f"unknown framework 'troch'.*\\(in config file {str(config)!r} \\[python\\]\\)$"):
        resolve_pythons(None, str(config), ["torch", "jax"], {})


def test_config_paths_are_relative_to_the_file_and_bare_names_to_path(tmp_path, monkeypatch):
    folder, elsewhere, bin_dir = tmp_path / "conf", tmp_path / "elsewhere", tmp_path / "bin"
    for d in (folder, elsewhere, bin_dir):
        d.mkdir()
    executable(bin_dir / "fakepython3", "#!/bin/sh\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.chdir(elsewhere)
    (folder / "convbench.toml").write_text('[python]\ntorch = "envs/torch/bin/python"\njax = "fakepython3"\n'
                                           'paddle = "~/envs/paddle/bin/python"\n')
    got = resolve_pythons(None, "../conf/convbench.toml", ["torch", "jax", "paddle"], {})
    assert got == {"torch": str(folder / "envs/torch/bin/python"), "jax": str(bin_dir / "fakepython3"),
                   "paddle": str(Path.home() / "envs/paddle/bin/python")}
    # the command line and the environment stay relative to the working directory
    assert resolve_pythons(["torch=envs/python"], "../conf/convbench.toml", ["torch", "jax", "paddle"],
                           {})["torch"] == str(elsewhere / "envs/python")


def test_the_build_identity_tells_two_builds_of_one_version_apart():
    facts = interpreter()   # what a worker of this interpreter reports
    assert facts["build"] == build_id() and mismatch(facts) is None
    other = dict(source_hashes(), **{"harness/worker/training.py": "0" * 12, "harness/new.py": "1" * 12})
    assert differing_files(other) == ["harness/new.py", "harness/worker/training.py"]
    message = mismatch({**facts, "build": "abcdef012345", "build_files": other})
    assert message == (f"has convbench {__version__} built from other code (build abcdef012345 there, {build_id()} "
                       "here; 2 file(s) differ: harness/new.py, harness/worker/training.py): install this convbench there")
    assert mismatch({"convbench": __version__}) == (f"has convbench {__version__} from older code (no build identity): "
                                                    "install this convbench there")
    assert mismatch({**facts, "convbench": "0.0.9"}) == (f"has convbench 0.0.9, this convbench is {__version__}: "
                                                         f"install {__version__} there")


# ---- the real CLI ------------------------------------------------------------------------------------------------

@pytest.mark.e2e
def test_cli_not_a_program_and_a_bad_config_are_one_line(tmp_path, not_a_program):
    proc = run_cli("run", "--frameworks", KNOWN[0], "--python", f"{KNOWN[0]}={not_a_program}", "--output",
                   str(tmp_path / "out"), timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"convbench: error: --python {KNOWN[0]}={not_a_program}: {not_a_program} is not a program this system can run "
        "(Exec format error): an interpreter is a binary or a script whose first line is #!"], proc.stderr[-2000:]
    (tmp_path / "convbench.toml").write_text('[pyhton]\ntorch = "/envs/torch/bin/python"\n')
    proc = run_cli("plugins", "--config", str(tmp_path / "convbench.toml"), timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"convbench: error: config file {str(tmp_path / 'convbench.toml')!r}: unknown table [pyhton]; known tables: "
        "[python], [slurm]"], proc.stderr[-2000:]


@pytest.mark.e2e
@needs("torch")
def test_cli_the_same_version_from_other_code_is_refused_naming_the_file(tmp_path):
    """Another interpreter whose convbench is this checkout with one file changed (another commit, a local edit):
    the same version string, told apart by the build identity."""
    copy = tmp_path / "other"
    shutil.copytree(ROOT / "harness", copy / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "plugins").symlink_to(ROOT / "plugins")
    with open(copy / "harness" / "worker" / "training.py", "a") as fh:
        fh.write("\n# a later commit\n")
    other = executable(tmp_path / "other-python",
                       f'#!/bin/sh\nPYTHONPATH="{copy}{os.pathsep}{copy / "plugins"}" exec "{sys.executable}" "$@"\n')
    proc = run_cli("run", "--frameworks", "torch", "--models", "lenet5", "--epochs", "1", "--python",
                   f"torch={other}", "--output", str(tmp_path / "out"), timeout=300)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
    assert (f"--python torch={other}: has convbench {__version__} built from other code (build " in proc.stderr
            and f", {build_id()} here; 1 file(s) differ: harness/worker/training.py): install this convbench there"
            in proc.stderr), proc.stderr
