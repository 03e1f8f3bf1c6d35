"""Telemetry: energy counters (recorded RAPL files and NVML readings), the sampler on real processes, and a busy
machine seen beside a real speed cell."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pandas as pd
import pytest
from helpers import needs, run_cli

from harness.hardware import telemetry
from harness.orchestrator.cells import add_telemetry


def powercap(root: Path, packages: dict[int, int], max_range: int = 262143328850) -> Path:
    """A powercap tree as Linux exposes it: package domains intel-rapl:N, a core subdomain that must not count."""
    for n, value in packages.items():
        domain = root / f"intel-rapl:{n}"
        domain.mkdir(parents=True, exist_ok=True)
        (domain / "energy_uj").write_text(f"{value}\n")
        (domain / "max_energy_range_uj").write_text(f"{max_range}\n")
        (domain / f"intel-rapl:{n}:0").mkdir(exist_ok=True)
        (domain / f"intel-rapl:{n}:0" / "energy_uj").write_text("999999999\n")
    return root


def test_rapl_counters_are_summed_over_packages_and_survive_wrap_around(tmp_path):
    root = powercap(tmp_path / "powercap", {0: 1_000_000, 1: 2_000_000}, max_range=10_000_000)
    meter = telemetry.EnergyMeter(None, [], root)
    assert meter.source == "rapl" and [d.name for d in meter.domains] == ["intel-rapl:0", "intel-rapl:1"]
    assert meter.read() == 0.0
    powercap(root, {0: 4_000_000, 1: 2_500_000}, max_range=10_000_000)          # +3 J and +0.5 J
    assert meter.read() == pytest.approx(3.5)
    powercap(root, {0: 1_000_000, 1: 3_000_000}, max_range=10_000_000)          # package 0 wrapped: +7 J, +0.5 J
    assert meter.read() == pytest.approx(11.0)


def test_nvml_energy_counter_in_millijoules():
    readings = iter([1_000_000, 1_250_500])   # recorded nvmlDeviceGetTotalEnergyConsumption values (mJ)
    nvml = types.SimpleNamespace(nvmlDeviceGetTotalEnergyConsumption=lambda h: next(readings))
    meter = telemetry.EnergyMeter(nvml, ["handle0"])
    assert meter.source == "nvml" and meter.read() == 1000.0 and meter.read() == pytest.approx(1250.5)


def test_without_a_counter_the_reason_is_given(tmp_path):
    source, why = telemetry.energy_source([], tmp_path / "nothing")
    assert source is None and "does not exist" in why
    (tmp_path / "locked" / "intel-rapl:0").mkdir(parents=True)   # a domain whose energy_uj cannot be read
    source, why = telemetry.energy_source([], tmp_path / "locked")
    assert source is None and "not readable" in why
    assert telemetry.EnergyMeter(None, [], tmp_path / "nothing").read() is None


def test_sampler_measures_its_descendants_and_attributes_regions(tmp_path):
    """A real child process that holds memory and burns CPU for a while: its region's CPU use, the tree's peak
    resident memory, and energy from recorded RAPL readings advanced during the region."""
    root = powercap(tmp_path / "powercap", {0: 5_000_000})
    sampler = telemetry.Sampler(interval=0.1, powercap=root).start()
    sampler.mark("train", "start")
    # one CPU second of the child's own (its CPU time, not the wall clock: a busy machine stretches the region, the
    # CPU seconds stay), then what the region attributes to the tree is compared in CPU seconds
    child = subprocess.Popen([sys.executable, "-c", "import time; block = b'x' * (64 << 20)\n"
                              "while time.process_time() < 1.0: pass"])
    child.wait()
    powercap(root, {0: 7_500_000})
    sampler.mark("train", "end", images=1000)
    readings = sampler.stop()
    region = readings.regions["train"]
    assert region.seconds >= 1.0 and region.images == 1000 and region.energy_j == pytest.approx(2.5)
    assert readings.samples >= 5 and readings.rss_peak_mb and readings.rss_peak_mb > 64
    cols = telemetry.columns(readings, gpu=False)
    cpu_seconds = cols["train"]["cpu_util"] * region.seconds * readings.cores
    # (the CPU of its last moments, after the last sample before it exited, is not seen: hence 0.5, not 1.0)
    assert 0.5 < cpu_seconds < 1.0 + 0.5 * region.seconds and cols["train"]["cpu_util"] <= 1.0, cpu_seconds
    assert cols["train"]["joules_per_image"] == pytest.approx(0.0025) and cols[""]["rss_peak_mb"] > 64
    assert 0.0 <= cols[""]["host_busy_fraction"] <= 1.0


def test_cpu_util_counts_the_region_from_its_boundaries_not_from_the_last_sample():
    """A child burning one core before and through a short region that starts between two samples: the share
    stays one core's (taking the CPU used since the previous sample as the region's gave 2-8x the cores)."""
    sampler = telemetry.Sampler(interval=0.2).start()
    child = burner(3)
    try:
        time.sleep(0.9)                      # samples at 0.2 .. 0.8 s; the region starts between two of them
        sampler.mark("forward", "start")
        time.sleep(0.3)
        sampler.mark("forward", "end", images=10)
    finally:
        child.kill()
        child.wait()
    readings = sampler.stop()
    util = telemetry.columns(readings, gpu=False)["forward"]["cpu_util"]
    cores = readings.cores
    assert 0.3 / cores < util <= 1.0 / cores + 0.1, (util, cores)


def burner(seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", f"import time\nt = time.time()\nwhile time.time() - t < {seconds}: pass"])


@pytest.mark.e2e
@needs("torch")
def test_a_cpu_burner_beside_a_speed_cell_is_seen_and_warned_about(tmp_path):
    """Two processes burning CPU beside a speed cell: the cell's rows count at least a good part of the share of
    the machine they took (measured from their own CPU time, so other load on the machine, which only adds to
    what the rows see, cannot fail the test) and the run warns."""
    import psutil
    args = ("run", "--mode", "speed", "--frameworks", "torch", "--models", "lenet5", "--steps", "30", "--warmup", "2",
            "--batch-size", "32", "--threads", "1", "--output", str(tmp_path / "busy"))
    start = time.monotonic()
    burners = [burner(120) for _ in range(2)]   # two cores' worth of someone else's work
    try:
        time.sleep(0.5)
        busy = run_cli(*args)
        used = sum(sum(psutil.Process(b.pid).cpu_times()[:2]) for b in burners)
        wall = time.monotonic() - start
    finally:
        for b in burners:
            b.kill()
    assert busy.returncode == 0, busy.stderr[-2000:]
    df = pd.read_csv(next((tmp_path / "busy").iterdir()) / "results.csv")
    assert df["host_busy_fraction"].notna().all() and (df["rss_peak_mb"] > 50).all()
    assert df["energy_j"].isna().all() or (df["energy_j"] > 0).all()   # RAPL where readable, else empty
    burned = used / wall / (os.cpu_count() or 1)   # the burners' share of the machine while they ran
    seen = df["host_busy_fraction"].max()
    assert seen > telemetry.BUSY_THRESHOLD and seen >= 0.5 * burned, (seen, burned)
    assert "warning: other processes used" in busy.stdout
    meta = json.loads((next((tmp_path / "busy").iterdir()) / "meta.json").read_text())
    assert meta["telemetry"]["busy_threshold"] == telemetry.BUSY_THRESHOLD and meta["telemetry"]["energy"]


def unused_pid() -> int:
    """A PID no process has in this PID namespace (as the host's PID of a container's process usually is)."""
    import psutil
    pid = 4_000_000
    while psutil.pid_exists(pid):
        pid += 1
    return pid


def nvml_listing(*procs: tuple[int, int]) -> types.SimpleNamespace:
    """A fake pynvml whose GPU runs ``procs`` as (pid, bytes of GPU memory), as nvmlDeviceGetComputeRunningProcesses
    reports them (PIDs in the host's namespace)."""
    listed = [types.SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in procs]

    def unsupported(h: object) -> None:
        raise RuntimeError("Not Supported")
    return types.SimpleNamespace(nvmlDeviceGetComputeRunningProcesses=lambda h: listed,
                                 nvmlDeviceGetGraphicsRunningProcesses=unsupported,
                                 nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=90),
                                 nvmlDeviceGetTotalEnergyConsumption=lambda h: 1_000_000)


