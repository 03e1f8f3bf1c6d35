"""TFModel: the NativeModel (and TimedModel) of the tensorflow plugin, and the training set it may hold.

The model keeps the portable weights, the learning rate and the hand-over of losses; its step functions and the
batches they take are ``steps.Steps`` on one device, ``steps.ReplicatedSteps`` for data parallel, chosen once when
the model is built; ``HeldSet`` is the training set kept on the device with the step that gathers from it.

Data parallel (``BuildSettings.parallel`` of mode "devices", ``world_size`` N > 1; see ``parallel``): the variables are
MirroredVariables, the train step runs per replica on its slice of the global batch with gradients
all-reduced (mean) before the update, and the loss returned is the global batch's mean. Batch norm uses
each replica's own batch statistics in training (no cross-replica sync, like torch's DDP without
SyncBatchNorm); its running statistics are ON_WRITE variables with aggregation MEAN, so every replica's
update is averaged and written to all copies (deterministic: the reduction order is fixed). Forward and
evaluation run on the first replica's device (every copy holds the same values).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from convbench_tensorflow.device import configure, tf_device
from convbench_tensorflow.execution import TFExecution
from convbench_tensorflow.parallel import Replicas, replica_devices
from convbench_tensorflow.steps import LearningRate, ReplicatedSteps, Steps
from harness.errors import ConvbenchError
from harness.model.graph import ModelDef
from harness.model.weights import check_momentum, check_weights
from harness.plugin_base import Execution, unknown_phase
from harness.settings import BuildSettings


class HeldBatch(NamedTuple):
    """A batch of the training set the model holds (``hold_train_set``): (1, n) sample indices, or (4, n) with
    each image's crop offsets and flip flag; the step gathers (and crops) the pixels on the device."""
    plan: np.ndarray


