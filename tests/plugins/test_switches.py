"""--tf32 and --autotune reach every framework's own switch (read back from the framework, not from convbench's
settings), each framework in its own process. On this CPU the rows then truthfully say TF32 did not run."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import FRAMEWORKS, framework_installed

# torch: every TF32 switch, the per-op ones (torch >= 2.9) and the legacy ones that torch.compile's inductor still
# reads (torch/_inductor/kernel/conv.py: torch.backends.cudnn.allow_tf32); reading one must not raise, and all agree
TORCH_FLAGS = ("torch.backends.cuda.matmul.fp32_precision == 'tf32'", "torch.backends.cudnn.conv.fp32_precision == 'tf32'",
               "torch.backends.cudnn.rnn.fp32_precision == 'tf32'", "torch.backends.cuda.matmul.allow_tf32",
               "torch.backends.cudnn.allow_tf32", "torch.get_float32_matmul_precision() != 'highest'")
READ_BACK = {  # what the framework itself says after the plugin set the switches
    "torch": "import torch; flags = {" + ", ".join(f"{f!r}: bool({f})" for f in TORCH_FLAGS) + "}; "
             "state = {'tf32': flags[next(iter(flags))] if len(set(flags.values())) == 1 else flags, "
             "'autotune': torch.backends.cudnn.benchmark}",
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


# The row's tf32 as a GPU would report it: the plugin's execution read back for cuda:0, with only the GPU's compute
# capability faked (9.0, an H100). NVIDIA_TF32_OVERRIDE=0 turns TF32 off in cuBLAS and cuDNN whatever the framework's
# own switch says, so a row must then say tf32 off (and the framework's switch is turned off too: kernels outside
# cuBLAS/cuDNN, Triton's or XLA's own, do not read the variable).
ON_A_GPU = {
    "torch": "import torch; from convbench_torch.execution import TorchExecution as X; "
             "torch.cuda.get_device_capability = lambda device=None: (9, 0)\n"
             "def row(ex): x = X(ex); x.apply(); return x.info(torch.device('cuda', 0))['tf32']",
    "tensorflow": "import convbench_tensorflow.execution as m; m.compute_capability = lambda index: 9\n"
                  "def row(ex): x = m.TFExecution(ex); x.apply(); return x.info()['tf32']",
    "jax": "import types; from convbench_jax.execution import JaxExecution as X\n"
           "def row(ex): x = X(ex); x.apply(); return x.info(types.SimpleNamespace(compute_capability='9.0'))['tf32']",
    "paddle": "import paddle; from convbench_paddle.execution import PaddleExecution as X; "
              "paddle.device.cuda.get_device_capability = lambda place=None: (9, 0)\n"
              "def row(ex): return X(ex.precision, None, ex.compile, True).info('gpu:0')['tf32']",
}
OVERRIDE = """
import json, os, sys
from harness.plugin_manager import get_plugin_manager
from harness.settings import BuildSettings
plugin = get_plugin_manager().get_plugin(sys.argv[1])
ROW_CODE
out = {}
for override in (None, "0"):
    if override is None:
        os.environ.pop("NVIDIA_TF32_OVERRIDE", None)
    else:
        os.environ["NVIDIA_TF32_OVERRIDE"] = override
    ex = plugin.execution(BuildSettings(tf32=True), plugin.device("cuda:0"))
    for name, value in plugin.environment(ex).items():
        os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
    out[str(override)] = {"row": row(ex), "env": os.environ.get("NVIDIA_TF32_OVERRIDE")}
print(json.dumps(out))
"""


@pytest.mark.parametrize("framework", [fw for fw in ON_A_GPU if fw in FRAMEWORKS] or ["torch"])
def test_nvidia_tf32_override_zero_means_tf32_off_in_the_row(framework: str):
    if not framework_installed(framework):
        pytest.skip(f"{framework} is not installed")
    code = OVERRIDE.replace("ROW_CODE", ON_A_GPU[framework])
    proc = subprocess.run([sys.executable, "-c", code, framework], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["None"]["row"] is True                       # --tf32 on, on a TF32 GPU: on
    assert out["0"] == {"row": False, "env": "0"}           # the user's override is kept, and the row says off
