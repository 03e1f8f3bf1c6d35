"""pytest-benchmark suite of convbench cells, one framework per pytest process.

    pytest benchmarks/ --framework torch --models lenet5,resnet32 --benchmark-json=torch.json

TensorFlow and Paddle cannot share a process, so each framework gets its own pytest run; the JSON
files open in ``pytest-benchmark compare``.
"""
from __future__ import annotations


def pytest_addoption(parser):
    parser.addoption("--framework", default="torch", help="framework to benchmark (one per process)")
    parser.addoption("--models", default="lenet5,resnet32", help="comma-separated models")
    parser.addoption("--device", default="cpu")
    parser.addoption("--batch-size", type=int, default=None, help="default: speed mode's (128; 32 for 224x224 models)")
    parser.addoption("--bench-steps", type=int, default=30, help="timed rounds per benchmark")
    parser.addoption("--bench-warmup", type=int, default=5, help="warm-up rounds per benchmark")


def pytest_generate_tests(metafunc):
    if "model_name" in metafunc.fixturenames:
        metafunc.parametrize("model_name", metafunc.config.getoption("--models").split(","))
