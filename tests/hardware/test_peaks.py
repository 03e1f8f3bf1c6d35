"""The GPU peak table: names as the frameworks report them, whole-token matching, form factors kept apart."""
from __future__ import annotations

import pytest

from harness.hardware.peaks import PARTS, gpu_part, gpu_peak_gflops


@pytest.mark.parametrize("name, part", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200 SXM"), ("NVIDIA H200 NVL", "H200 NVL"), ("NVIDIA H800", "H800 SXM"),
    ("NVIDIA H800 PCIe", "H800 PCIe"), ("NVIDIA H20", "H20"), ("NVIDIA B200", "B200"),
    ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA A100-PCIE-40GB", "A100"), ("NVIDIA A100 80GB PCIe", "A100"),
    ("NVIDIA A10", "A10"), ("NVIDIA A10G", "A10G"), ("NVIDIA A40", "A40"), ("NVIDIA L4", "L4"), ("NVIDIA L40", "L40"),
    ("NVIDIA L40S", "L40S"), ("Tesla V100-SXM2-32GB", "V100 SXM2"), ("Tesla V100-SXM2-16GB", "V100 SXM2"),
    ("Tesla V100-PCIE-16GB", "V100 PCIe"), ("Tesla V100-PCIE-32GB", "V100 PCIe"), ("Tesla T4", "T4"),
    ("NVIDIA GeForce RTX 4090", "RTX 4090"),
])
def test_framework_names_find_their_part(name: str, part: str):
    found = gpu_part(name)
    assert found is not None and found.name == part


@pytest.mark.parametrize("name", ["NVIDIA H100 80GB HBM3 MIG 1g.10gb", "NVIDIA A100-SXM4-40GB MIG 3g.20gb",
                                  "NVIDIA GeForce RTX 3090", "AMD Instinct MI300X", "NVIDIA A1000", "", "NVIDIA H2000"])
def test_unknown_parts_and_mig_slices_get_no_peak(name: str):
    peak, note = gpu_peak_gflops(name, "fp32", True)
    assert gpu_part(name) is None and peak is None and "peak_fraction left empty" in note


def test_precision_and_tf32_choose_the_column():
    assert gpu_peak_gflops("NVIDIA H100 PCIe", "fp32", False)[0] == pytest.approx(51_200)
    assert gpu_peak_gflops("NVIDIA H100 PCIe", "fp32", True)[0] == pytest.approx(378_000)
    assert gpu_peak_gflops("NVIDIA H100 80GB HBM3", "fp32", True)[0] == pytest.approx(494_700)
    assert gpu_peak_gflops("NVIDIA H100 80GB HBM3", "bf16", True)[0] == pytest.approx(989_400)
    assert gpu_peak_gflops("Tesla V100-SXM2-32GB", "fp32", True) == (15_700.0, "V100 SXM2 fp32 peak")  # no TF32 there
    # the PCIe part's own figures (NVIDIA V100 datasheet: PCIe 14 TFLOPS fp32 / 112 tensor, SXM2 15.7 / 125)
    assert gpu_peak_gflops("Tesla V100-PCIE-16GB", "fp32", True) == (14_000.0, "V100 PCIe fp32 peak")
    assert gpu_peak_gflops("Tesla V100-PCIE-32GB", "fp16", False)[0] == pytest.approx(112_000)


def test_the_table_is_consistent():
    names = [p.name for p in PARTS]
    assert len(names) == len(set(names))
    for p in PARTS:
        assert p.fp32 > 0 and p.bf16 > 0 and p.fp16 > 0 and (p.tf32 is None or p.tf32 >= p.fp32 / 2), p
        # every part is found by its own name (earlier, more general entries would shadow it)
        assert gpu_part(f"NVIDIA {p.name}").name == p.name, p.name  # type: ignore[union-attr]
