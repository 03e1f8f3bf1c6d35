"""The step functions a TFModel runs, and the batches they take: ``Steps`` on one device, ``ReplicatedSteps`` on
the replicas of a MirroredStrategy (see ``parallel``).

Each step's graph body is traced once per batch shape (unless --compile none); the learning rate is a tensor
argument, so changing it does not retrace. Master weights are float32 whatever the precision. Batches are NHWC
inside (TF's CPU convolutions are NHWC only): numpy NCHW batches are transposed on the device.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from convbench_tensorflow.execution import TFExecution
from convbench_tensorflow.layers import Net, loss_fn
from convbench_tensorflow.optim import SGD, LossScaler
from convbench_tensorflow.parallel import Replicas, all_reduce_mean
from harness.model.graph import ModelDef
from harness.model.shapes import model_summary
from harness.settings import BuildSettings


def to_nhwc(images: np.ndarray) -> tf.Tensor:
    return tf.transpose(tf.convert_to_tensor(np.asarray(images, np.float32)), [0, 2, 3, 1])


def to_labels(labels: np.ndarray) -> tf.Tensor:
    return tf.identity(tf.convert_to_tensor(np.asarray(labels, np.int64)))


def to_tensor(images: np.ndarray) -> tf.Tensor:
    return tf.convert_to_tensor(np.asarray(images, np.float32))


def host_tensor(images: np.ndarray) -> tf.Tensor:
    """A float32 CPU tensor of ``images``: one numpy copy into fresh 64-byte-aligned memory, which TF then uses
    in place (DLPack; TF aborts the process on less aligned memory, which is why numpy's own arrays cannot go
    this way), faster than ``tf.convert_to_tensor``, which copies through TF's allocator (docs/performance.md).
    The capsule holds the numpy buffer until TF frees the tensor."""
    nbytes = images.size * 4
    raw = np.empty(nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    out = raw[start:start + nbytes].view(np.float32).reshape(images.shape)
    np.copyto(out, images, casting="same_kind")
    return tf.experimental.dlpack.from_dlpack(out.__dlpack__())


class LearningRate:
    """The learning rate as a float32 tensor on ``device``, made once per value: a step takes it as an argument, so
    a new value does not retrace, and a repeated one makes no new tensor."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.value: float | None = None
        self.tensor: tf.Tensor | None = None

    def __call__(self, lr: float) -> tf.Tensor:
        if self.value != lr or self.tensor is None:
            with tf.device(self.device):
                self.tensor, self.value = tf.constant(lr, tf.float32), lr
        return self.tensor


def held_images(images: tf.Tensor, plan: tf.Tensor, geometry: tuple[int, int, int]) -> tf.Tensor:
    """The batch's images gathered from the held training set: one gather, cropped and flipped by index.
    ``geometry``: (pad, h, w); pad 0: ``images`` is (n, h, w, c), else (n * hp * wp, c) padded pixel rows."""
    pad, h, w = geometry
    if not pad:
        return tf.gather(images, plan[0])
    index, dy, dx, flip = plan[0], plan[1], plan[2], plan[3]
    rows = dy[:, None] + tf.range(h, dtype=tf.int64)                                          # (n, h)
    cols = dx[:, None] + tf.where(flip[:, None] > 0, tf.range(w - 1, -1, -1, dtype=tf.int64),
                                  tf.range(w, dtype=tf.int64))                                # (n, w)
    pixel = (index[:, None, None] * (h + 2 * pad) + rows[:, :, None]) * (w + 2 * pad) + cols[:, None, :]
    return tf.gather(images, pixel)   # (n, h, w, c)


