"""TFModel: the NativeModel (and TimedModel) of the tensorflow plugin.

Runs NHWC internally (TF's CPU convolutions are NHWC only); numpy NCHW batches are transposed on the
device. Every step is a tf.function (unless --compile none) traced once per batch shape; the learning
rate is a tensor argument, so changing it does not retrace. Master weights are float32 whatever the
precision.

Data parallel (``BuildSettings.parallel`` of mode "devices", ``world_size`` N > 1; see ``parallel``): the variables are
MirroredVariables, the train step runs per replica on its slice of the global batch with gradients
all-reduced (mean) before the update, and the loss returned is the global batch's mean. Batch norm uses
each replica's own batch statistics in training (no cross-replica sync, like torch's DDP without
SyncBatchNorm); its running statistics are ON_WRITE variables with aggregation MEAN, so every replica's
update is averaged and written to all copies (deterministic: the reduction order is fixed). Forward and
evaluation run on the first replica's device (every copy holds the same values).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from convbench_tensorflow.device import configure, tf_device
from convbench_tensorflow.execution import TFExecution
from convbench_tensorflow.net import Net, loss_fn
from convbench_tensorflow.optim import SGD, LossScaler
from convbench_tensorflow.parallel import Replicas, all_reduce_mean, replica_devices
from harness.errors import ConvbenchError
from harness.model.graph import ModelDef
from harness.model.shapes import model_summary
from harness.model.weights import check_momentum, check_weights
from harness.plugin_base import Execution, unknown_phase
from harness.settings import BuildSettings


class HeldBatch(NamedTuple):
    """A batch of the training set the model holds (``hold_train_set``): (1, n) sample indices, or (4, n) with
    each image's crop offsets and flip flag; the step gathers (and crops) the pixels on the device."""
    plan: np.ndarray


