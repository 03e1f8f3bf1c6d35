"""The run's progress over its matrix: off a terminal one plain ``[progress]`` line per finished cell after the usual
lines; on a terminal rich's live display (the matrix's bar, cells done of total), plain again with NO_COLOR or
TERM=dumb. The ETA's arithmetic is checked on a clock the test moves."""
from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest
from helpers import FAULT_ENV, PATIENCE_S, run_cli
from rich.console import Console

from harness.orchestrator.display import Estimate, Matrix, live_terminal
from harness.orchestrator.live import LiveMatrix
from harness.orchestrator.progress import Progress

CLOCK = r"(\d+h)?(\d+m)?\d+s"   # budget.clock_text: 7s, 2m05s, 1h02m03s
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_cell_is_expected_to_take_its_model_s_mean_else_every_cell_s():
    est = Estimate()
    assert est.expected("vgg16") is None and est.left(["vgg16"], [], 0.0) is None
    est.add("lenet5", 10.0)
    est.add("lenet5", 20.0)
    est.add("vgg16", 90.0)
    assert est.expected("lenet5") == 15.0 and est.expected("vgg16") == 90.0
    assert est.expected("resnet32") == 40.0                    # no resnet32 finished yet: every cell's mean
    # one cell at a time (120 s of cells in 120 s): what is left adds up, less what the running cell has run
    assert est.left(["lenet5", "vgg16"], [("lenet5", 5.0)], 120.0) == 15.0 + 90.0 + 10.0
    assert est.left([], [("lenet5", 60.0)], 120.0) == 0.0      # a cell past its estimate is not negative time
    # three cells at a time (120 s of cells in 40 s of wall time): a third of it
    assert est.left(["vgg16", "vgg16"], [], 40.0) == 60.0


def test_the_plain_line_counts_kept_cells_as_done_and_times_from_the_run_s_start():
    clock, said = Clock(), []
    matrix = Matrix(started=clock.now, clock=clock, say=said.append)
    matrix.add("torch-lenet5-cpu", "lenet5", finished=True)       # kept from an earlier attempt
    for name in ("torch-vgg16-cpu", "jax-lenet5-cpu", "jax-vgg16-cpu"):
        matrix.add(name, name.split("-")[1])
    clock.now += 10                                                # probes
    with matrix:
        matrix.watch("torch-vgg16-cpu")
        assert matrix.summary() == "1/4 cells done, 10s elapsed"   # nothing measured: no eta
        clock.now += 80
        matrix.finished("torch-vgg16-cpu", [{"cell_wall_s": 80.0}])
        matrix.watch("jax-lenet5-cpu")
        clock.now += 30
        matrix.finished("jax-lenet5-cpu", [{"status": "ok"}])    # no cell_wall_s: the time it ran here
        matrix.watch("jax-vgg16-cpu")
        clock.now += 20
        assert matrix.summary() == "3/4 cells done, 2m20s elapsed, eta 1m00s"   # vgg16's 80 s, 20 s of it run
        clock.now += 70
        matrix.finished("jax-vgg16-cpu", [{"cell_wall_s": 90.0}])
    assert said == ["[progress] 2/4 cells done, 1m30s elapsed, eta 2m40s",   # 80 s for each of the two left
                    "[progress] 3/4 cells done, 2m00s elapsed, eta 1m20s",
                    "[progress] 4/4 cells done, 3m30s elapsed"]


def test_under_ray_each_cell_in_flight_has_its_line_under_the_matrix_bar():
    out = io.StringIO()
    matrix = LiveMatrix(time.monotonic(), local=False,
                        console=Console(file=out, force_terminal=True, width=120, soft_wrap=True))
    for model in ("lenet5", "vgg16"):
        matrix.add(f"torch-{model}-cuda:0", model)
    with matrix:
        matrix.bars.refresh()
        matrix.finished("torch-lenet5-cuda:0", [{"cell_wall_s": 3.0}])
        matrix.bars.refresh()
    frames = ANSI.sub("", out.getvalue())
    assert "0/2 cells done" in frames and "torch-vgg16-cuda:0" in frames and "submitted to ray" in frames
    assert "1/2 cells done, eta " in frames


