"""--tf32 and --autotune reach every framework's own switch (read back from the framework, not from convbench's
settings), each framework in its own process. On this CPU the rows then truthfully say TF32 did not run."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import FRAMEWORKS, framework_installed

READ_BACK = {  # what the framework itself says after the plugin set the switches
    "torch": "import torch; state = {'tf32': torch.backends.cuda.matmul.fp32_precision == 'tf32' and "
             "torch.backends.cudnn.conv.fp32_precision == 'tf32', 'autotune': torch.backends.cudnn.benchmark}",
    "tensorflow": "import os, tensorflow as tf; state = {'tf32': tf.config.experimental.tensor_float_32_execution_enabled(), "
                  "'autotune': os.environ['TF_CUDNN_USE_AUTOTUNE'] == '1'}",
    "jax": "import os, jax; state = {'tf32': jax.config.jax_default_matmul_precision == 'tensorfloat32', "
           "'autotune': '--xla_gpu_autotune_level=0' not in os.environ.get('XLA_FLAGS', '').split()}",
    "paddle": "import os; state = {'tf32': os.environ.get('NVIDIA_TF32_OVERRIDE') != '0', 'autotune': None}",
}
CODE = """
import json, sys
from harness.plugin_manager import build_registries, get_plugin_manager
framework, tf32, autotune = sys.argv[1], sys.argv[2] == "on", sys.argv[3] == "on"
pm = get_plugin_manager()
model = build_registries(pm).models.get("lenet5")
native = pm.hook.convbench_build_model(framework=framework, model=model, device="cpu",
                                       settings={"seed": 0, "threads": 1, "tf32": tf32, "autotune": autotune})
READ_BACK_CODE
print(json.dumps({"state": state, "row": native.execution_info()}))
"""


@pytest.mark.parametrize("framework", [fw for fw in READ_BACK if fw in FRAMEWORKS] or ["torch"])
@pytest.mark.parametrize("tf32, autotune", [("on", "on"), ("off", "off")])
def test_switches_reach_the_framework(framework: str, tf32: str, autotune: str):
    if not framework_installed(framework):
        pytest.skip(f"{framework} is not installed")
    code = CODE.replace("READ_BACK_CODE", READ_BACK[framework])
    proc = subprocess.run([sys.executable, "-c", code, framework, tf32, autotune], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["state"]["tf32"] is (tf32 == "on")
    if out["state"]["autotune"] is not None:   # paddle's switch exists only in its CUDA build
        assert out["state"]["autotune"] is (autotune == "on")
    assert out["row"]["tf32"] is False and out["row"]["autotune"] is None   # no TF32 and no cuDNN on a CPU
