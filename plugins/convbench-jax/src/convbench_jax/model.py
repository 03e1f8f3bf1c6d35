"""JaxModel: the NativeModel (and TimedModel) of the jax plugin.

Data parallel (``BuildSettings.parallel`` of mode "devices", ``world_size`` N > 1; see ``parallel``): the state is
replicated over a mesh of N devices, batches are sharded along it and the train step runs per replica under
shard_map (each replica's own batch-norm statistics; loss, gradients and running statistics averaged).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from convbench_jax.device import jax_device, track
from convbench_jax.execution import JaxExecution
from convbench_jax.layers import Arrays, Layout, NativeOrder
from convbench_jax.optim import initial_scale
from convbench_jax.parallel import AXIS, Replicas, replica_devices
from convbench_jax.steps import make_steps
from harness.errors import ConvbenchError
from harness.model import graph as g
from harness.model.shapes import model_summary
from harness.model.weights import check_momentum, check_weights
from harness.plugin_base import Execution, unknown_phase
from harness.settings import BuildSettings

STATS = ("running_mean", "running_var")


def placeholders(order: NativeOrder, shapes: dict[str, tuple[int, ...]], device: Any) -> tuple[Arrays, Arrays, Arrays]:
    """Zero (parameters, batch-norm statistics, momentum) in the layout's order on ``device``, until set_weights."""
    zeros = {k: jnp.zeros(order.shape(k, s), jnp.float32, device=device) for k, s in shapes.items()}
    params = {k: v for k, v in zeros.items() if k.rsplit(".", 1)[1] not in STATS}
    stats = {k: v for k, v in zeros.items() if k.rsplit(".", 1)[1] in STATS}
    return params, stats, jax.tree.map(jnp.zeros_like, params)


