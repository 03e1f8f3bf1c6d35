"""Device strings: the one parser of ``cpu``, ``cuda`` and ``cuda:N`` (the CLI, the plan, every plugin).

``cuda`` means ``cuda:0``. Anything else is a one-line ``ConvbenchError`` with the same text wherever it
was typed, so a user sees one message for one mistake.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import ConvbenchError

KINDS = ("cpu", "cuda")
_PATTERN = re.compile(r"(cpu)|(cuda)(?::(\d+))?")


@dataclass(frozen=True)
class Device:
    """A parsed device: ``kind`` is ``cpu`` or ``cuda``; ``index`` is None for the CPU."""
    kind: str
    index: int | None = None

    @property
    def name(self) -> str:
        """The canonical string: ``cpu`` or ``cuda:N``."""
        return self.kind if self.index is None else f"{self.kind}:{self.index}"

    @property
    def is_gpu(self) -> bool:
        return self.kind == "cuda"

    @property
    def is_cpu(self) -> bool:
        return self.kind == "cpu"

    def local(self, visible: tuple["Device", ...] | None) -> "Device":
        """This device as a worker that sees only ``visible`` GPUs names it (their first is cuda:0); the CPU, or
        any device when every GPU is visible (None), keeps its name."""
        if visible is None or not self.is_gpu:
            return self
        return Device("cuda", visible.index(self))

    def __str__(self) -> str:
        return self.name


CPU = Device("cpu")


def unknown_device(text: str) -> str:
    return f"unknown device {text!r}; use cpu, cuda or cuda:N"


def parse_device(text: str | Device) -> Device:
    """``cpu`` -> Device("cpu"); ``cuda`` / ``cuda:N`` -> Device("cuda", N); ConvbenchError otherwise."""
    if isinstance(text, Device):
        return text
    match = _PATTERN.fullmatch(str(text).strip())
    if not match:
        raise ConvbenchError(unknown_device(str(text)))
    if match.group(1):
        return CPU
    return Device("cuda", int(match.group(3) or 0))


def parse_gpu_list(names: list[str] | tuple[str, ...]) -> tuple[Device, ...]:
    """``--devices cuda:0,cuda:1``: GPUs only, each once; ConvbenchError naming the first problem."""
    devices = tuple(parse_device(n) for n in names)
    cpus = [d.name for d in devices if not d.is_gpu]
    if cpus:
        raise ConvbenchError(f"--devices takes GPUs as cuda:N, got {', '.join(cpus)}; use --nproc N for CPU processes")
    seen: set[str] = set()
    for d in devices:
        if d.name in seen:
            raise ConvbenchError(f"--devices names {d.name} twice; each GPU trains one replica")
        seen.add(d.name)
    return devices


def absent(device: Device, framework: str, count: int, hint: str = "") -> ConvbenchError:
    """The one error for a GPU a framework does not see (``count`` GPUs visible to it)."""
    seen = f"{framework} sees {count} GPU(s)" if count else f"{framework} sees no GPU"
    return ConvbenchError(f"device {device.name!r} is not available: {seen}{hint}")


def visible_ids(devices: tuple[Device, ...] | list[Device], parent: str | None) -> list[str]:
    """The CUDA_VISIBLE_DEVICES entries for GPU ``devices`` (named in this process's numbering). Under a parent
    CUDA_VISIBLE_DEVICES (a user's, or Ray's for a task) cuda:N is its N-th entry, an index or a UUID."""
    entries = [e.strip() for e in parent.split(",")] if parent is not None else None
    out = []
    for device in devices:
        index = device.index
        assert device.is_gpu and index is not None, f"{device} is not a GPU"
        if entries is None:
            out.append(str(index))
        elif index < len(entries) and entries[index]:
            out.append(entries[index])
        else:
            raise ConvbenchError(f"device {device.name!r} is not available: CUDA_VISIBLE_DEVICES={parent!r} shows "
                                 f"{len([e for e in entries if e])} GPU(s)")
    return out
