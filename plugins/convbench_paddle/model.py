"""PaddleModel: the NativeModel (and TimedModel) of the paddle plugin, in dygraph mode."""
from __future__ import annotations

from typing import Any

import numpy as np
import paddle

from convbench_paddle import parallel
from convbench_paddle.execution import start
from convbench_paddle.layers import Net, PortableState, cross_entropy, loss_fn
from convbench_paddle.sgd import Sgd
from harness.model.graph import ModelDef
from harness.model.shapes import model_summary
from harness.model.weights import check_momentum, check_weights
from harness.plugin_base import Execution, unknown_phase
from harness.settings import BuildSettings

PREFIX = "body."
Batch = tuple[paddle.Tensor, paddle.Tensor]


class PaddleModel:
    def __init__(self, model: ModelDef, execution: Execution, settings: BuildSettings) -> None:
        self.model = model
        dp = settings.parallel if settings.parallel and settings.parallel.mode == "processes" else None
        self.world = dp.world_size if dp else 1
        self.rank = dp.rank if dp else 0
        self.place, self.execution = start(execution, settings)
        self.net = Net(model, model_summary(model))
        self.run = self.execution.wrap(self.net)
        if self.world > 1:  # one process per device; gradients averaged during backward
            parallel.init_process_group(execution.device, self.rank, self.world)
            self.run = parallel.wrap(self.run)
        self.params = [p for p in self.net.parameters() if not p.stop_gradient]
        self.sgd = Sgd(self.params, settings, paddle.amp.GradScaler() if self.execution.amp_dtype == "float16" else None)
        self.optimizer = self.sgd.optimizer
        self.weights = PortableState(self.net, PREFIX)
        self.state, self.transposed = self.weights.tensors, self.weights.transposed

    def execution_info(self) -> dict[str, Any]:
        return {"world_size": self.world, **self.execution.info(self.place)}

    # -- weights -----------------------------------------------------------------------------------
    def param_count(self) -> int:
        return sum(int(p.size) for p in self.params)  # running statistics are buffers, not parameters

    def get_weights(self) -> dict[str, np.ndarray]:
        return self.weights.numpy()

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        check_weights(self.model, weights)
        self.weights.load(weights)

    def _trainable(self) -> dict[str, paddle.Tensor]:
        return {key: t for key, t in self.state.items() if not t.stop_gradient}

    def get_momentum(self) -> dict[str, np.ndarray]:
        """The Momentum optimiser's velocity accumulators (created at the first step; zeros before)."""
        velocity = self.optimizer._accumulators.get("velocity", {})
        out = {}
        for key, param in self._trainable().items():
            buf = velocity.get(param.name)
            value = np.zeros(param.shape, np.float32) if buf is None else buf.numpy()
            out[key] = value.T if key in self.transposed else value
        return out

    def set_momentum(self, momentum: dict[str, np.ndarray]) -> None:
        """Through set_state_dict: it writes existing accumulators, or holds the values for their creation."""
        check_momentum(self.model, momentum)
        state = {}
        for key, param in self._trainable().items():
            value = np.asarray(momentum[key], np.float32)
            value = value.T if key in self.transposed else value
            state[f"{param.name}_velocity_0"] = paddle.to_tensor(np.ascontiguousarray(value))
        self.optimizer.set_state_dict(state)

    # -- steps -------------------------------------------------------------------------------------
    def _logits(self, x: paddle.Tensor) -> paddle.Tensor:
        self.net.eval()
        with paddle.no_grad(), self.execution.autocast():
            logits, _ = self.run(x)
        return self.execution.fp32(logits)

    def _step(self, x: paddle.Tensor, y: paddle.Tensor, lr: float, update: bool) -> paddle.Tensor:
        """Training-mode loss and gradients (cleared first); with ``update``, the SGD step too."""
        self.net.train()
        self.sgd.clear()
        fp32 = self.execution.fp32
        with self.execution.autocast():
            logits, aux = self.run(x)
            loss = loss_fn(fp32(logits), [(w, fp32(a)) for w, a in aux], y)
        self.sgd.backward(loss)
        if update:
            self.sgd.step(lr)
        return loss

    # -- NativeModel -------------------------------------------------------------------------------
    def forward(self, images: np.ndarray) -> np.ndarray:
        return self._logits(_tensor(images)).numpy()

    def train_step(self, images: np.ndarray, labels: np.ndarray, lr: float) -> float:
        return self.read_losses([self.train_step_async(self.prepare_batch(images, labels), lr)])[0]

    def train_step_async(self, batch: Batch, lr: float) -> paddle.Tensor:
        return self._step(*batch, lr, update=True).detach()

    def read_losses(self, losses: list[paddle.Tensor]) -> list[float]:
        """One device-to-host copy for all of them; data parallel: the mean over the processes (the global
        batch's loss, as single-device training would report it)."""
        stacked = paddle.stack(losses)
        if self.world > 1:
            return [float(v) for v in parallel.mean_over_processes(stacked, self.world)]
        return [float(v) for v in stacked.numpy()]

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
        """Data parallel: rank 0's figures on every rank. Paddle keeps batch-norm statistics per rank, so each
        rank's own accuracy differs, and with --target a rank stopping alone would leave the others waiting in
        their next all-reduce forever: every rank must take the same stop decision, rank 0's (the one reported)."""
        x, y = self.prepare_batch(images, labels)
        logits = self._logits(x)
        with paddle.no_grad():
            loss = cross_entropy(logits, y, reduction="sum")
            correct = (logits.argmax(axis=1) == y).astype("int64").sum()
        if self.world > 1:
            loss_sum, hits = parallel.from_rank_0([float(loss.item()), float(correct.item())])
            return loss_sum, int(hits)
        return float(loss.item()), int(correct.item())

    # -- TimedModel (speed mode): nothing here waits for the device -----------------------------------
    def prepare_batch(self, images: np.ndarray, labels: np.ndarray) -> Batch:
        return _tensor(images), _tensor(labels.astype(np.int64))

    def run_phase(self, phase: str, batch: Batch, lr: float) -> None:
        x, y = batch
        if phase == "forward":
            self._logits(x)
        elif phase in ("forward_backward", "train_step"):
            self._step(x, y, lr, update=phase == "train_step")
        else:
            raise unknown_phase(phase)


def _tensor(array: np.ndarray) -> paddle.Tensor:
    return paddle.to_tensor(np.ascontiguousarray(array))  # on the current device (set_device above)