def sampled(nvml: types.SimpleNamespace, worker_pid: list[int]) -> telemetry.Readings:
    """Two samples of a real worker process (a sleeping child) beside the fake GPU's process list."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    worker_pid.append(child.pid)
    try:
        sampler = telemetry.Sampler(interval=60, nvml=nvml, gpu_handles=["handle0"])
        sampler.sample()
        sampler.sample()
        return sampler.stop()
    finally:
        child.kill()
        child.wait()


def test_a_container_without_the_host_pid_namespace_leaves_gpu_memory_empty_and_counts_no_one():
    """Defect 4: in a container without the host's PID namespace (Docker, Kubernetes) NVML lists the worker under its
    host PID, which matches none of ours: the row got GPU memory 0.0 instead of empty and counted its own worker as
    "another process", so the machine looked busy. Now: none of our PIDs visible but processes listed by PIDs this
    namespace does not have: memory empty, nobody counted, and the row says why."""
    host_pid = unused_pid()
    readings = sampled(nvml_listing((host_pid, 3 * 2**30)), [])
    assert readings.gpu_mem_peak_mb is None and readings.gpu_others_seen == 0
    (row,) = add_telemetry([{"cell": "torch-lenet5-cuda0", "note": None}], readings, gpu=True)
    assert row["gpu_mem_peak_mb"] is None and "another PID namespace" in row["note"]


def test_with_the_host_pid_namespace_the_worker_memory_is_read_and_others_counted():
    """The usual case still works: our worker's PID is listed (its memory counted), and another real process is too."""
    ours: list[int] = []
    nvml = nvml_listing()
    nvml.nvmlDeviceGetComputeRunningProcesses = lambda h: [types.SimpleNamespace(pid=p, usedGpuMemory=2**30)
                                                           for p in (*ours, os.getppid())]
    readings = sampled(nvml, ours)
    assert readings.gpu_mem_peak_mb == 1024.0 and readings.gpu_others_seen == 1 and not readings.gpu_note


