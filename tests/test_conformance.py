"""The conformance kit (the package harness.testing) against every installed framework, each in its own pytest subprocess,
and against a deliberately broken plugin, so the kit cannot pass vacuously.

JAX runs the CIFAR-size models whose layers together cover the whole graph vocabulary (conv, BN, pools
incl. ceil mode, LRN, dropout, concat, residual add, auxiliary heads); the 224x224 ones cost minutes of
XLA compilation on two cores and are checked by ``convbench verify`` (README). Torch, tensorflow and
paddle run lenet5 only: here the point is that the kit is framework-neutral; their own suites compare
every model with torch.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

import pytest
from helpers import FRAMEWORKS, framework_installed, needs

JAX_MODELS = ["lenet5", "resnet32", "googlenet", "alexnet_lrn"]
CASES = [("jax", "torch", JAX_MODELS, []), ("torch", "jax", ["lenet5"], []), ("tensorflow", "torch", ["lenet5"], []),
         ("paddle", "torch", ["lenet5"], [])]


def reference_for(framework: str, preferred: str) -> str | None:
    """The preferred reference framework if it is installed, else another installed one (the kit compares logits
    with the reference's; a missing convbench-jax must not fail torch's kit)."""
    installed = [fw for fw in FRAMEWORKS if fw != framework and framework_installed(fw)]
    return preferred if preferred in installed else next(iter(installed), None)


def needs_plugin(framework: str) -> pytest.MarkDecorator:
    """Skip when the framework's plugin (e.g. the separately installed convbench-jax) or the framework is missing."""
    if framework not in FRAMEWORKS:
        return pytest.mark.skipif(True, reason=f"no convbench plugin provides {framework} (convbench-{framework})")
    return needs(framework)


