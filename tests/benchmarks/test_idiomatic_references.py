"""The idiomatic references of benchmarks/idiomatic/ (issue 19), the yardstick of benchmarks/idiomatic_ratio.py:
in every installed framework each model has the definition's trainable parameter count, and every variant runs a
train step with a finite loss and an evaluation forward pass with finite (batch, classes) logits.

One subprocess per framework (TensorFlow and Paddle cannot share a process), all started together with one
thread each, since most of the time is tracing and compilation, which runs on one core.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from helpers import REGISTRIES, framework_installed, needs

from harness.model.shapes import model_summary

MODELS = ("vgg16", "resnet32", "googlenet")
# every model is built and its parameters counted; every variant of these also trains a step and evaluates
# (compiling vgg16's and googlenet's steps takes minutes of a 2-core suite: the ratio benchmark runs them)
STEPPED = ("resnet32",)
FRAMEWORKS = ("torch", "tensorflow", "paddle", "jax")
BATCH = 4

CHECK = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import idiomatic
module = idiomatic.load(sys.argv[2])
out = {}
for name in sys.argv[3].split(","):
    ref = module.make(name, int(sys.argv[4]))
    out[name] = {"params": ref.params, "variants": {}}
    if name not in sys.argv[5].split(","):   # built and counted; its steps are left to the benchmark
        continue
    for variant_name, variant in ref.variants.items():
        loss = float(variant.train_step())
        logits = variant.forward()
        ref.synchronize()
        logits = np.asarray(logits.numpy() if hasattr(logits, "numpy") else logits)
        out[name]["variants"][variant_name] = {"loss": loss, "shape": list(logits.shape),
                                               "finite": bool(np.isfinite(logits).all())}
print("RESULT " + json.dumps(out), flush=True)
"""


@pytest.fixture(scope="module")
def checks(request, benchmarks_dir):
    """framework -> the parsed result of its check process; every selected framework's process starts at once."""
    selected = {item.callspec.params["framework"] for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_NUM_INTEROP_THREADS="1", NPROC="1")
    # XLA's backend optimisations cost more than half of jax's time here (compiling, not running, the steps);
    # turning them down changes no result, only how fast the compiled code runs
    env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS"), "--xla_backend_optimization_level=0",
                                              "--xla_llvm_disable_expensive_passes=true"]))
    env.update({var: "1" for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                     "TF_NUM_INTRAOP_THREADS")})
    procs = {fw: subprocess.Popen([sys.executable, "-c", CHECK, str(benchmarks_dir), fw, ",".join(MODELS), str(BATCH),
                                   ",".join(STEPPED)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for fw in sorted(selected) if framework_installed(fw)}
    results: dict[str, dict] = {}

    def get(framework: str) -> dict:
        if framework not in results:
            proc = procs[framework]
            try:
                stdout, stderr = proc.communicate(timeout=600)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
            lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
            assert proc.returncode == 0 and lines, f"{framework} check failed ({proc.returncode}):\n{stderr[-3000:]}"
            results[framework] = json.loads(lines[-1][len("RESULT "):])
        return results[framework]

    yield get
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.e2e
@pytest.mark.parametrize("framework", [pytest.param(fw, marks=needs(fw)) for fw in FRAMEWORKS])
def test_reference_matches_definition_and_trains(framework, checks):
    result = checks(framework)
    assert set(result) == set(MODELS)
    for name in MODELS:
        expected = model_summary(REGISTRIES.models.get(name)).params
        assert result[name]["params"] == expected, f"{framework} {name}: {result[name]['params']} != {expected}"
        if name not in STEPPED:
            continue
        assert result[name]["variants"], f"{framework} {name} has no variant"
        for variant, run in result[name]["variants"].items():
            where = f"{framework} {name} {variant}"
            assert math.isfinite(run["loss"]) and run["loss"] > 0, f"{where}: loss {run['loss']}"
            assert run["shape"] == [BATCH, 10] and run["finite"], f"{where}: logits {run}"

