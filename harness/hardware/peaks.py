"""Device peak throughput, for peak_fraction = achieved / peak.

GPUs: a table of vendor dense peaks (TFLOP/s) by precision. CPUs: a float32 GEMM measured once per
run in a worker with the run's thread count (numpy's BLAS), best of several repetitions.
"""
from __future__ import annotations

import time

# name fragment -> {precision: dense TFLOP/s}; fp32 uses TF32 tensor cores where TF32 is on
GPU_PEAKS_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
    "H100": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
    "L40S": {"fp32": 91.6, "tf32": 183.0, "bf16": 362.0, "fp16": 362.0},
    "A10": {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0},
    "V100": {"fp32": 15.7, "tf32": 15.7, "bf16": 15.7, "fp16": 125.0},
    "T4": {"fp32": 8.1, "tf32": 8.1, "bf16": 8.1, "fp16": 65.0},
    "RTX 4090": {"fp32": 82.6, "tf32": 82.6, "bf16": 165.2, "fp16": 165.2},
}


def gpu_peak_gflops(device_name: str, precision: str, tf32: bool) -> float | None:
    for fragment, peaks in GPU_PEAKS_TFLOPS.items():
        if fragment.lower() in device_name.lower():
            key = "tf32" if precision == "fp32" and tf32 else precision
            return peaks[key] * 1000
    return None


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