def run_kit(tmp_path: Path, framework: str, reference: str, models: list[str], extra: Sequence[str] = (),
            env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """Runs the kit in an empty folder; returns the process and {test name: passed|failed|skipped|error}."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    report = tmp_path / "kit.xml"
    cmd = [sys.executable, "-m", "pytest", "-p", "harness.testing", "-p", "no:cacheprovider",
           "--convbench-framework", framework, "--convbench-reference", reference,
           "--convbench-models", ",".join(models), "--convbench-threads", "2",
           "--rootdir", str(tmp_path), f"--junitxml={report}", "-q", *extra]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={**os.environ, **(env or {})})
    outcomes: dict[str, str] = {}
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
            outcomes[case.get("name", "")] = {"failure": "failed"}.get(kinds[0], kinds[0]) if kinds else "passed"
    return proc, outcomes


@pytest.mark.e2e
@pytest.mark.parametrize("framework, reference, models, extra",
                         [pytest.param(*case, marks=needs_plugin(case[0]), id=case[0]) for case in CASES])
def test_kit_passes(tmp_path: Path, framework: str, reference: str, models: list[str], extra: list[str]):
    reference = reference_for(framework, reference) or framework   # alone: the kit skips the logits checks
    proc, outcomes = run_kit(tmp_path, framework, reference, models, extra)
    tail = "\n".join(proc.stdout.splitlines()[-30:])
    assert proc.returncode == 0, f"kit failed for {framework}:\n{tail}\n{proc.stderr[-2000:]}"
    assert all(f"test_logits_match_reference[{m}]" in outcomes for m in models), tail
    passed = {name for name, outcome in outcomes.items() if outcome == "passed"}
    checks = ["test_timing_phases[lenet5]", "test_sgd_matches_torch_rule", "test_train_step_lowers_loss",
              "test_batch_norm_conventions", "test_auxiliary_head_and_dropout", "test_momentum_buffers",
              "test_auxiliary_heads_are_skipped_at_evaluation", "test_cells_chain_to_the_network[lenet5]",
              "test_linear_cell_backward_and_update"]
    if framework == "tensorflow":   # its steps take NHWC: the optional channels-last hand-over is checked too
        checks += ["test_nhwc_batches_equal_nchw_batches", "test_held_batches_equal_host_batches"]
    if reference != framework:  # else the kit skips the logits checks
        checks += [f"test_logits_match_reference[{m}]" for m in models]
    for check in checks:
        assert check in passed, f"{check} did not pass for {framework}: {outcomes.get(check)}\n{tail}"


BROKEN = '''
"""A torch-backed framework "broken": logits 1% off, SGD without weight decay, momentum buffers reversed,
auxiliary heads computed (and dropped) at evaluation; convolution cells 1% off, cells updating without weight decay."""
from harness import hookimpl
from harness.frameworks import FrameworkSpec


class Broken:
    def __init__(self, inner):
        self.inner = inner
        for group in inner.optimizer.param_groups if inner.optimizer is not None else ():
            group["weight_decay"] = 0.0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def forward(self, images):
        import torch
        self.inner.net.train()   # the training-mode pass runs every auxiliary head
        with torch.no_grad():
            self.inner.net(torch.from_numpy(images))
        return self.inner.forward(images) * 1.01

    def get_momentum(self):
        return {k: v[::-1].copy() for k, v in self.inner.get_momentum().items()}


class BrokenLayer(Broken):
    def forward(self, x):   # convolutions 1% off (the chain of cells fails); a Linear cell only updates wrongly
        return self.inner.forward(x) * (1.01 if self.inner.layer.kind == "Conv" else 1.0)


@hookimpl
def convbench_build_layer(framework, model, layer, device, settings):
    if framework != "broken":
        return None
    from convbench_torch import plugin
    return BrokenLayer(plugin.native_layer(model, layer, device, settings))


@hookimpl
def convbench_add_frameworks(registry):
    registry.add("broken", FrameworkSpec("broken", "torch", ("torch",)))


@hookimpl
def convbench_build_model(framework, model, device, settings):
    if framework != "broken":
        return None
    from convbench_torch import plugin
    return Broken(plugin.native(model, device, settings))
'''


@pytest.mark.e2e
@needs("torch")
def test_kit_fails_for_a_broken_plugin(tmp_path: Path):
    (tmp_path / "broken_plugin.py").write_text(textwrap.dedent(BROKEN))
    env = {"CONVBENCH_PLUGINS": "broken_plugin",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    proc, outcomes = run_kit(tmp_path, "broken", "torch", ["lenet5"], env=env)
    assert proc.returncode == 1, proc.stdout[-3000:]
    failed = {name for name, outcome in outcomes.items() if outcome == "failed"}
    expected = {"test_logits_match_reference[lenet5]", "test_sgd_matches_torch_rule", "test_momentum_buffers",
                "test_auxiliary_heads_are_skipped_at_evaluation", "test_cells_chain_to_the_network[lenet5]",
                "test_linear_cell_backward_and_update"}
    assert expected <= failed, ({name: outcomes.get(name) for name in expected - failed}, proc.stdout[-3000:])
    for check in ("test_parameter_count[lenet5]", "test_weights_round_trip[lenet5]", "test_timing_phases[lenet5]"):
        assert outcomes[check] == "passed", (check, outcomes)
    assert "logits differ from torch" in proc.stdout
    for nodeid in ("harness/testing/contract.py::TestContract::test_logits_match_reference[lenet5]",
                   "harness/testing/training.py::TestTraining::test_sgd_matches_torch_rule",
                   "harness/testing/capabilities.py::TestCapabilities::test_momentum_buffers",
                   "harness/testing/layers.py::TestLayers::test_linear_cell_backward_and_update"):
        assert f"FAILED {nodeid}" in proc.stdout, nodeid   # each check in the module named after what broke


@pytest.mark.e2e
@needs("torch")
def test_the_optional_speed_check_against_an_idiomatic_reference(tmp_path):
    """Skipped unless asked for; with benchmarks/idiomatic's torch reference it passes a loose bound and fails an
    impossible one (so it can fail)."""
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1] / "benchmarks"),
                                                       os.environ.get("PYTHONPATH")]))}
    _, plain = run_kit(tmp_path / "plain", "torch", "torch", ["resnet32"], ["-k", "speed"], env=env)
    assert plain == {"test_train_step_speed_against_reference[resnet32]": "skipped"}
    for tolerance, outcome in (("100", "passed"), ("0.001", "failed")):
        proc, outcomes = run_kit(tmp_path / tolerance, "torch", "torch", ["resnet32"],
                                 ["-k", "speed", "--convbench-speed-reference", "idiomatic.torch_nets",
                                  "--convbench-speed-tolerance", tolerance, "--convbench-speed-batch", "8"], env=env)
        assert outcomes == {"test_train_step_speed_against_reference[resnet32]": outcome}, proc.stdout[-2000:]
    assert "the idiomatic reference's (idiomatic.torch_nets)" in proc.stdout