def host_tensor(images: np.ndarray) -> tf.Tensor:
    """A float32 CPU tensor of ``images``: one numpy copy into fresh 64-byte-aligned memory, which TF then uses
    in place (DLPack; TF aborts the process on less aligned memory, which is why numpy's own arrays cannot go
    this way). For a 128-image CIFAR batch on the project's 2-core CPU, 0.23 ms against 0.48 ms for
    ``tf.convert_to_tensor`` (400 calls each, medians), which copies through TF's allocator. The capsule holds
    the numpy buffer until TF frees the tensor."""
    nbytes = images.size * 4
    raw = np.empty(nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    out = raw[start:start + nbytes].view(np.float32).reshape(images.shape)
    np.copyto(out, images, casting="same_kind")
    return tf.experimental.dlpack.from_dlpack(out.__dlpack__())


class TFModel:
    hold_crops_on_cpu = False   # hold_train_set declines a padded set on the CPU (numpy's crop is faster there)

    def __init__(self, model: ModelDef, execution: Execution, settings: BuildSettings) -> None:
        self.model = model
        self.device = tf_device(execution.device)  # validation first: these start no TF runtime
        self.on_cpu = execution.device.is_cpu
        self.execution = TFExecution(execution)
        seed = settings.seed
        devices = replica_devices(execution.device, settings.parallel)  # logical CPU devices: before the runtime starts
        if devices is not None and self.execution.compile == "xla":
            raise ConvbenchError("tensorflow data parallel runs with --compile auto or none, not xla")
        configure(settings.threads, seed)  # before the first op: thread pools, GPU memory growth
        self.execution.apply()
        self.replicas = Replicas(devices) if devices is not None else None
        if self.replicas is not None:
            self.device = devices[0]
        self.world = self.replicas.world if self.replicas is not None else 1
        with self._scope(), tf.device(self.device):
            self.net = Net(model, model_summary(model), self.execution.dtype, seed)
            self.optimizer = SGD(self.net.trainable, settings.momentum, settings.weight_decay)
            self.scaler = LossScaler() if self.execution.precision == "fp16" else None
        self._lr_value: float | None = None
        self._lr_tensor: tf.Tensor | None = None
        self._held: tuple[tf.Variable, tf.Variable, int, tuple[int, int]] | None = None
        self._train_held_fn: Callable[[Any, tf.Tensor], tf.Tensor] | None = None   # made by hold_train_set
        wrap = self.execution.wrap
        self._forward_fn, self._eval_fn = wrap(self._forward), wrap(self._evaluate)
        if self.replicas is None:
            self._phase_forward_fn = self._forward_fn
            self._grads_fn, self._train_fn = wrap(self._forward_backward), wrap(self._train_step)
        else:
            self._phase_forward_fn = wrap(self._distributed_forward)
            self._grads_fn, self._train_fn = wrap(self._distributed_grads), wrap(self._distributed_train)

    def _scope(self) -> contextlib.AbstractContextManager[Any]:
        return self.replicas.scope() if self.replicas is not None else contextlib.nullcontext()

    def execution_info(self) -> dict[str, Any]:
        return {"world_size": self.world, **self.execution.info()}

    # -- graph bodies (traced once per input shape) --------------------------------------------------

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        return self.net(x, training=False)[0]

    def _loss_and_grads(self, x: tf.Tensor, y: tf.Tensor, update_stats: bool
                        ) -> tuple[tf.Tensor, list[tf.Tensor | None], tf.Tensor | None]:
        with tf.GradientTape() as tape:
            logits, aux = self.net(x, training=True, update_stats=update_stats)
            loss = loss_fn(logits, aux, y)
            scaled = loss * self.scaler.scale if self.scaler is not None else loss
        grads = tape.gradient(scaled, self.net.trainable)
        if self.replicas is not None:  # in a replica: the mean over replicas, the same bits on each
            grads = all_reduce_mean(grads)
        if self.scaler is None:
            return loss, grads, None
        grads, finite = self.scaler.unscale(grads)
        return loss, grads, finite

    def _forward_backward(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        loss, grads, _ = self._loss_and_grads(x, y, update_stats=False)
        return loss, [g for g in grads if g is not None]  # returned, so no gradient is pruned away

    def _train_step(self, x: tf.Tensor, y: tf.Tensor, lr: tf.Tensor) -> tf.Tensor:
        loss, grads, finite = self._loss_and_grads(x, y, update_stats=True)
        if self.scaler is None:
            self.optimizer.apply(grads, lr)
            return loss

        def step() -> tf.Tensor:
            self.optimizer.apply(grads, lr)
            return tf.constant(True)
        tf.cond(finite, step, lambda: tf.constant(False))  # skip the update on overflow
        self.scaler.update(finite)
        return loss

    @staticmethod
    def _held_images(images: tf.Tensor, plan: tf.Tensor, geometry: tuple[int, int, int]) -> tf.Tensor:
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

    def _held_step(self, images: tf.Variable, labels: tf.Variable, geometry: tuple[int, int, int]
                   ) -> Callable[[Any, tf.Tensor], tf.Tensor]:
        """The train step on samples of the held set, a function of (plan, lr) only: the set's variables are
        captured, so a call binds two arguments, not five (on the project's 2-core CPU a tf.function call costs
        ~0.1 ms per argument bound, and the five-argument step was 0.5 ms slower per call than the window's
        three: 3-4 % of a LeNet-5 step). Variables, not constants: the graph reads what they hold now, so a set
        held anew in them is never met as a stale copy, and needs no new trace."""
        def step(plan: tf.Tensor, lr: tf.Tensor) -> tf.Tensor:
            return self._train_step(self._held_images(images, plan, geometry), tf.gather(labels, plan[0]), lr)
        return self.execution.wrap(step)

    def _distributed_train(self, xs: Any, ys: Any, lr: tf.Tensor) -> tf.Tensor:
        return self.replicas.mean(self.replicas.run(self._train_step, xs, ys, lr))

    def _distributed_grads(self, xs: Any, ys: Any) -> tuple[tf.Tensor, list[tf.Tensor]]:
        loss, grads = self.replicas.run(self._forward_backward, xs, ys)
        return self.replicas.mean(loss), [g for per_replica in grads for g in self.replicas.local(per_replica)]

    def _distributed_forward(self, xs: Any) -> list[tf.Tensor]:
        return list(self.replicas.local(self.replicas.run(self._forward, xs)))

    def _evaluate(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits = self.net(x, training=False)[0]
        ce = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=y.dtype), y), tf.int32))
        return ce, hits

    # -- conversions ---------------------------------------------------------------------------------

    @staticmethod
    def _to_nhwc(images: np.ndarray) -> tf.Tensor:
        return tf.transpose(tf.convert_to_tensor(np.asarray(images, np.float32)), [0, 2, 3, 1])

    @staticmethod
    def _to_labels(labels: np.ndarray) -> tf.Tensor:
        return tf.identity(tf.convert_to_tensor(np.asarray(labels, np.int64)))

    def _images(self, images: np.ndarray) -> tf.Tensor:
        """NCHW numpy -> NHWC float32 tensor on the model's device (transposed there)."""
        with tf.device(self.device):
            return self._to_nhwc(images)

    def _labels(self, labels: np.ndarray) -> tf.Tensor:
        with tf.device(self.device):
            return self._to_labels(labels)

    def _train_batch(self, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        """The batch as train steps take it: tensors on the device, or per-replica slices on each."""
        if self.replicas is None:
            return self._images(images), self._labels(labels)
        return (self.replicas.distribute(images, self._to_nhwc), self.replicas.distribute(labels, self._to_labels))

    # -- NativeModel ---------------------------------------------------------------------------------

    def param_count(self) -> int:
        return sum(int(np.prod(v.shape)) for v in self.net.trainable)

    def get_weights(self) -> dict[str, np.ndarray]:
        return {key: np.array(p.to_portable(p.var.numpy()), dtype=np.float32, order="C", copy=True)
                for key, p in self.net.params.items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        check_weights(self.model, weights)
        with self._scope(), tf.device(self.device):  # a MirroredVariable's assign writes every copy
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
        with self._scope(), tf.device(self.device):
            for key, (p, buf) in self._momentum_buffers().items():
                buf.assign(p.to_tf(np.asarray(momentum[key], np.float32)))

    def forward(self, images: np.ndarray) -> np.ndarray:
        with tf.device(self.device):
            return self._forward_fn(self._images(images)).numpy()

    def train_step(self, images: np.ndarray, labels: np.ndarray, lr: float) -> float:
        """One step on the (global) batch; returns its mean loss."""
        return self.read_losses([self.train_step_async(self._train_batch(images, labels), lr)])[0]

    def train_step_async(self, batch: Any, lr: float) -> tf.Tensor:
        """Queues a step (TF runs ops asynchronously on a GPU); the loss stays a device tensor."""
        if isinstance(batch, HeldBatch):   # gathered inside the step: one function call, no image copy
            assert self._train_held_fn is not None
            with tf.device(self.device):
                return self._train_held_fn(batch.plan, self._lr(lr))
        x, y = batch
        with tf.device(self.device):
            return self._train_fn(x, y, self._lr(lr))

    def hold_train_set(self, images: np.ndarray, labels: np.ndarray, pad: int) -> bool:
        """Keeps the (n, h, w, c) training set on the model's device (zero-padded by ``pad`` when batches will
        be cropped), so each train step gathers its batch there from indices: per step one copy of a few
        hundred integers instead of the images, and one function call. Data parallel declines (each replica's
        slice is handed over from the host, ``prepare_nhwc_batch``), and so does an augmented CPU cell: there
        TF's in-graph crop (a gather of pixel rows of c floats) took longer than the harness's numpy crop plus
        the hand-over (LeNet-5, batch 128, 2 cores, 20 interleaved epochs each: 10.1 against 9.6 ms per step;
        unaugmented, held was the faster, 10.2 against 10.4), and with the step's call cut to two arguments
        they tie (200 interleaved 5-step blocks: 0.875 against 0.868 of speed mode's window), so it stays."""
        if self.replicas is not None or (pad and self.on_cpu and not self.hold_crops_on_cpu):
            return False
        n, h, w, c = images.shape
        pixels = np.asarray(images, np.float32)
        if pad:   # stored as (n * hp * wp, c) rows, so a crop is one gather of pixel rows
            pixels = np.pad(pixels, ((0, 0), (pad, pad), (pad, pad), (0, 0))).reshape(-1, c)
        labels = np.asarray(labels, np.int64)
        with tf.device(self.device):
            if self._held is not None and self._held[2:] == (pad, (h, w)) and \
                    self._held[0].shape == pixels.shape and self._held[1].shape == labels.shape:
                self._held[0].assign(pixels)   # a set of the same shapes: the step and its trace are kept
                self._held[1].assign(labels)
                return True
            held = tf.Variable(pixels, trainable=False), tf.Variable(labels, trainable=False)
        self._held = (*held, pad, (h, w))
        self._train_held_fn = self._held_step(*held, (pad, h, w))
        return True

    def gather_batch(self, index: np.ndarray, crops: Any) -> HeldBatch:
        """The batch of held samples ``index``, cropped and flipped by ``crops`` (a harness Crops) or not."""
        if self._held is None:
            raise ConvbenchError("gather_batch before hold_train_set")
        pad = self._held[2]
        if crops is not None and pad == 0:
            raise ConvbenchError("crops for a training set held without padding")
        if crops is None:   # held padded: the centre crop is the image itself
            rows = [index] if pad == 0 else [index, np.full_like(index, pad), np.full_like(index, pad), np.zeros_like(index)]
        else:
            rows = [index, crops.dy, crops.dx, crops.flip]
        return HeldBatch(np.stack(rows).astype(np.int64))   # the step's call converts it (no eager op here)

    def read_losses(self, losses: list[tf.Tensor]) -> list[float]:
        return [float(v) for v in tf.stack(losses).numpy()]

    def _lr(self, lr: float) -> tf.Tensor:
        """The learning rate as a float32 tensor, made once per value (a new value does not retrace)."""
        if self._lr_value != lr:
            with tf.device(self.device):
                self._lr_tensor, self._lr_value = tf.constant(lr, tf.float32), lr
        return self._lr_tensor

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
        with tf.device(self.device):
            ce, hits = self._eval_fn(self._images(images), self._labels(labels))
        return float(ce.numpy()), int(hits.numpy())

    # -- TimedModel ----------------------------------------------------------------------------------

    def prepare_batch(self, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        return self._train_batch(images, labels)

    def prepare_nhwc_batch(self, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        """The batch from channels-last numpy images: no transpose (0.4 ms of a 128-image CIFAR batch on the CPU).
        On the CPU the images reach TF through DLPack (``host_tensor``), not ``tf.convert_to_tensor``."""
        def convert(a: np.ndarray) -> tf.Tensor:
            return tf.convert_to_tensor(np.asarray(a, np.float32))
        if self.replicas is None:
            with tf.device(self.device):
                return (host_tensor(images) if self.on_cpu else convert(images)), self._to_labels(labels)
        return self.replicas.distribute(images, convert), self.replicas.distribute(labels, self._to_labels)

    def run_phase(self, phase: str, batch: object, lr: float) -> None:
        x, y = batch  # type: ignore[misc]
        with tf.device(self.device):
            if phase == "forward":
                self._phase_forward_fn(x)
            elif phase == "forward_backward":
                self._grads_fn(x, y)
            elif phase == "train_step":
                self._train_fn(x, y, self._lr(lr))
            else:
                raise unknown_phase(phase)

    def tracing_counts(self) -> dict[str, int]:
        """How often each step function has been traced (one per distinct batch shape; 0 when eager)."""
        fns = {"forward": self._phase_forward_fn, "forward_backward": self._grads_fn, "train_step": self._train_fn,
               "evaluate": self._eval_fn}
        return {name: getattr(fn, "experimental_get_tracing_count", lambda: 0)() for name, fn in fns.items()}