class JaxModel:
    def __init__(self, model: g.ModelDef, execution: Execution, settings: BuildSettings) -> None:
        self.model = model
        devices = replica_devices(execution.device, settings.parallel)  # CPU replicas: before the backend starts
        self.replicas = Replicas(devices) if devices else None
        self.device = devices[0] if devices else jax_device(execution.device)
        # where the state lives: the device, or one copy on every replica
        self.placement = self.replicas.replicated if self.replicas else self.device
        self.execution = JaxExecution(execution)
        self.execution.apply()
        self.layout = Layout(self.execution.layout)
        summary = model_summary(model)
        self.order = NativeOrder(summary, self.layout)   # the layout's order of conv kernels and dense weights
        self.params, self.stats, self.velocity = placeholders(self.order, summary.param_shapes, self.placement)
        self.key = jax.device_put(jax.random.key(settings.seed), self.placement)
        fp16 = self.execution.precision == "fp16"
        self.scale = jax.device_put(initial_scale(), self.placement) if fp16 else None
        steps = make_steps(model, self.layout, self.execution.dtype, settings.momentum,
                           settings.weight_decay, loss_scaling=fp16, axis=AXIS if self.replicas else None)
        if self.replicas:
            steps = self.replicas.steps(steps)
        wrap = self.execution.wrap
        self._logits, self._evaluate, self._grads = wrap(steps.logits), wrap(steps.evaluate), wrap(steps.grads)
        self._train = wrap(steps.train, donate=(0, 1, 2))  # params, stats, velocity are replaced every step
        self._last: Any = None  # the latest step's outputs, kept so nothing looks dead

    def execution_info(self) -> dict[str, Any]:
        return {"world_size": self.replicas.world if self.replicas else 1, **self.execution.info(self.device)}

    # weights ------------------------------------------------------------------------------------------
    def _put(self, arrays: dict[str, np.ndarray]) -> Arrays:
        return {k: jax.device_put(np.ascontiguousarray(v, np.float32), self.placement) for k, v in arrays.items()}

    def param_count(self) -> int:
        return sum(int(v.size) for v in self.params.values())

    def get_weights(self) -> dict[str, np.ndarray]:
        arrays = {**self.params, **self.stats}
        # np.array copies: the caller gets writeable arrays that no later (donating) step can touch
        return {k: np.array(self.order.portable(k, np.asarray(v)), np.float32, order="C") for k, v in arrays.items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        check_weights(self.model, weights)
        native = {k: self.order.native(k, np.asarray(v, np.float32)) for k, v in weights.items()}
        self.params = self._put({k: native[k] for k in self.params})
        self.stats = self._put({k: native[k] for k in self.stats})

    def get_momentum(self) -> dict[str, np.ndarray]:
        return {k: np.array(self.order.portable(k, np.asarray(v)), np.float32, order="C") for k, v in self.velocity.items()}

    def set_momentum(self, momentum: dict[str, np.ndarray]) -> None:
        check_momentum(self.model, momentum)
        self.velocity = self._put({k: self.order.native(k, np.asarray(momentum[k], np.float32)) for k in self.params})

    # steps --------------------------------------------------------------------------------------------
    def prepare_batch(self, images: np.ndarray, labels: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """NCHW float32 images and int32 labels on the device, or split over the replicas (the layout change
        happens inside the step)."""
        x, y = np.ascontiguousarray(images, np.float32), np.asarray(labels, np.int32)
        if self.replicas:
            return self.replicas.shard(x), self.replicas.shard(y)
        return jax.device_put(x, self.device), jax.device_put(y, self.device)

    def _eval_batch(self, images: np.ndarray, labels: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """A forward or evaluation batch: any size (split over the replicas when it splits evenly)."""
        if not self.replicas:
            return self.prepare_batch(images, labels)
        spread = self.replicas.spread
        return spread(np.ascontiguousarray(images, np.float32)), spread(np.asarray(labels, np.int32))

    def forward(self, images: np.ndarray) -> np.ndarray:
        x, _ = self._eval_batch(images, np.zeros(len(images), np.int32))
        return np.asarray(self._logits(self.params, self.stats, x), np.float32)

    def _step(self, batch: tuple[jax.Array, jax.Array], lr: float) -> jax.Array:
        x, y = batch
        out = self._train(self.params, self.stats, self.velocity, self.key, self.scale, x, y, np.float32(lr))
        self.params, self.stats, self.velocity, self.key, self.scale, loss = out
        self._last = loss
        return loss

    def train_step(self, images: np.ndarray, labels: np.ndarray, lr: float) -> float:
        return float(self._step(self.prepare_batch(images, labels), lr))

    def train_step_async(self, batch: tuple[jax.Array, jax.Array], lr: float) -> jax.Array:
        """JAX dispatches asynchronously: the step is queued and its loss stays on the device."""
        return self._step(batch, lr)

    def read_losses(self, losses: list[jax.Array]) -> list[float]:
        return [float(v) for v in jax.device_get(losses)]

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
        x, y = self._eval_batch(images, labels)
        loss, correct = self._evaluate(self.params, self.stats, x, y)
        return float(loss), int(correct)

    # speed mode: dispatch only; convbench_synchronize waits for the tracked outputs -----------------
    def profile_layers(self, phase: str, batch: tuple[jax.Array, jax.Array], lr: float, steps: int) -> dict[str, Any]:
        """``convbench explain --method profiler``: each leaf layer's share of ``phase`` from JAX's profiler trace,
        mapped to layers by the named scopes XLA keeps in the compiled step's metadata."""
        from convbench_jax.device import synchronize
        from convbench_jax.profile import profile_layers
        if self.execution.compile == "eager" or self.replicas:
            raise ConvbenchError("jax's profiler mapping needs one jitted step (--compile auto, one device)")
        x, y = batch
        compiled = {"forward": lambda: self._logits.lower(self.params, self.stats, x),
                    "forward_backward": lambda: self._grads.lower(self.params, self.stats, self.key, self.scale, x, y),
                    "train_step": lambda: self._train.lower(self.params, self.stats, self.velocity, self.key, self.scale,
                                                            x, y, np.float32(lr))}[phase]().compile().as_text()
        paths = [layer.path for layer in model_summary(self.model).layers]
        return profile_layers(compiled, paths, lambda: self.run_phase(phase, batch, lr), synchronize, steps)

    def run_phase(self, phase: str, batch: tuple[jax.Array, jax.Array], lr: float) -> None:
        if phase == "forward":
            self._last = self._logits(self.params, self.stats, batch[0])
        elif phase == "forward_backward":  # gradients are outputs of the jitted function, so XLA computes them
            loss, grads, _, self.key = self._grads(self.params, self.stats, self.key, self.scale, *batch)
            self._last = (loss, grads)
        elif phase == "train_step":
            self._step(batch, lr)
        else:
            raise unknown_phase(phase)
        # train steps chain their parameters, forward_backward its key; forwards are independent (in order on a GPU)
        track(jax.tree.leaves(self._last)[0], phase, ordered=phase != "forward" or self.device.platform != "cpu")