class HeldSet:
    """The training set kept in two variables on the model's device, zero-padded by ``pad`` when batches will be
    cropped (then stored as (n * hp * wp, c) pixel rows, so a crop is one gather of pixel rows), and the train
    step that gathers each batch from it by index."""

    def __init__(self, steps: Steps, pixels: np.ndarray, labels: np.ndarray, pad: int, hw: tuple[int, int]) -> None:
        self.device, self.pad, self.hw = steps.device, pad, hw
        with tf.device(self.device):
            self.images, self.labels = tf.Variable(pixels, trainable=False), tf.Variable(labels, trainable=False)
        self.step = steps.held_step(self.images, self.labels, (pad, *hw))

    @staticmethod
    def arrays(images: np.ndarray, labels: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """(pixels as held, labels as held, (h, w)) of an (n, h, w, c) training set."""
        n, h, w, c = images.shape
        pixels = np.asarray(images, np.float32)
        if pad:
            pixels = np.pad(pixels, ((0, 0), (pad, pad), (pad, pad), (0, 0))).reshape(-1, c)
        return pixels, np.asarray(labels, np.int64), (h, w)

    def refill(self, pixels: np.ndarray, labels: np.ndarray, pad: int, hw: tuple[int, int]) -> bool:
        """Holds a set of the same shapes in these variables (the step and its trace are kept); False otherwise."""
        with tf.device(self.device):
            if (self.pad, self.hw) != (pad, hw) or self.images.shape != pixels.shape or self.labels.shape != labels.shape:
                return False
            self.images.assign(pixels)
            self.labels.assign(labels)
            return True

    def batch(self, index: np.ndarray, crops: Any) -> HeldBatch:
        """The batch of held samples ``index``, cropped and flipped by ``crops`` (a harness Crops) or not."""
        pad = self.pad
        if crops is not None and pad == 0:
            raise ConvbenchError("crops for a training set held without padding")
        if crops is None:   # held padded: the centre crop is the image itself
            rows = [index] if pad == 0 else [index, np.full_like(index, pad), np.full_like(index, pad), np.zeros_like(index)]
        else:
            rows = [index, crops.dy, crops.dx, crops.flip]
        return HeldBatch(np.stack(rows).astype(np.int64))   # the step's call converts it (no eager op here)


class TFModel:
    hold_crops_on_cpu = False   # hold_train_set declines a padded set on the CPU (numpy's crop is faster there)

    def __init__(self, model: ModelDef, execution: Execution, settings: BuildSettings) -> None:
        self.model = model
        device = tf_device(execution.device)  # validation first: these start no TF runtime
        self.on_cpu = execution.device.is_cpu
        self.execution = TFExecution(execution)
        devices = replica_devices(execution.device, settings.parallel)  # logical CPU devices: before the runtime starts
        if devices is not None and self.execution.compile == "xla":
            raise ConvbenchError("tensorflow data parallel runs with --compile auto or none, not xla")
        configure(settings.threads, settings.seed)  # before the first op: thread pools, GPU memory growth
        self.execution.apply()
        if devices is None:
            self.steps = Steps(model, settings, self.execution, device, self.on_cpu)
        else:
            self.steps = ReplicatedSteps(Replicas(devices), model, settings, self.execution, self.on_cpu)
        self.device, self.world = self.steps.device, self.steps.world
        self.net, self.optimizer, self.scaler = self.steps.net, self.steps.optimizer, self.steps.scaler
        self._lr = LearningRate(self.device)
        self.held: HeldSet | None = None   # made by hold_train_set

    def execution_info(self) -> dict[str, Any]:
        return {"world_size": self.world, **self.execution.info()}

    # -- NativeModel ---------------------------------------------------------------------------------

    def param_count(self) -> int:
        return sum(int(np.prod(v.shape)) for v in self.net.trainable)

    def get_weights(self) -> dict[str, np.ndarray]:
        return {key: np.array(p.to_portable(p.var.numpy()), dtype=np.float32, order="C", copy=True)
                for key, p in self.net.params.items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        check_weights(self.model, weights)
        with self.steps.scope(), tf.device(self.device):
            for key, p in self.net.params.items():
                p.var.assign(p.to_tf(np.asarray(weights[key], np.float32)))

    def _momentum_buffers(self) -> dict[str, tuple[Any, tf.Variable]]:
        """portable key -> (its Param, the optimiser's buffer for it)."""
        buffer_of = {id(var): buf for var, buf in zip(self.optimizer.variables, self.optimizer.buffers)}
        return {key: (p, buffer_of[id(p.var)]) for key, p in self.net.params.items() if id(p.var) in buffer_of}

    def get_momentum(self) -> dict[str, np.ndarray]:
        return {key: np.array(p.to_portable(buf.numpy()), dtype=np.float32, order="C", copy=True)
                for key, (p, buf) in self._momentum_buffers().items()}

    def set_momentum(self, momentum: dict[str, np.ndarray]) -> None:
        check_momentum(self.model, momentum)
        with self.steps.scope(), tf.device(self.device):
            for key, (p, buf) in self._momentum_buffers().items():
                buf.assign(p.to_tf(np.asarray(momentum[key], np.float32)))

    def forward(self, images: np.ndarray) -> np.ndarray:
        with tf.device(self.device):
            return self.steps.forward(self.steps.images(images)).numpy()

    def train_step(self, images: np.ndarray, labels: np.ndarray, lr: float) -> float:
        """One step on the (global) batch; returns its mean loss."""
        return self.read_losses([self.train_step_async(self.steps.batch(images, labels), lr)])[0]

    def train_step_async(self, batch: Any, lr: float) -> tf.Tensor:
        """Queues a step (TF runs ops asynchronously on a GPU); the loss stays a device tensor."""
        if isinstance(batch, HeldBatch):   # gathered inside the step: one function call, no image copy
            assert self.held is not None
            with tf.device(self.device):
                return self.held.step(batch.plan, self._lr(lr))
        x, y = batch
        with tf.device(self.device):
            return self.steps.train(x, y, self._lr(lr))

    def hold_train_set(self, images: np.ndarray, labels: np.ndarray, pad: int) -> bool:
        """Keeps the (n, h, w, c) training set on the model's device (``HeldSet``), so each train step gathers its
        batch there from indices: per step one copy of a few hundred integers instead of the images, and one
        function call. Data parallel declines (each replica's slice is handed over from the host,
        ``prepare_nhwc_batch``), and so does an augmented CPU cell, where TF's in-graph crop is no faster than the
        harness's numpy crop plus the hand-over (docs/performance.md)."""
        if not self.steps.holds_train_set or (pad and self.on_cpu and not self.hold_crops_on_cpu):
            return False
        pixels, labels, hw = HeldSet.arrays(images, labels, pad)
        if self.held is None or not self.held.refill(pixels, labels, pad, hw):
            self.held = HeldSet(self.steps, pixels, labels, pad, hw)
        return True

    def gather_batch(self, index: np.ndarray, crops: Any) -> HeldBatch:
        """The batch of held samples ``index``, cropped and flipped by ``crops`` (a harness Crops) or not."""
        if self.held is None:
            raise ConvbenchError("gather_batch before hold_train_set")
        return self.held.batch(index, crops)

    def read_losses(self, losses: list[tf.Tensor]) -> list[float]:
        return [float(v) for v in tf.stack(losses).numpy()]

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
        with tf.device(self.device):
            ce, hits = self.steps.evaluate(self.steps.images(images), self.steps.labels(labels))
        return float(ce.numpy()), int(hits.numpy())

    # -- TimedModel ----------------------------------------------------------------------------------

    def prepare_batch(self, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        return self.steps.batch(images, labels)

    def prepare_nhwc_batch(self, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        """The batch from channels-last numpy images, with no transpose to pay (docs/performance.md)."""
        return self.steps.nhwc_batch(images, labels)

    def run_phase(self, phase: str, batch: object, lr: float) -> None:
        x, y = batch  # type: ignore[misc]
        with tf.device(self.device):
            if phase == "forward":
                self.steps.phase_forward(x)
            elif phase == "forward_backward":
                self.steps.grads(x, y)
            elif phase == "train_step":
                self.steps.train(x, y, self._lr(lr))
            else:
                raise unknown_phase(phase)

    def tracing_counts(self) -> dict[str, int]:
        """How often each step function has been traced (one per distinct batch shape; 0 when eager)."""
        return self.steps.tracing_counts()
