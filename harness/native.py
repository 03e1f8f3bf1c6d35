"""The interface a framework plugin's model object implements (returned by convbench_build_model).

All arrays crossing this boundary are numpy: images float32 NCHW in [0, 1] (the plugin converts to
its native layout), labels int64, weights in the portable layout of ``harness.model.weights``.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np


class NativeModel(Protocol):
    def param_count(self) -> int:
        """Trainable parameters as the framework counts them (running statistics excluded)."""

    def get_weights(self) -> dict[str, np.ndarray]:
        """All parameters and batch-norm statistics in the portable layout."""

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load a full portable weight dict; raises on a missing key or a shape mismatch."""

    def forward(self, images: np.ndarray) -> np.ndarray:
        """Evaluation-mode logits of the main head, shape (N, classes), float32."""

    def train_step(self, images: np.ndarray, labels: np.ndarray, lr: float) -> float:
        """One SGD step (momentum, L2 weight decay on every parameter) at learning rate ``lr``.

        The loss is mean softmax cross-entropy of the main head plus each auxiliary head's
        cross-entropy times its weight. Returns that loss as a Python float.
        """

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
        """Evaluation mode: (summed cross-entropy of the main head, number of correct top-1 predictions)."""


class ResumableModel(NativeModel, Protocol):
    """Optional: the optimiser's momentum buffers, so ``--resume-from`` continues exactly where training stopped.

    Keys are the trainable parameters' portable keys (no batch-norm running statistics), arrays in the
    same portable layout as the parameter they belong to: the ``v`` of the SGD rule above (zeros before
    the first step). A plugin without these methods still resumes, with momentum restarting at zero.
    """

    def get_momentum(self) -> dict[str, np.ndarray]:
        """Every trainable parameter's momentum buffer, portable layout, float32."""

    def set_momentum(self, momentum: dict[str, np.ndarray]) -> None:
        """Load buffers for every trainable parameter (as ``get_momentum`` returns them); raises on a missing key."""


PHASES = ("forward", "forward_backward", "train_step")


class TimedModel(NativeModel, Protocol):
    """Speed-mode additions (``convbench run --mode speed``); none of these synchronise the device."""

    def prepare_batch(self, images: np.ndarray, labels: np.ndarray) -> object:
        """Converts a batch to native tensors on the model's device, once, outside any timed region."""

    def run_phase(self, phase: str, batch: object, lr: float) -> None:
        """One step of ``phase`` on a prepared batch, without waiting for the device:
        ``forward`` (eval mode, no gradients), ``forward_backward`` (training mode, loss and gradients of
        every parameter, no update) or ``train_step`` (forward, backward and the SGD update)."""


class PipelinedModel(NativeModel, Protocol):
    """Optional: training steps that do not wait for the device, so train mode times the framework and not the
    harness (``convbench run``'s training loop prefers these to ``train_step`` when a plugin has them).

    The loop calls ``prepare_batch`` (as in ``TimedModel``) for batch k + 1 right after ``train_step_async`` has
    queued step k, so the copy to the device overlaps the step, and reads the losses in bulk, a few steps behind.
    A plugin with only ``train_step`` still trains, one synchronised step at a time, and its rows say so.
    """

    def prepare_batch(self, images: np.ndarray, labels: np.ndarray) -> object:
        """Converts a batch to native tensors on the model's device (asynchronously where the framework can)."""

    def train_step_async(self, batch: object, lr: float) -> object:
        """``train_step`` on a prepared batch, without waiting for the device: returns the loss as the
        framework's own scalar (on the device), to be read later by ``read_losses``."""

    # Optional, for a framework whose steps take channels-last tensors (its NCHW prepare_batch transposes):
    #     def prepare_nhwc_batch(self, images: np.ndarray, labels: np.ndarray) -> object
    # the same batch as prepare_batch(images.transpose(0, 3, 1, 2), labels), from (n, h, w, c) images. The
    # training loop then gathers and augments batches from a channels-last copy of the training set.

    # Optional, for a framework that keeps the training set on its device and gathers batches there:
    #     def hold_train_set(self, images: np.ndarray, labels: np.ndarray, pad: int) -> bool
    #     def gather_batch(self, index: np.ndarray, crops: Crops | None) -> object
    # hold_train_set gets the set once per run (in the layout its batches take; zero-padded by ``pad`` by the
    # plugin when the run augments) and may decline (False); gather_batch then makes, for train_step_async,
    # the batch equal to crops.apply(images[index]) (or images[index]) handed over, bit for bit.

    def read_losses(self, losses: list[object]) -> list[float]:
        """Waits for the steps that made ``losses`` and returns them as floats, in order; for data-parallel
        processes, each the mean over the processes (the global batch's loss, as ``train_step`` returns it)."""


class LayerModel(Protocol):
    """Optional (``convbench explain``): one node of a network built alone, as ``convbench_build_layer`` returns it.

    The node is a ``harness.model.layers.LayerSpec``: a layer or an Aux-free block, at the input shape it sees in
    the network, built exactly as the network builds it (the same layer code, execution settings, numerics
    switches, layout, precision and optimiser), so its time is its share of the network's step. Arrays are numpy,
    float32, in NCHW order for 4-D tensors ((N, F) after flattening): the plugin converts to its layout.
    """

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """The node's parameters and statistics, keyed as in the whole model's portable weights (``<path>.<param>``):
        exactly the keys under the node's path. Raises on a missing key or a shape mismatch."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Evaluation-mode output of a batch of inputs (N, *input_shape): (N, *output_shape)."""

    def prepare(self, x: np.ndarray, grad: np.ndarray) -> object:
        """The input (N, *input_shape) and a gradient for the output (N, *output_shape) as native tensors on the
        device, once, outside any timed region."""

    def run_phase(self, phase: str, batch: object, lr: float) -> None:
        """One step of ``phase`` on a prepared batch, without waiting for the device: ``forward`` (evaluation mode,
        no gradients), ``forward_backward`` (training mode: the output, then the backward pass of
        ``sum(output * grad)`` to every parameter and, where ``spec.input_grad``, to the input, as the network's
        backward does; no update) or ``train_step`` (that and the SGD update of the node's parameters, momentum
        and weight decay as the network's). A node without parameters and without ``input_grad`` has no backward:
        its training phases are its training-mode forward."""


class ProfiledModel(TimedModel, Protocol):
    """Optional (``convbench explain --method profiler``): the framework's own profiler over the network's step."""

    def profile_layers(self, phase: str, batch: object, lr: float, steps: int) -> dict[str, object]:
        """Profiles ``steps`` steps of ``phase`` on a prepared batch (after a warm step, the device synchronised) and
        returns {"layers": {leaf layer path: milliseconds per step}, "step_ms": every profiled op's milliseconds per
        step, "steps": steps, "clock": what was summed, in words}. A layer's time is its forward ops' and their
        backward's; what belongs to no layer (the loss, a fused update of every parameter) is left out."""
