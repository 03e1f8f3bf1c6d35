"""Conformance kit: a pytest plugin that checks a framework plugin against convbench's contract.

Enable it with ``pytest -p harness.testing --convbench-framework NAME [--convbench-models a,b]
[--convbench-reference torch]``, or with ``pytest_plugins = ["harness.testing"]`` in a top-level conftest.py
plus ``convbench_framework = NAME`` in the ini file. When a framework is named, the plugin collects the check
modules of this package into the session (before ``-k``/``-m`` selection), so their checks run as ordinary pytest
tests, with node ids such as ``harness/testing/contract.py::TestContract::test_parameter_count[lenet5]``. Each
module is named after what a plugin that fails its checks broke:

- ``contract`` (``TestContract``): what every plugin must do: registration, parameter count, weights round trip,
  logits against the reference framework's, the timing phases, bad devices refused;
- ``training`` (``TestTraining``): the training rules: a step lowers the loss, torch's SGD rule, batch-norm
  conventions, auxiliary heads and dropout, auxiliary heads skipped at evaluation;
- ``capabilities`` (``TestCapabilities``): the optional capabilities, each skipped with the reason where a plugin
  lacks it: momentum buffers, pipelined steps, NHWC batches, held batches, execution settings;
- ``speed`` (``TestSpeed``): the optional speed check against the framework's own idiomatic code.

``wiring`` holds the options, the collection, the fixtures and the ``Kit`` state the checks share; ``numerics``
the numpy measures they compare with. The framework under test runs in the pytest process; the reference
framework's logits come from a verify job in a worker process (frameworks must not share a process).
"""
from __future__ import annotations

from harness.testing.wiring import (
    Kit,
    convbench_kit,
    convbench_native,
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_generate_tests,
)

__all__ = ["Kit", "convbench_kit", "convbench_native", "pytest_addoption", "pytest_collection_modifyitems",
           "pytest_generate_tests"]
