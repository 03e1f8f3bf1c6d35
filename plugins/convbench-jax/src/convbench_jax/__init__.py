"""JAX plugin for convbench. JAX is imported only by the methods that run inside a jax worker.

Registered through the ``convbench`` entry-point group under the name ``jax`` (see pyproject.toml), as an
instance of convbench's shared plugin base (``harness.plugin_base.FrameworkPlugin``).
"""
from __future__ import annotations

import os
from typing import Any

from harness.devices import Device
from harness.frameworks import DeviceInfo, FrameworkSpec
from harness.model.graph import ModelDef
from harness.model.layers import LayerSpec
from harness.plugin_base import XLA_NO_AUTOTUNE, Execution, FrameworkPlugin, xla_flags
from harness.settings import BuildSettings

__version__ = "0.1.0"


class JaxPlugin(FrameworkPlugin):
    # GPU memory as the other frameworks use it (docs/gpus.md): no preallocation (JAX would otherwise map 75% of the
    # GPU at start, like TF without memory growth), and up to 95% of it: XLA's allocator stops at memory_fraction,
    # 0.75 by default, with or without preallocation (jaxlib/xla_client.py generate_pjrt_gpu_plugin_options passes
    # it on), where torch's, TF's (memory growth) and Paddle's (auto_growth) allocators take what the GPU has.
    # data parallel: one worker drives every device, a mesh with the train step under shard_map (parallel.py)
    spec = FrameworkSpec("jax", "jax", ("jax",), ("cpu", "cuda"),
                         env={"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "XLA_CLIENT_MEM_FRACTION": "0.95"},
                         data_parallel="devices", compile_cache_modes=("auto", "default", "xla", "none"))
    # auto/default/xla all mean jax.jit (jit *is* XLA compilation); none runs op by op, no jit at all
    compile_modes = {"auto": "jax.jit", "default": "jax.jit", "xla": "jax.jit", "none": "eager"}
    # native = NHWC: XLA's CPU convolutions are NHWC (Eigen) and on GPU XLA picks cuDNN's layout itself
    layouts = {"native": "nhwc", "nhwc": "nhwc", "nchw": "nchw"}
    precisions = ("fp32", "bf16", "fp16")
    gpu_only_precisions = ("fp16",)  # fp16 comes with loss scaling, which only pays off on a GPU
    async_on_cpu = True  # JAX dispatches asynchronously on the CPU too: synchronize answers for cpu

    def environment(self, execution: Execution) -> dict[str, str | None]:
        """XLA's GPU autotuning is a flag read when the backend starts; a CPU cell pins JAX to its CPU backend
        (JAX_PLATFORMS, read at import: JAX would otherwise start, and default to, a GPU the host has)."""
        env: dict[str, str | None] = {"XLA_FLAGS": xla_flags(os.environ.get("XLA_FLAGS"), XLA_NO_AUTOTUNE,
                                                            not execution.autotune)}
        if os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION"):   # a user's own (deprecated) name: jaxlib refuses both
            env["XLA_CLIENT_MEM_FRACTION"] = None
        return env if execution.device.is_gpu else {**env, "JAX_PLATFORMS": "cpu"}

    def use_compile_cache(self, folder: str, execution: Execution) -> None:
        """JAX's persistent compilation cache (every jax.jit program; eager ops are small jitted programs too), with
        the thresholds lowered so small CPU programs are kept too (by default only those that took 1 s to compile).
        Set before the first compilation, which initialises the cache."""
        import jax
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)

    def build(self, model: ModelDef, execution: Execution, settings: BuildSettings) -> Any:
        from convbench_jax.device import configure_threads
        configure_threads(settings.threads)
        from convbench_jax.model import JaxModel
        return JaxModel(model, execution, settings)

    def build_layer(self, model: ModelDef, layer: LayerSpec, execution: Execution, settings: BuildSettings) -> Any:
        from convbench_jax.device import configure_threads
        configure_threads(settings.threads)
        from convbench_jax.layer_cell import JaxLayer
        return JaxLayer(model, layer, execution, settings)

    def discover(self) -> list[DeviceInfo]:
        from convbench_jax.device import discover
        return discover()

    def runtime_versions(self) -> dict[str, str | None]:
        from convbench_jax.device import runtime_versions
        return runtime_versions()

    def synchronize(self, device: Device) -> None:
        from convbench_jax.device import synchronize
        synchronize()

    def peak_memory_mb(self, device: Device, reset: bool) -> float | None:
        from convbench_jax.device import peak_memory_mb
        return peak_memory_mb(device, reset)


plugin = JaxPlugin()
