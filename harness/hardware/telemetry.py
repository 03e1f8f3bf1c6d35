"""What the machine did while a cell ran: other processes' CPU time (was the machine quiet?), the cell's memory
on one meter for every framework, utilisation, and energy.

A ``Sampler`` is a thread in the process that started the cell's worker (never inside the timed steps): every
``interval`` seconds it reads, with psutil, the CPU time and resident memory of the worker's process tree and
the CPU time of the whole machine, and with NVML (when there is a GPU) the device's utilisation, energy counter
and the memory of the tree's processes on it. The worker marks its timed regions (each speed phase; each
epoch's training) with progress events; ``mark`` reads the energy counters there, so energy is attributed to
the timed work only.

Energy: NVIDIA GPUs through ``nvmlDeviceGetTotalEnergyConsumption``; CPUs through RAPL's powercap files where
the kernel exposes them and they are readable (``/sys/class/powercap/intel-rapl:N/energy_uj``); otherwise the
energy columns stay empty and ``energy_source()`` says why.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

BUSY_THRESHOLD = 0.10   # other processes used more than 10% of the machine's CPU time: not a quiet machine
POWERCAP = Path("/sys/class/powercap")


def psutil_module() -> Any:
    import psutil
    return psutil


# ---- energy counters ----------------------------------------------------------------------------------------

def rapl_domains(root: Path = POWERCAP) -> list[Path]:
    """The package-level RAPL domains (intel-rapl:0, intel-rapl:1, ...), whose energy_uj can be read."""
    if not root.is_dir():
        return []
    out = []
    for domain in sorted(root.glob("intel-rapl:*")):
        if ":" in domain.name.split("intel-rapl:", 1)[1]:
            continue   # a subdomain (core, uncore, dram): the package counts it already
        try:
            int((domain / "energy_uj").read_text())
        except (OSError, ValueError):
            continue
        out.append(domain)
    return out


def energy_source(gpu_handles: list[Any], root: Path = POWERCAP) -> tuple[str | None, str]:
    """("nvml" | "rapl" | None, why): where energy readings come from on this cell's device, or why none."""
    if gpu_handles:
        return "nvml", "the GPU's total energy counter (NVML)"
    if rapl_domains(root):
        return "rapl", "the CPU packages' RAPL counters (powercap)"
    if not root.is_dir():
        return None, f"no energy counter: {root} does not exist (no RAPL on this machine or in this container)"
    return None, f"no energy counter: the RAPL files under {root} are missing or not readable (root only?)"


class EnergyMeter:
    """Cumulative joules from NVML (GPU) or RAPL (CPU), wrap-around of RAPL counters handled."""

    def __init__(self, nvml: Any, handles: list[Any], root: Path = POWERCAP) -> None:
        self.nvml, self.handles = nvml, handles
        self.source, self.why = energy_source(handles, root)
        self.domains = rapl_domains(root) if self.source == "rapl" else []
        self.ranges = [int((d / "max_energy_range_uj").read_text()) if (d / "max_energy_range_uj").exists() else 2**32
                       for d in self.domains]
        self.last: list[int] = []
        self.total_j = 0.0

    def read(self) -> float | None:
        """Joules since the meter was made (None without a counter)."""
        if self.source == "nvml":
            try:
                return sum(self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles) / 1000.0
            except Exception:
                return None
        if self.source != "rapl":
            return None
        now = [int((d / "energy_uj").read_text()) for d in self.domains]
        if self.last:
            for i, (a, b) in enumerate(zip(self.last, now)):
                self.total_j += ((b - a) % self.ranges[i]) / 1e6
        self.last = now
        return self.total_j


# ---- the sampler ----------------------------------------------------------------------------------------------

@dataclass
class Region:
    """A timed region of the worker (a speed phase, or training: the epochs' regions add up)."""
    name: str
    seconds: float = 0.0
    energy_j: float | None = None
    images: int = 0
    util: list[float] = field(default_factory=list)   # GPU utilisation samples, 0..1
    cpu_s: float = 0.0                                  # CPU seconds the worker tree used inside the region
    start_s: float = 0.0
    energy_start_j: float | None = None
    cpu_start_s: float = 0.0
    sm_clocks: list[float] = field(default_factory=list)   # GPU SM clock readings (MHz), at the boundaries too

    def cpu_util(self, cores: int) -> float | None:
        """The worker tree's mean share of the machine's cores over the region (0..1). The kernel counts CPU time
        in 10 ms ticks, so over a 0.1 s phase on 2 busy cores the count can run a few % over the wall time."""
        return min(1.0, self.cpu_s / self.seconds / cores) if self.seconds > 0 else None


