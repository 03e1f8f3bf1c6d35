"""Hook specifications: the reference documentation of convbench's plugin interface.

Three concerns: frameworks (``convbench_add_frameworks``, ``convbench_build_model``,
``convbench_runtime_versions``), models (``convbench_add_models``) and devices (``convbench_discover_devices``,
``convbench_synchronize``, ``convbench_peak_memory_mb``). Hooks that take a ``framework`` name are called inside that
framework's worker process only, so an implementation may import its framework there; every
other hook runs in the orchestrator, which must never import a deep-learning framework.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness import hookspec

if TYPE_CHECKING:
    from harness.frameworks import DeviceInfo, FrameworkSpec
    from harness.model.graph import ModelDef
    from harness.model.layers import LayerSpec
    from harness.native import LayerModel, NativeModel
    from harness.registry import Registry


@hookspec
def convbench_add_frameworks(registry: "Registry[FrameworkSpec]") -> None:
    """Register the frameworks this plugin provides.

    Called once per plugin manager, in the orchestrator and in every worker, before anything runs.
    Must not import the framework itself: a ``FrameworkSpec`` names the import module and the
    distribution, so availability and version are read without importing.

    :param registry: add each framework with ``registry.add(spec.name, spec)``; a duplicate name raises.
    :return: None.
    """


@hookspec
def convbench_add_models(registry: "Registry[ModelDef]") -> None:
    """Register framework-neutral network definitions.

    Called once per plugin manager, in the orchestrator and in every worker.

    :param registry: add each network with ``registry.add(model.name, model)``; a duplicate name raises.
    :return: None.
    """


@hookspec(firstresult=True)
def convbench_build_model(framework: str, model: "ModelDef", device: str, settings: dict[str, Any]) -> "NativeModel | None":
    """Realise ``model`` natively in ``framework`` on ``device``.

    Called in the cell's worker process. Stops at first non-None result. An implementation returns
    None for frameworks it does not provide. The harness then loads the shared initial weights into
    the result with ``set_weights``, so the builder's own initialisation does not matter.

    :param framework: the framework name, as registered.
    :param model: the network definition.
    :param device: a device string such as ``cpu`` or ``cuda:0``.
    :param settings: ``harness.settings.BuildSettings.to_dict()``; every key is always sent:
        ``momentum`` (float), ``weight_decay`` (float, L2 on every parameter), ``seed`` (int),
        ``threads`` (int or None: the framework's default), ``precision`` (fp32, bf16, fp16),
        ``compile`` (auto, none, default, xla), ``layout`` (native, nchw, nhwc), ``tf32`` (bool),
        ``autotune`` (bool), ``compile_cache`` (str or None: the folder of this framework's persistent
        compilation cache, ``--compile-cache DIR``/<framework>; a plugin turns its framework's cache on there
        before anything compiles), and the data-parallel part this process plays: ``world_size`` (1 alone),
        ``rank`` (int), ``dp_mode`` ("processes", "devices" or None) and ``devices`` (every rank's
        device string as this worker names it, or None). A plugin built on
        ``harness.FrameworkPlugin`` receives the typed ``BuildSettings`` instead.
    :return: an object implementing ``harness.native.NativeModel``, or None.
    """


@hookspec(firstresult=True)
def convbench_build_layer(framework: str, model: "ModelDef", layer: "LayerSpec", device: str,
                          settings: dict[str, Any]) -> "LayerModel | None":
    """Optional: realise one node of ``model`` alone, for ``convbench explain``'s per-layer times.

    Called in a worker process of ``framework``. Stops at first non-None result. An implementation returns None for
    frameworks it does not provide. The harness then loads the node's share of the shared initial weights with
    ``set_weights``. The node must be built by the same code, with the same execution settings, as
    ``convbench_build_model`` builds it inside the network: explain compares the sum of the nodes' times with the
    network's step. A plugin on ``harness.FrameworkPlugin`` implements ``build_layer``.

    :param framework: the framework name, as registered.
    :param model: the whole network's definition (for the shapes of the node's inner layers).
    :param layer: the node: its dotted path, graph node, input and output shapes, ``input_grad`` and ``training_only``.
    :param device: a device string such as ``cpu`` or ``cuda:0``.
    :param settings: as for ``convbench_build_model``.
    :return: an object implementing ``harness.native.LayerModel``, or None.
    """


@hookspec(firstresult=True)
def convbench_discover_devices(framework: str) -> "list[DeviceInfo] | None":
    """List the devices ``framework`` can run on in this machine.

    Called in a short-lived probe process per framework, before any cell starts. Stops at first
    non-None result. Raise (any exception) if the framework cannot be imported: the harness then
    marks it unavailable with the exception's message as the reason.

    :param framework: the framework name, as registered.
    :return: a list of ``DeviceInfo`` (``cpu`` first), or None for frameworks this plugin does not provide.
    """


@hookspec(firstresult=True)
def convbench_synchronize(framework: str, device: str) -> "bool | None":
    """Block until all work queued on ``device`` by ``framework`` has finished.

    Called in the worker before every clock reading around a timed region. Stops at first non-None
    result. The built-in CPU plugin answers True for ``cpu`` and runs last (trylast), so a framework
    that is asynchronous on the CPU too (JAX) answers for itself first.

    :param framework: the framework name.
    :param device: the device string of the cell.
    :return: True once synchronised, or None for devices this plugin does not handle.
    """


@hookspec(firstresult=True)
def convbench_peak_memory_mb(framework: str, device: str, reset: bool) -> "float | None":
    """Peak memory in MiB used on ``device`` since the last reset.

    Called in the worker after timed work (``reset=False``) and before it (``reset=True``). Stops at
    first non-None result. On ``cpu`` the built-in plugin answers the worker process's own peak
    resident set (``ru_maxrss``, which cannot be reset, so it covers the process's whole life).

    :param framework: the framework name.
    :param device: the device string of the cell.
    :param reset: start a new measurement window.
    :return: the peak in MiB, or None for devices this plugin does not handle. With ``reset``: any number once
        the window is reset, or None when the counter cannot be reset (JAX's, ``ru_maxrss``): it then covers
        the process's life, and ``convbench doctor`` reports its reset check as not applicable.
    """


@hookspec(firstresult=True)
def convbench_runtime_versions(framework: str) -> "dict[str, str | None] | None":
    """The GPU software ``framework`` runs on, as the framework itself reports it.

    Called in the framework's probe worker (for meta.json) and in each GPU cell's worker (for its rows). Stops
    at first non-None result. A CPU-only build answers with None values.

    :param framework: the framework name.
    :return: {"cuda_runtime": "12.4", "cudnn": "9.1.0", "nccl": "2.21.5"} (a value None where it does not
        apply), or None for frameworks this plugin does not provide.
    """