def test_a_cell_s_steps_and_phases_are_its_status_and_its_epochs_stay_plain_lines():
    out, status = io.StringIO(), []
    watch = Progress("torch-lenet5-cpu", stream=out, status=lambda text, done: status.append((text, done)))
    watch(json.dumps({"event": "phase", "name": "setup: data, model and weights"}))
    watch(json.dumps({"event": "step", "epoch": 2, "epochs": 2, "step": 5, "steps": 10, "loss": 0.5}))
    watch(json.dumps({"event": "epoch", "epoch": 2, "epochs": 2, "train_loss": 0.25, "test_accuracy": 0.9, "lr": 0.01,
                      "train_time_s": 3.0}))
    watch(json.dumps({"event": "phase", "name": "forward", "step": 12, "steps": "auto"}))
    watch(json.dumps({"event": "phase", "name": "forward pipelined", "step": 40, "steps": 50}))
    watch("Forward across 100 steps, 0.001 +/- 0.000 sec / batch")
    assert [text.split(" eta")[0] for text, _ in status] == [
        "setup: data, model and weights", "epoch 2/2 step 5/10 loss 0.5000", "epoch 2/2 done, test_acc 0.9000",
        "forward: 12 steps", "forward pipelined: step 40/50"]
    assert [done for _, done in status] == [None, 0.75, 1.0, None, None]
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[torch-lenet5-cpu] epoch 2/2 loss 0.2500 test_acc 0.9000 lr 0.01 train 3.0s eta ")
    assert lines[1:] == ["[torch-lenet5-cpu] Forward across 100 steps, 0.001 +/- 0.000 sec / batch"]
    plain = io.StringIO()   # without a display (off a terminal): steps and phases print nothing, as before
    Progress("c", stream=plain)(json.dumps({"event": "step", "epoch": 1, "epochs": 2, "step": 5, "steps": 10, "loss": 0.5}))
    assert plain.getvalue() == ""


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("env,live", [({"TERM": "xterm"}, True), ({}, True), ({"TERM": "dumb"}, False),
                                      ({"TERM": "xterm", "NO_COLOR": "1"}, False), ({"NO_COLOR": ""}, True)])
def test_the_live_display_needs_a_terminal_that_has_not_asked_for_plain_text(env, live):
    assert live_terminal(Tty(), env) is live
    assert live_terminal(io.StringIO(), env) is False


def faulty_run(*args: str) -> tuple[str, ...]:
    return ("run", "--frameworks", "faulty", "--epochs", "1", "--batch-size", "64", *args)


@pytest.mark.e2e
def test_off_a_terminal_each_finished_cell_adds_one_plain_line(tmp_path):
    proc = run_cli(*faulty_run("--models", "fault_ok,fault_error", "--output", str(tmp_path)), env=FAULT_ENV)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    progress = [i for i, line in enumerate(lines) if line.startswith("[progress]")]
    assert len(progress) == 2 and "\x1b" not in proc.stdout
    assert re.fullmatch(rf"\[progress\] 1/2 cells done, {CLOCK} elapsed, eta {CLOCK}", lines[progress[0]])
    assert re.fullmatch(rf"\[progress\] 2/2 cells done, {CLOCK} elapsed", lines[progress[1]])
    assert lines[progress[0] - 1] == "[faulty-fault_ok-cpu] train ok"            # after the cell's own lines
    assert lines[progress[1] - 1].startswith("[faulty-fault_error-cpu] train error: RuntimeError: boom")
    resumed = run_cli("run", "--resume", str(next(tmp_path.iterdir())), env=FAULT_ENV)   # fault_error again
    [line] = [line for line in resumed.stdout.splitlines() if line.startswith("[progress]")]
    assert re.fullmatch(rf"\[progress\] 2/2 cells done, {CLOCK} elapsed", line)   # the kept cell counts as done


def on_a_terminal(args: tuple[str, ...], env: dict[str, str]) -> tuple[int, str]:
    """convbench ARGS with a pseudo-terminal (120 columns) as its stdin, stdout and stderr: (exit code, all it wrote)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM", "COLUMNS")}
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], stdin=slave, stdout=slave, stderr=slave,
                            env={**full_env, **FAULT_ENV, **env})
    os.close(slave)
    out, deadline = b"", time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:   # reading all along, so the terminal never fills
        if select.select([master], [], [], 0.1)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:   # EIO: the run has ended and closed the terminal
                break
            if not data:
                break
            out += data
    os.close(master)
    return proc.wait(timeout=PATIENCE_S), out.decode(errors="replace")


@pytest.mark.e2e
@pytest.mark.parametrize("env,live", [({"TERM": "xterm-256color"}, True), ({"TERM": "xterm-256color", "NO_COLOR": "1"}, False)])
def test_on_a_terminal_the_matrix_bar_else_the_plain_lines(tmp_path, env, live):
    code, out = on_a_terminal(faulty_run("--models", "fault_ok,fault_error", "--output", str(tmp_path)), env)
    assert code == 1, out
    text = ANSI.sub("", out)
    assert "[faulty-fault_ok-cpu] train ok" in text and "[faulty-fault_error-cpu] train error" in text   # the log, whole
    assert "results: " in text
    if live:
        assert "\x1b[?25l" in out and "2/2 cells done" in text and "[progress]" not in text   # rich hid the cursor
    else:
        assert "\x1b" not in out and re.search(rf"\[progress\] 2/2 cells done, {CLOCK} elapsed\r\n", out)
