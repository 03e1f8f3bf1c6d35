"""Renders a worker's progress events: a live status line on a terminal, plain lines otherwise."""
from __future__ import annotations

import sys
import time
from typing import TextIO

from harness.worker.protocol import parse_event


class Progress:
    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self.started = time.monotonic()
        self.pending_live = False

    def __call__(self, line: str) -> None:
        event = parse_event(line)
        if event is None:
            self._plain(line)
            return
        if event["event"] == "step":
            if self.live:
                done = (event["epoch"] - 1 + event["step"] / max(event["steps"], 1)) / max(event["epochs"], 1)
                self._live(f"epoch {event['epoch']}/{event['epochs']} step {event['step']}/{event['steps']} "
                           f"loss {event['loss']:.4f} {self._eta(done)}")
            return
        if event["event"] == "epoch":
            done = event["epoch"] / max(event["epochs"], 1)
            self._plain(f"epoch {event['epoch']}/{event['epochs']} loss {event['train_loss']:.4f} "
                        f"test_acc {event['test_accuracy']:.4f} lr {event['lr']:g} "
                        f"train {event['train_time_s']:.1f}s {self._eta(done)}")

    def _eta(self, done: float) -> str:
        if done <= 0:
            return ""
        left = (time.monotonic() - self.started) * (1 - done) / done
        return f"eta {left:.0f}s"

    def _live(self, text: str) -> None:
        self.stream.write(f"\r\x1b[2K[{self.name}] {text}")
        self.stream.flush()
        self.pending_live = True

    def _plain(self, text: str) -> None:
        if self.pending_live:
            self.stream.write("\r\x1b[2K")
            self.pending_live = False
        print(f"[{self.name}] {text}", file=self.stream, flush=True)