class Steps:
    """One device: the network, its optimiser (and fp16 loss scaler), the step functions wrapped as the execution
    runs them (eager, tf.function, XLA) and the batches they take."""
    world = 1
    holds_train_set = True   # the model may keep its training set on the device (``HeldSet``)

    def __init__(self, model: ModelDef, settings: BuildSettings, execution: TFExecution, device: str,
                 on_cpu: bool) -> None:
        self.device, self.on_cpu, self.wrap = device, on_cpu, execution.wrap
        with self.scope(), tf.device(device):
            self.net = Net(model, model_summary(model), execution.dtype, settings.seed)
            self.optimizer = SGD(self.net.trainable, settings.momentum, settings.weight_decay)
            self.scaler = LossScaler() if execution.precision == "fp16" else None
        self.forward, self.evaluate = self.wrap(self._forward), self.wrap(self._evaluate)
        self.phase_forward, self.grads, self.train = self._phases()

    def scope(self) -> contextlib.AbstractContextManager[Any]:
        """Where variables are made and assigned."""
        return contextlib.nullcontext()

    def _phases(self) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
        """The forward, forward_backward and train_step functions that train steps and run_phase call."""
        return self.forward, self.wrap(self._forward_backward), self.wrap(self._train_step)

    def _reduce(self, grads: list[tf.Tensor | None]) -> list[tf.Tensor | None]:
        return grads

    # -- graph bodies (traced once per input shape) --------------------------------------------------

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        return self.net(x, training=False)[0]

    def _loss_and_grads(self, x: tf.Tensor, y: tf.Tensor, update_stats: bool
                        ) -> tuple[tf.Tensor, list[tf.Tensor | None], tf.Tensor | None]:
        with tf.GradientTape() as tape:
            logits, aux = self.net(x, training=True, update_stats=update_stats)
            loss = loss_fn(logits, aux, y)
            scaled = loss * self.scaler.scale if self.scaler is not None else loss
        grads = self._reduce(tape.gradient(scaled, self.net.trainable))
        if self.scaler is None:
            return loss, grads, None
        grads, finite = self.scaler.unscale(grads)
        return loss, grads, finite

    def _forward_backward(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        loss, grads, _ = self._loss_and_grads(x, y, update_stats=False)
        return loss, [g for g in grads if g is not None]  # returned, so no gradient is pruned away

    def _train_step(self, x: tf.Tensor, y: tf.Tensor, lr: tf.Tensor) -> tf.Tensor:
        loss, grads, finite = self._loss_and_grads(x, y, update_stats=True)
        self.optimizer.apply(grads, lr, finite)   # fp16: an overflowing step changes nothing (decided on the device)
        if self.scaler is not None:
            self.scaler.update(finite)
        return loss

    def _evaluate(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits = self.net(x, training=False)[0]
        ce = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=y.dtype), y), tf.int32))
        return ce, hits

    def held_step(self, images: tf.Variable, labels: tf.Variable, geometry: tuple[int, int, int]
                  ) -> Callable[[Any, tf.Tensor], tf.Tensor]:
        """The train step on samples of a held set, a function of (plan, lr) only: the set's variables are
        captured, so a call binds two arguments, not five, as a tf.function call costs per argument it binds
        (docs/performance.md). Variables, not constants: the graph reads what they hold now, so a set held anew
        in them is never met as a stale copy, and needs no new trace."""
        def step(plan: tf.Tensor, lr: tf.Tensor) -> tf.Tensor:
            return self._train_step(held_images(images, plan, geometry), tf.gather(labels, plan[0]), lr)
        return self.wrap(step)

    # -- batches ---------------------------------------------------------------------------------------

    def images(self, images: np.ndarray) -> tf.Tensor:
        """NCHW numpy -> NHWC float32 tensor on the model's device (transposed there)."""
        with tf.device(self.device):
            return to_nhwc(images)

    def labels(self, labels: np.ndarray) -> tf.Tensor:
        with tf.device(self.device):
            return to_labels(labels)

    def batch(self, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        """The batch as train steps take it."""
        return self.images(images), self.labels(labels)

    def nhwc_batch(self, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        """The batch from channels-last numpy images; on the CPU they reach TF through DLPack (``host_tensor``)."""
        with tf.device(self.device):
            return (host_tensor(images) if self.on_cpu else to_tensor(images)), to_labels(labels)

    def tracing_counts(self) -> dict[str, int]:
        """How often each step function has been traced (one per distinct batch shape; 0 when eager)."""
        fns = {"forward": self.phase_forward, "forward_backward": self.grads, "train_step": self.train,
               "evaluate": self.evaluate}
        return {name: getattr(fn, "experimental_get_tracing_count", lambda: 0)() for name, fn in fns.items()}


class ReplicatedSteps(Steps):
    """Data parallel: the variables are MirroredVariables, the train step runs per replica on its slice of the
    global batch with gradients all-reduced (mean) before the update, and the loss is the global batch's mean.
    Forward and evaluation run on the first replica's device (every copy holds the same values)."""
    holds_train_set = False   # each replica's slice is handed over from the host

    def __init__(self, replicas: Replicas, model: ModelDef, settings: BuildSettings, execution: TFExecution,
                 on_cpu: bool) -> None:
        self.replicas, self.world = replicas, replicas.world
        super().__init__(model, settings, execution, replicas.devices[0], on_cpu)

    def scope(self) -> contextlib.AbstractContextManager[Any]:
        return self.replicas.scope()   # a MirroredVariable's assign writes every copy

    def _phases(self) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
        return self.wrap(self._distributed_forward), self.wrap(self._distributed_grads), self.wrap(self._distributed_train)

    def _reduce(self, grads: list[tf.Tensor | None]) -> list[tf.Tensor | None]:
        return all_reduce_mean(grads)   # in a replica: the mean over replicas, the same bits on each

    def _distributed_train(self, xs: Any, ys: Any, lr: tf.Tensor) -> tf.Tensor:
        return self.replicas.mean(self.replicas.run(self._train_step, xs, ys, lr))

    def _distributed_grads(self, xs: Any, ys: Any) -> tuple[tf.Tensor, list[tf.Tensor]]:
        loss, grads = self.replicas.run(self._forward_backward, xs, ys)
        return self.replicas.mean(loss), [g for per_replica in grads for g in self.replicas.local(per_replica)]

    def _distributed_forward(self, xs: Any) -> list[tf.Tensor]:
        return list(self.replicas.local(self.replicas.run(self._forward, xs)))

    def batch(self, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        """Per-replica slices, each made on its replica's device."""
        return self.replicas.distribute(images, to_nhwc), self.replicas.distribute(labels, to_labels)

    def nhwc_batch(self, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        return self.replicas.distribute(images, to_tensor), self.replicas.distribute(labels, to_labels)
