"""NVIDIA GPUs through NVML (the ``nvidia-ml-py`` package, the optional extra ``gpu``): what a GPU row and
meta.json record about the device, read where the cell runs, without any deep-learning framework.

Every reading is best effort: a part or driver that does not support a query gives None for that field, and
a machine without NVML (no driver, no package) gives ``unavailable`` with the reason, never an error. The
functions take the NVML module as an argument, so tests can hand them recorded readings.
"""
from __future__ import annotations

from typing import Any, Callable

Nvml = Any  # the pynvml module (or a stand-in with the same functions)


def load() -> tuple[Nvml | None, str]:
    """(the initialised pynvml module, "") or (None, why NVML cannot be used here)."""
    try:
        import pynvml
    except ImportError:
        return None, "nvidia-ml-py is not installed (pip install 'convbench[gpu]')"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None, f"NVML cannot start: {exc}"
    return pynvml, ""


def _read(fn: Callable[[], Any]) -> Any:
    """One NVML query; None when the part or driver does not support it."""
    try:
        return fn()
    except Exception:
        return None


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def handle(nvml: Nvml, entry: str) -> Any:
    """The NVML handle of a CUDA_VISIBLE_DEVICES entry: an index (PCI bus order, which convbench sets with
    CUDA_DEVICE_ORDER) or a GPU-/MIG- UUID."""
    entry = entry.strip()
    return nvml.nvmlDeviceGetHandleByIndex(int(entry)) if entry.isdigit() else nvml.nvmlDeviceGetHandleByUUID(entry)


def handle_or_none(nvml: Nvml, entry: str) -> Any:
    return _read(lambda: handle(nvml, entry))


def cuda_driver_version(nvml: Nvml) -> str | None:
    """The CUDA version the driver supports, as '12.4'."""
    version = _read(nvml.nvmlSystemGetCudaDriverVersion)
    return f"{version // 1000}.{version % 1000 // 10}" if isinstance(version, int) else None


def system(nvml: Nvml) -> dict[str, Any]:
    return {"driver": _text(_read(nvml.nvmlSystemGetDriverVersion)), "cuda_driver": cuda_driver_version(nvml),
            "gpus": _read(nvml.nvmlDeviceGetCount)}


def device(nvml: Nvml, h: Any) -> dict[str, Any]:
    """Static facts of one GPU: name, memory, maximum SM clock, enforced power limit, MIG mode."""
    memory = _read(lambda: nvml.nvmlDeviceGetMemoryInfo(h))
    power = _read(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(h))
    mig = _read(lambda: nvml.nvmlDeviceGetMigMode(h))
    return {"name": _text(_read(lambda: nvml.nvmlDeviceGetName(h))),
            "uuid": _text(_read(lambda: nvml.nvmlDeviceGetUUID(h))),
            "memory_mb": memory.total / 2**20 if memory is not None else None,
            "sm_clock_max_mhz": _read(lambda: nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_SM)),
            "memory_clock_max_mhz": _read(lambda: nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_MEM)),
            "power_limit_w": power / 1000 if power is not None else None,
            "mig": None if mig is None else ("enabled" if mig[0] else "disabled")}


def pci_bus_id(nvml: Nvml, h: Any) -> str | None:
    """The GPU's PCI address as NVML writes it ('00000000:3B:00.0')."""
    info = _read(lambda: nvml.nvmlDeviceGetPciInfo(h))
    return _text(getattr(info, "busId", None)) if info is not None else None


def processes(nvml: Nvml, h: Any) -> list[int]:
    """Process ids with a context on the GPU (compute and graphics)."""
    pids: set[int] = set()
    for query in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        for proc in _read(lambda q=query: getattr(nvml, q)(h)) or []:
            pids.add(int(proc.pid))
    return sorted(pids)


def machine(nvml: Nvml | None = None, why: str = "") -> dict[str, Any]:
    """meta.json's ``gpus``: the driver and every GPU's facts, or {"nvml": "unavailable: ..."}."""
    if nvml is None:
        nvml, why = load()
    if nvml is None:
        return {"nvml": f"unavailable: {why}"}
    out = system(nvml)
    out["devices"] = [device(nvml, h) for h in (_read(lambda i=i: nvml.nvmlDeviceGetHandleByIndex(i))
                                                 for i in range(out["gpus"] or 0)) if h is not None]
    return out


def cell_columns(nvml: Nvml | None, entries: list[str], why: str = "") -> dict[str, Any]:
    """The gpu_* columns of a GPU cell's rows, read just before its worker starts (so every process then on
    the cell's GPUs is another one). Several GPUs (data parallel): the first one's facts, everyone's others."""
    if nvml is None:
        return {"note": f"GPU facts not recorded: {why}"} if why else {}
    handles = [_read(lambda e=e: handle(nvml, e)) for e in entries]
    first = device(nvml, handles[0]) if handles and handles[0] is not None else {}
    others = sorted({pid for h in handles if h is not None for pid in processes(nvml, h)})
    out = {"gpu_driver": _text(_read(nvml.nvmlSystemGetDriverVersion)), "gpu_memory_mb": first.get("memory_mb"),
           "gpu_sm_clock_mhz": first.get("sm_clock_max_mhz"), "gpu_power_limit_w": first.get("power_limit_w"),
           "gpu_mig": first.get("mig"), "gpu_other_procs": len(others)}
    if others:
        out["note"] = f"other processes on the GPU when the cell started: pid {', '.join(map(str, others))}"
    return out