class FakeGpu:
    """NVML as the sampler reads it for one GPU: an energy counter (mJ) and the SM clock, both set by the test."""
    NVML_CLOCK_SM = 1

    def __init__(self) -> None:
        self.mj, self.sm = 1_000_000, 1980

    def nvmlDeviceGetTotalEnergyConsumption(self, h: object) -> int:
        return self.mj

    def nvmlDeviceGetClockInfo(self, h: object, kind: int) -> int:
        assert kind == self.NVML_CLOCK_SM
        return self.sm

    def nvmlDeviceGetComputeRunningProcesses(self, h: object) -> list:
        return []

    def nvmlDeviceGetUtilizationRates(self, h: object) -> types.SimpleNamespace:
        return types.SimpleNamespace(gpu=100)


def gpu_region(gpu: FakeGpu, now: list[float], name: str, seconds: float, joules: float, clocks: list[int]):
    sampler = telemetry.Sampler(interval=3600, nvml=gpu, gpu_handles=["h0"], clock=lambda: now[0])
    sampler.mark(name, "start")
    for mhz in clocks:          # the sampler's readings inside the region (a throttling GPU)
        gpu.sm = mhz
        sampler.sample()
    now[0] += seconds
    gpu.mj += int(1000 * joules)
    sampler.mark(name, "end", images=640)
    return telemetry.columns(sampler.stop(), gpu=True)[name]


def test_energy_only_over_windows_the_counter_resolves():
    """A 40 ms pipelined window is below what an energy counter resolves (NVML's updates every ~100 ms or
    slower): its energy is left empty with a note; a 2 s region keeps its energy."""
    gpu, now = FakeGpu(), [100.0]
    short = gpu_region(gpu, now, "forward", 0.04, 12.0, [])
    assert short["energy_j"] is None and short["joules_per_image"] is None
    assert "energy not recorded" in short["note"] and "40 ms" in short["note"]
    long = gpu_region(gpu, now, "train", 2.0, 600.0, [])
    assert long["energy_j"] == pytest.approx(600.0) and "note" not in long


def test_sm_clocks_during_a_region_show_throttling():
    """Only the maximum clock was recorded, so a GPU throttling during a cell looked like a slow framework."""
    gpu, now = FakeGpu(), [100.0]
    cols = gpu_region(gpu, now, "train_step", 2.0, 600.0, [1755, 1410])   # read at start (1980) and end (1410) too
    assert cols["gpu_sm_clock_min_mhz"] == 1410
    assert cols["gpu_sm_clock_mean_mhz"] == pytest.approx((1980 + 1755 + 1410 + 1410) / 4)
