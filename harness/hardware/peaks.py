"""Device peak throughput, for peak_fraction = achieved / peak.

GPUs: a table of vendor dense peaks (TFLOP/s) by part and precision, matched on whole name tokens so a part
never silently gets another's peak. CPUs: a float32 GEMM measured once per run in a worker with the run's
thread count (numpy's BLAS), best of several repetitions.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    """A GPU part's vendor dense peaks in TFLOP/s (no 2:4 sparsity): fp32 on CUDA cores, tf32/bf16/fp16 on
    tensor cores (tf32 None: the part has no TF32, fp32 matmuls run at the fp32 rate). ``tokens`` must all
    appear in the device name's tokens, ``without`` none of them."""
    name: str
    tokens: frozenset[str]
    fp32: float
    tf32: float | None
    bf16: float
    fp16: float
    without: frozenset[str] = frozenset()


def _part(name: str, tokens: str, fp32: float, tf32: float | None, bf16: float, fp16: float, without: str = "") -> Part:
    return Part(name, frozenset(tokens.split()), fp32, tf32, bf16, fp16, frozenset(without.split()))


# NVIDIA datasheets, dense figures. Order matters only where one part's tokens include another's: the more
# specific (NVL, PCIe) come first. The form factors differ by up to 25% (H100 PCIe vs SXM), so a name that
# says neither PCIe nor NVL is taken as the SXM part (its name on every framework: "NVIDIA H100 80GB HBM3").
PARTS = (
    _part("B200", "B200", 80.0, 1100.0, 2250.0, 2250.0),
    _part("H200 NVL", "H200 NVL", 60.0, 417.5, 835.5, 835.5),
    _part("H200 SXM", "H200", 66.9, 494.7, 989.4, 989.4, without="NVL PCIE"),
    _part("H100 NVL", "H100 NVL", 60.0, 417.5, 835.5, 835.5),
    _part("H100 PCIe", "H100 PCIE", 51.2, 378.0, 756.0, 756.0),
    _part("H100 SXM", "H100", 66.9, 494.7, 989.4, 989.4, without="NVL PCIE"),
    _part("H800 PCIe", "H800 PCIE", 51.2, 378.0, 756.0, 756.0),
    _part("H800 SXM", "H800", 66.9, 494.7, 989.4, 989.4, without="NVL PCIE"),
    _part("H20", "H20", 44.0, 74.0, 148.0, 148.0),
    _part("A100", "A100", 19.5, 156.0, 312.0, 312.0),          # SXM4 and PCIe, 40 and 80 GB: the same peaks
    _part("A40", "A40", 37.4, 74.8, 149.7, 149.7),
    _part("A10G", "A10G", 31.5, 35.0, 70.0, 70.0),              # AWS's part (no NVIDIA datasheet; as AWS lists it)
    _part("A10", "A10", 31.2, 62.5, 125.0, 125.0),
    _part("L40S", "L40S", 91.6, 183.0, 362.1, 362.1),
    _part("L40", "L40", 90.5, 90.5, 181.0, 181.0),
    _part("L4", "L4", 30.3, 60.0, 121.0, 121.0),
    _part("V100 PCIe", "V100 PCIE", 14.0, None, 14.0, 112.0),   # no TF32, no bf16 tensor cores (bf16 at fp32 rate)
    _part("V100 SXM2", "V100", 15.7, None, 15.7, 125.0, without="PCIE"),
    _part("T4", "T4", 8.1, None, 8.1, 65.0),
    _part("RTX 4090", "RTX 4090", 82.6, 82.6, 165.2, 165.2),
)
# a MIG slice has a fraction of the SMs: no whole-part peak applies
NEVER = frozenset({"MIG"})


def tokens(device_name: str) -> frozenset[str]:
    """'NVIDIA A100-SXM4-80GB' -> {'NVIDIA', 'A100', 'SXM4', '80GB'} (upper case, split on space, - and _)."""
    return frozenset(re.split(r"[\s_\-/]+", device_name.upper())) - {""}


def gpu_part(device_name: str) -> Part | None:
    """The part a device name is, matched on whole tokens (an H20 is never an H200, an A10 never an A100)."""
    have = tokens(device_name)
    if have & NEVER:
        return None
    return next((p for p in PARTS if p.tokens <= have and not p.without & have), None)


def gpu_peak_gflops(device_name: str, precision: str, tf32: bool) -> tuple[float | None, str]:
    """(dense peak in GFLOP/s for this precision, a note); (None, why) for a part not in the table."""
    part = gpu_part(device_name)
    if part is None:
        return None, (f"no peak for GPU {device_name!r} (not in harness/hardware/peaks.py, or a MIG slice): "
                      "peak_fraction left empty")
    if precision == "fp32":
        use_tf32 = tf32 and part.tf32 is not None
        return 1000 * (part.tf32 if use_tf32 else part.fp32), f"{part.name} {'tf32' if use_tf32 else 'fp32'} peak"
    return 1000 * getattr(part, precision), f"{part.name} {precision} peak"


def measure_cpu_gemm_gflops(size: int = 1024, repeats: int = 5) -> float:
    """Best float32 GEMM rate of numpy's BLAS in this process (call it in a worker)."""
    import numpy as np
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9
