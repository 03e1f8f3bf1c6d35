"""TensorFlow plugin. TensorFlow is imported only by the methods that run inside a tensorflow worker."""
from __future__ import annotations

import os
from typing import Any

from harness.devices import Device
from harness.frameworks import DeviceInfo, FrameworkSpec
from harness.model.graph import ModelDef
from harness.model.layers import LayerSpec
from harness.plugin_base import CUDNN_WORKSPACE_MB, XLA_NO_AUTOTUNE, Execution, FrameworkPlugin, xla_flags
from harness.settings import BuildSettings


class TensorFlowPlugin(FrameworkPlugin):
    # data parallel: one worker drives every device with tf.distribute.MirroredStrategy (parallel.py)
    # cuDNN's workspace limit in MB (TF's default 4 GB: tensorflow/core/kernels/conv_ops_fused_impl.h)
    spec = FrameworkSpec("tensorflow", "tensorflow", ("tensorflow", "tensorflow-cpu"), ("cpu", "cuda"),
                         data_parallel="devices", env={"TF_CUDNN_WORKSPACE_LIMIT_IN_MB": str(CUDNN_WORKSPACE_MB)},
                         compile_cache_modes=("xla",))
    # auto/default = TF's usual graph mode (tf.function); xla = tf.function(jit_compile=True); none = eager
    compile_modes = {"auto": "tf.function", "default": "tf.function", "xla": "xla", "none": "eager"}
    layouts = {"native": "nhwc", "nhwc": "nhwc"}  # TF's CPU convolutions are NHWC only: the plugin runs NHWC
    precisions = ("fp32", "bf16", "fp16")

    def environment(self, execution: Execution) -> dict[str, str | None]:
        """cuDNN autotuning (TF's own switch, read when a conv first runs) and XLA's, for jit_compile steps."""
        return {"TF_CUDNN_USE_AUTOTUNE": "1" if execution.autotune else "0",
                "XLA_FLAGS": xla_flags(os.environ.get("XLA_FLAGS"), XLA_NO_AUTOTUNE, not execution.autotune)}

    def use_compile_cache(self, folder: str, execution: Execution) -> None:
        """XLA's persistent cache of jit_compile programs (--compile xla; tf.function graphs are not compiled ahead
        and have no such cache): TF_XLA_FLAGS, which TF parses at the first XLA compilation."""
        os.environ["TF_XLA_FLAGS"] = xla_flags(os.environ.get("TF_XLA_FLAGS"),
                                               f"--tf_xla_persistent_cache_directory={folder}", True)

    def build(self, model: ModelDef, execution: Execution, settings: BuildSettings) -> Any:
        from convbench_tensorflow.model import TFModel
        return TFModel(model, execution, settings)

    def build_layer(self, model: ModelDef, layer: LayerSpec, execution: Execution, settings: BuildSettings) -> Any:
        from convbench_tensorflow.layer_cell import TFLayer
        return TFLayer(model, layer, execution, settings)

    def discover(self) -> list[DeviceInfo]:
        from convbench_tensorflow.device import discover
        return discover()

    def runtime_versions(self) -> dict[str, str | None]:
        import tensorflow as tf
        info = tf.sysconfig.get_build_info()  # TF reports what it was built against (and loads at run time)
        return {"cuda_runtime": info.get("cuda_version"), "cudnn": info.get("cudnn_version"), "nccl": None}

    def synchronize(self, device: Device) -> None:
        import tensorflow as tf
        tf.test.experimental.sync_devices()

    def peak_memory_mb(self, device: Device, reset: bool) -> float | None:
        import tensorflow as tf

        from convbench_tensorflow.device import memory_key
        if reset:
            tf.config.experimental.reset_memory_stats(memory_key(device))
            return 0.0
        return tf.config.experimental.get_memory_info(memory_key(device))["peak"] / 2**20


plugin = TensorFlowPlugin()