@dataclass
class Readings:
    """What the sampler saw over the cell."""
    host_busy_fraction: float | None = None
    rss_peak_mb: float | None = None
    gpu_mem_peak_mb: float | None = None
    gpu_others_seen: int = 0
    regions: dict[str, Region] = field(default_factory=dict)
    energy_why: str = ""
    samples: int = 0
    cores: int = 1
    gpu_note: str = ""     # why the GPU's process list could not be read for this cell (another PID namespace)


class Sampler:
    """Samples this process's descendants (a cell's worker, or all of a data-parallel cell's ranks) and the
    machine every ``interval`` seconds, in a thread, until ``stop``."""

    def __init__(self, interval: float = 0.5, nvml: Any = None, gpu_handles: list[Any] | None = None,
                 psutil: Any = None, clock: Callable[[], float] = time.monotonic, powercap: Path = POWERCAP) -> None:
        self.psutil = psutil or psutil_module()
        self.me = self.psutil.Process(os.getpid())
        self.cores = self.psutil.cpu_count() or 1
        self.interval, self.clock = interval, clock
        self.nvml, self.handles = nvml, gpu_handles or []
        self.energy = EnergyMeter(nvml, self.handles, powercap)
        self.readings = Readings(energy_why=self.energy.why, cores=self.cores)
        self._cpu: dict[int, float] = {}   # live descendant pid -> its CPU seconds at the latest sample
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._open: Region | None = None
        self._ours_listed = False            # NVML listed one of our PIDs at some sample
        self._unknown_pids: set[int] = set()  # PIDs NVML listed that are no process in our PID namespace
        self._thread = threading.Thread(target=self._run, daemon=True, name="convbench-telemetry")
        self._start_wall = clock()
        self._start_machine = self._machine_cpu()
        self._start_ours = self._ours()

    def start(self) -> "Sampler":
        self.energy.read()
        self._thread.start()
        return self

    # -- readings -------------------------------------------------------------------------------------------
    def _machine_cpu(self) -> float:
        t = self.psutil.cpu_times()
        return sum(getattr(t, f) for f in ("user", "nice", "system", "irq", "softirq", "steal") if hasattr(t, f))

    def _ours(self) -> float:
        """CPU seconds of this process, its exited (waited-for) descendants and its live ones."""
        t = self.me.cpu_times()
        return t.user + t.system + self._tree_cpu()

    def _tree_cpu(self) -> float:
        """CPU seconds of the descendants: the exited (waited-for) ones and the live ones, read now."""
        t = self.me.cpu_times()
        return getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0) + sum(self._read_tree().values())

    def _read_tree(self) -> dict[int, float]:
        cpu, rss = {}, 0
        try:
            procs = self.me.children(recursive=True)
        except self.psutil.Error:
            procs = []
        for proc in procs:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    cpu[proc.pid] = times.user + times.system
                    rss += proc.memory_info().rss
            except self.psutil.Error:
                continue
        self._cpu, self._rss = cpu, rss
        return cpu

    def sample(self) -> None:
        """One reading: the descendants' CPU and memory, the GPU's memory and utilisation."""
        with self._lock:
            self._read_tree()
            r = self.readings
            r.samples += 1
            if self._cpu:
                r.rss_peak_mb = max(r.rss_peak_mb or 0.0, self._rss / 2**20)
            if self.nvml is not None and self.handles:
                self._sample_gpu(set(self._cpu))

    def _sample_gpu(self, pids: set[int]) -> None:
        """The tree's GPU memory (only when NVML lists one of its PIDs: otherwise it is unknown, not 0) and the other
        processes on the cell's GPUs. NVML lists PIDs in the host's namespace: in a container without it none of
        ours is ever listed, and the ones listed are no process here (``stop`` then counts no one)."""
        used, others, listed = 0, set(), False
        for h in self.handles:
            for query in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
                try:
                    procs = getattr(self.nvml, query)(h)
                except Exception:
                    continue
                for p in procs:
                    if p.pid in pids:
                        used += getattr(p, "usedGpuMemory", 0) or 0
                        listed = True
                    elif p.pid != os.getpid():
                        others.add(p.pid)
                        if not self.psutil.pid_exists(p.pid):
                            self._unknown_pids.add(p.pid)
            if self._open is not None:
                try:
                    self._open.util.append(float(self.nvml.nvmlDeviceGetUtilizationRates(h).gpu) / 100)
                except Exception:
                    pass
        self._read_clocks()
        r = self.readings
        if listed:
            self._ours_listed = True
            r.gpu_mem_peak_mb = max(r.gpu_mem_peak_mb or 0.0, used / 2**20)
        r.gpu_others_seen = max(r.gpu_others_seen, len(others))

    def _read_clocks(self) -> None:
        """The SM clocks now, into the open region: throttling (power, heat) during a cell shows as a minimum
        below the maximum clock that meta.json records."""
        if self._open is None or self.nvml is None:
            return
        for h in self.handles:
            try:
                self._open.sm_clocks.append(float(self.nvml.nvmlDeviceGetClockInfo(h, self.nvml.NVML_CLOCK_SM)))
            except Exception:
                pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    # -- regions --------------------------------------------------------------------------------------------
    def mark(self, name: str, state: str, images: int = 0) -> None:
        """The worker started ("start") or finished ("end", having processed ``images``) a timed region."""
        with self._lock:
            now = self.clock()
            if state == "start":
                region = self.readings.regions.setdefault(name, Region(name))
                region.start_s, region.energy_start_j = now, self.energy.read()
                region.cpu_start_s = self._tree_cpu()   # read at the boundary, not at the last sample
                self._open = region
                self._read_clocks()
            elif self._open is not None and self._open.name == name:
                self._read_clocks()
                region, self._open = self._open, None
                region.seconds += now - region.start_s
                region.cpu_s += max(0.0, self._tree_cpu() - region.cpu_start_s)
                region.images += images
                end = self.energy.read()
                if end is not None and region.energy_start_j is not None:
                    region.energy_j = (region.energy_j or 0.0) + end - region.energy_start_j

    def stop(self) -> Readings:
        """The readings, with the share of the machine's CPU time that other processes used during the cell."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        wall = self.clock() - self._start_wall
        machine = self._machine_cpu() - self._start_machine
        ours = self._ours() - self._start_ours
        if wall > 0:
            self.readings.host_busy_fraction = max(0.0, min(1.0, (machine - ours) / (wall * self.cores)))
        if self._unknown_pids and not self._ours_listed:   # our worker is among them, under a PID we cannot know
            self.readings.gpu_others_seen = 0
            self.readings.gpu_note = (
                "NVML lists the GPU's processes by PIDs of another PID namespace (a container without the host's): "
                "the worker's GPU memory is not recorded and other processes during the cell cannot be told from it")
        return self.readings


def wait_for_quiet(limit_s: float, threshold: float = BUSY_THRESHOLD, psutil: Any = None,
                   clock: Callable[[], float] = time.monotonic) -> tuple[bool, float, float]:
    """Before a cell (no worker running): waits, measuring the machine's CPU use over 1-second windows, until it
    is at most ``threshold`` or ``limit_s`` has passed. (quiet?, the last window's busy fraction, seconds waited)."""
    psutil = psutil or psutil_module()
    start = clock()
    while True:
        busy = psutil.cpu_percent(interval=1.0) / 100
        waited = clock() - start
        if busy <= threshold or waited >= limit_s:
            return busy <= threshold, busy, waited


# Energy only over regions at least this long: NVML's counter follows the power sensor, which updates every
# 20-100 ms (and averages over up to 1 s on recent parts), so a 30-50 ms pipelined window reads 0 or 1-2 updates.
MIN_ENERGY_WINDOW_S = 1.0


def columns(readings: Readings, gpu: bool) -> dict[str, dict[str, Any]]:
    """Row values: under "" for every row (busy fraction, memory peaks), under a region's name (a speed phase,
    or "train") its energy, joules per image and utilisation."""
    out: dict[str, dict[str, Any]] = {"": {"host_busy_fraction": readings.host_busy_fraction,
                                           "rss_peak_mb": readings.rss_peak_mb,
                                           "gpu_mem_peak_mb": readings.gpu_mem_peak_mb if gpu else None}}
    for name, region in readings.regions.items():
        energy, note = region.energy_j, None
        if energy is not None and region.seconds < MIN_ENERGY_WINDOW_S:
            energy, note = None, (f"energy not recorded for {name}: its window lasted {1000 * region.seconds:.0f} ms, "
                                  f"below the {MIN_ENERGY_WINDOW_S:g} s an energy counter resolves")
        out[name] = {"energy_j": energy,
                     "joules_per_image": energy / region.images if energy is not None and region.images else None,
                     **({"gpu_util": sum(region.util) / len(region.util) if region.util else None,
                         "gpu_sm_clock_min_mhz": min(region.sm_clocks) if region.sm_clocks else None,
                         "gpu_sm_clock_mean_mhz": sum(region.sm_clocks) / len(region.sm_clocks)
                         if region.sm_clocks else None} if gpu
                        else {"cpu_util": region.cpu_util(readings.cores)}),
                     **({"note": note} if note else {})}
    return out
