"""Renders one cell's worker events: its epochs (and anything the worker prints) as plain lines, always; its steps
and speed-mode phases as a status for the run's live display (``harness.orchestrator.display``), when it has one."""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO

from harness.worker.protocol import parse_event

Status = Callable[[str, "float | None"], None]   # (what the cell does now, the fraction of its training done or None)


class Progress:
    def __init__(self, name: str, stream: TextIO | None = None, status: Status | None = None) -> None:
        self.name = name
        self.stream = stream or sys.stdout
        self.status = status
        self.started = time.monotonic()

    def __call__(self, line: str) -> None:
        event = parse_event(line)
        if event is None:
            self._plain(line)
            return
        if event["event"] == "epoch":
            done = event["epoch"] / max(event["epochs"], 1)
            self._plain(f"epoch {event['epoch']}/{event['epochs']} loss {event['train_loss']:.4f} "
                        f"test_acc {event['test_accuracy']:.4f} lr {event['lr']:g} "
                        f"train {event['train_time_s']:.1f}s {self._eta(done)}")
            self._status(f"epoch {event['epoch']}/{event['epochs']} done, test_acc {event['test_accuracy']:.4f}", done)
        elif event["event"] == "step":
            done = (event["epoch"] - 1 + event["step"] / max(event["steps"], 1)) / max(event["epochs"], 1)
            self._status(f"epoch {event['epoch']}/{event['epochs']} step {event['step']}/{event['steps']} "
                         f"loss {event['loss']:.4f} {self._eta(done)}", done)
        elif event["event"] == "phase":
            self._status(phase_text(event), None)

    def _eta(self, done: float) -> str:
        if done <= 0:
            return ""
        left = (time.monotonic() - self.started) * (1 - done) / done
        return f"eta {left:.0f}s"

    def _status(self, text: str, done: float | None) -> None:
        if self.status is not None:
            self.status(text.rstrip(), done)

    def _plain(self, text: str) -> None:
        print(f"[{self.name}] {text}", file=self.stream, flush=True)


def phase_text(event: dict[str, Any]) -> str:
    """A ``phase`` event in words: the setup, or a speed-mode phase and the steps it has timed (of a fixed count)."""
    name, step, steps = event.get("name"), event.get("step"), event.get("steps")
    if step is None:
        return str(name)
    return f"{name}: {step} steps" if steps == "auto" else f"{name}: step {step}/{steps}"
