"""What the orchestrator knows of a framework without importing it."""
from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DeviceInfo:
    """A device as a framework sees it: ``name`` is what ``--device`` accepts (``cpu``, ``cuda:0``).
    ``pci_bus_id``: a GPU's PCI address as ``DDDD:BB:DD.F`` (lower-case hex, NVML's form less its leading zeros), where
    the framework reports it (torch); ``convbench doctor`` checks it is the GPU NVML reads for the cell."""
    name: str
    description: str = ""
    memory_mb: float | None = None
    pci_bus_id: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "description": self.description, "memory_mb": self.memory_mb,
                "pci_bus_id": self.pci_bus_id}


@dataclass(frozen=True)
class FrameworkSpec:
    """A framework: its name, the module it imports and the distributions that may provide it.

    ``device_kinds`` lists the device prefixes it supports (``cpu``, ``cuda``). ``env`` holds
    environment variables every worker of this framework gets (thread settings and the like).
    ``data_parallel`` says how the framework's own engine trains one cell on several devices:
    ``"processes"`` (the harness starts one worker per device with torchrun/paddle-launch style
    environment variables), ``"devices"`` (one worker drives every device, e.g. MirroredStrategy) or
    None (not supported). ``compile_cache_modes``: the ``--compile`` values whose compiled programs the
    framework's persistent compilation cache keeps (``--compile-cache``); under any other the cache is not used and
    rows record ``compile_cache`` "unused".
    """
    name: str
    module: str
    distributions: tuple[str, ...]
    device_kinds: tuple[str, ...] = ("cpu", "cuda")
    env: dict[str, str] = field(default_factory=dict)
    data_parallel: str | None = None
    compile_cache_modes: tuple[str, ...] = ()

    def installed(self) -> tuple[bool, str]:
        """(True, "") if the module can be found, else (False, reason: what to install, from the distributions that
        provide it, since a third-party framework has no convbench extra and a GPU needs the framework's GPU build);
        imports nothing."""
        if importlib.util.find_spec(self.module) is None:
            return False, (f"python module {self.module!r} is not installed (pip install {' or '.join(self.distributions)}"
                           "; a GPU needs the framework's GPU build)")
        return True, ""

    def version(self) -> str | None:
        for dist in self.distributions:
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
        return None
