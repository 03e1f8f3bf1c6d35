"""NVML readings (recorded from an H100 SXM host, as nvidia-ml-py returns them) turned into meta.json and the
gpu_* columns; and a machine without NVML says so instead of failing."""
from __future__ import annotations

import types

from harness.hardware import nvml


class Error(Exception):
    """pynvml raises NVMLError subclasses, e.g. NotSupported."""


def recorded_nvml(mig: tuple[int, int] | None = (0, 0), others: tuple[int, ...] = (4242,)) -> types.SimpleNamespace:
    """A stand-in for the pynvml module that answers with readings recorded on an 8 x H100 80GB HBM3 host."""
    handles = {i: f"handle{i}" for i in range(8)}

    def unsupported(*_: object) -> None:
        raise Error("Not Supported")
    memory = types.SimpleNamespace(total=85520809984, free=84934852608, used=585957376)
    return types.SimpleNamespace(
        NVML_CLOCK_SM=1, NVML_CLOCK_MEM=2,
        nvmlSystemGetDriverVersion=lambda: "550.54.15", nvmlSystemGetCudaDriverVersion=lambda: 12040,
        nvmlDeviceGetCount=lambda: 8, nvmlDeviceGetHandleByIndex=lambda i: handles[i],
        nvmlDeviceGetHandleByUUID=lambda u: {"GPU-5a0f": "handle3"}[u],
        nvmlDeviceGetName=lambda h: b"NVIDIA H100 80GB HBM3", nvmlDeviceGetUUID=lambda h: f"GPU-{h}",
        nvmlDeviceGetMemoryInfo=lambda h: memory,
        nvmlDeviceGetMaxClockInfo=lambda h, kind: {1: 1980, 2: 2619}[kind],
        nvmlDeviceGetEnforcedPowerLimit=lambda h: 700000,
        nvmlDeviceGetMigMode=(lambda h: mig) if mig is not None else unsupported,
        nvmlDeviceGetComputeRunningProcesses=lambda h: [types.SimpleNamespace(pid=p) for p in others],
        nvmlDeviceGetGraphicsRunningProcesses=unsupported,
    )


def test_machine_facts_for_meta():
    facts = nvml.machine(recorded_nvml())
    assert facts["driver"] == "550.54.15" and facts["cuda_driver"] == "12.4" and facts["gpus"] == 8
    first = facts["devices"][0]
    assert first == {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-handle0", "memory_mb": 81559.0,
                     "sm_clock_max_mhz": 1980, "memory_clock_max_mhz": 2619, "power_limit_w": 700.0, "mig": "disabled"}


def test_cell_columns_name_other_processes_and_survive_unsupported_queries():
    cols = nvml.cell_columns(recorded_nvml(mig=None, others=(4242, 77)), ["3"])
    assert cols["gpu_driver"] == "550.54.15" and cols["gpu_sm_clock_mhz"] == 1980 and cols["gpu_power_limit_w"] == 700.0
    assert cols["gpu_mig"] is None and cols["gpu_other_procs"] == 2 and "pid 77, 4242" in cols["note"]
    quiet = nvml.cell_columns(recorded_nvml(others=()), ["GPU-5a0f"])
    assert quiet["gpu_other_procs"] == 0 and "note" not in quiet and quiet["gpu_mig"] == "disabled"


def test_no_nvml_is_said_not_failed(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "pynvml", None)   # "not installed"
    module, why = nvml.load()
    assert module is None and "nvidia-ml-py is not installed" in why
    assert nvml.machine() == {"nvml": f"unavailable: {why}"}
    assert nvml.cell_columns(None, ["0"], why) == {"note": f"GPU facts not recorded: {why}"}
