"""TorchModel: the NativeModel (and TimedModel) of the torch plugin."""
from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import numpy as np
import torch

from convbench_torch import parallel
from convbench_torch.device import torch_device
from convbench_torch.execution import TorchExecution
from convbench_torch.layers import Net, loss_fn
from harness.model.graph import ModelDef
from harness.model.shapes import model_summary
from harness.model.weights import check_momentum, check_weights
from harness.plugin_base import Execution, unknown_phase
from harness.settings import BuildSettings

PREFIX = "body."


class Batch(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    ready: Any  # torch.cuda.Event of the side-stream copy, or None on the CPU


class TorchModel:
    def __init__(self, model: ModelDef, execution: Execution, settings: BuildSettings) -> None:
        self.model = model
        dp = settings.parallel if settings.parallel and settings.parallel.mode == "processes" else None
        self.world = dp.world_size if dp else 1
        self.device = torch_device(execution.device)   # a data-parallel rank gets its own device here
        self.execution = TorchExecution(execution)
        self.execution.apply()
        if settings.threads:
            torch.set_num_threads(settings.threads)
        torch.manual_seed(settings.seed)
        self.net = Net(model, model_summary(model)).to(self.device)
        self.channels_last = self.execution.channels_last
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        # fp16: the fused SGD takes GradScaler's found_inf on the device and skips an overflowing update there
        # (torch/amp/grad_scaler.py: step() hands it to an optimizer with _step_supports_amp_scaling); any other
        # SGD makes GradScaler.step read found_inf to the host every step (_maybe_opt_step's .item()), so a
        # pipelined fp16 window would drain the queue every step, as no other framework's does
        fp16 = self.execution.precision == "fp16"
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=0.0, momentum=settings.momentum,
                                         weight_decay=settings.weight_decay, fused=True if fp16 else None)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.copy_stream: Any = None   # a side stream for host-to-device batch copies (GPU), made on first use
        self.run: torch.nn.Module = self.net
        if dp is not None and self.world > 1:
            self.run = parallel.distributed(self.net, self.device, dp.rank, self.world)
        # after DDP: torch.compile(DDP(net)) is the documented order (DDP's optimizer hooks)
        self.run = self.execution.wrap(self.run)

    def execution_info(self) -> dict[str, Any]:
        return {"world_size": self.world, **self.execution.info(self.device)}

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return self.execution.autocast(self.device.type)

    def param_count(self) -> int:
        return sum(p.numel() for p in self.net.parameters() if p.requires_grad)

    def get_weights(self) -> dict[str, np.ndarray]:
        return {k[len(PREFIX):]: v.detach().cpu().numpy().copy() for k, v in self.net.state_dict().items()
                if not k.endswith("num_batches_tracked")}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        check_weights(self.model, weights)
        state = self.net.state_dict()
        with torch.no_grad():
            for key, value in weights.items():
                state[PREFIX + key].copy_(torch.from_numpy(np.ascontiguousarray(value)))

    def get_momentum(self) -> dict[str, np.ndarray]:
        """torch.optim.SGD's momentum_buffer per parameter; zeros until the first step creates it."""
        out = {}
        for name, p in self.net.named_parameters():
            buf = self.optimizer.state.get(p, {}).get("momentum_buffer")
            out[name[len(PREFIX):]] = np.zeros(p.shape, np.float32) if buf is None else buf.detach().cpu().numpy().copy()
        return out

    def set_momentum(self, momentum: dict[str, np.ndarray]) -> None:
        check_momentum(self.model, momentum)
        for name, p in self.net.named_parameters():
            value = torch.from_numpy(np.ascontiguousarray(momentum[name[len(PREFIX):]], np.float32))
            self.optimizer.state[p]["momentum_buffer"] = value.to(p.device).clone(memory_format=torch.preserve_format)

    def _images(self, array: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(array)).to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _labels(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array.astype(np.int64)).to(self.device, non_blocking=True)

    def forward(self, images: np.ndarray) -> np.ndarray:
        self.net.eval()
        with torch.no_grad(), self._autocast():
            logits, _ = self.run(self._images(images))
        return logits.float().cpu().numpy()

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            logits, aux = self.run(x)
            return loss_fn(logits.float(), [(w, a.float()) for w, a in aux], y)

    def _step(self, x: torch.Tensor, y: torch.Tensor, lr: float, update: bool) -> torch.Tensor:
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(x, y)
        self.scaler.scale(loss).backward()
        if update:
            self._set_lr(lr)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return loss

    def train_step(self, images: np.ndarray, labels: np.ndarray, lr: float) -> float:
        return self.read_losses([self.train_step_async(self.prepare_batch(images, labels), lr)])[0]

    def train_step_async(self, batch: Batch, lr: float) -> torch.Tensor:
        return self._step(*self._ready(batch), lr, True).detach()

    def read_losses(self, losses: list[torch.Tensor]) -> list[float]:
        """One device-to-host copy for all of them; data parallel: the global batch's loss, as one process
        training alone would report it."""
        stacked = torch.stack(losses)
        if self.world > 1:
            stacked = parallel.mean_over_processes(stacked, self.world)
        return [float(v) for v in stacked.tolist()]

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
        self.net.eval()
        with torch.no_grad():
            y = self._labels(labels)
            with self._autocast():
                logits, _ = self.run(self._images(images))
            loss = torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum")
            correct = (logits.argmax(dim=1) == y).sum()
        return float(loss.item()), int(correct.item())

    # pipelined training and speed mode ------------------------------------------------------------
    def prepare_batch(self, images: np.ndarray, labels: np.ndarray) -> Batch:
        """On the CPU the numpy arrays themselves (no copy). On a GPU: copied through pinned memory on a side
        stream, so the copy of the next batch overlaps the current step; the step waits on the copy's event."""
        if self.device.type != "cuda":
            return Batch(self._images(images), self._labels(labels), None)
        if self.copy_stream is None:
            self.copy_stream = torch.cuda.Stream(self.device)
        with torch.cuda.stream(self.copy_stream):
            x = torch.from_numpy(np.ascontiguousarray(images)).pin_memory().to(self.device, non_blocking=True)
            y = torch.from_numpy(labels.astype(np.int64)).pin_memory().to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            ready = torch.cuda.Event()
            ready.record(self.copy_stream)
        return Batch(x, y, ready)

    def _ready(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's tensors, once the compute stream has waited for their copy (and the caching allocator
        knows the compute stream uses memory the side stream allocated)."""
        if batch.ready is not None:
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(batch.ready)
            batch.x.record_stream(stream)
            batch.y.record_stream(stream)
        return batch.x, batch.y

    def profile_layers(self, phase: str, batch: Batch, lr: float, steps: int) -> dict[str, Any]:
        """``convbench explain --method profiler``: each leaf layer's share of ``phase`` from torch.profiler."""
        from convbench_torch.profile import profile_layers
        gpu = self.device.type == "cuda"

        def sync() -> None:
            if gpu:
                torch.cuda.synchronize(self.device)
        return profile_layers(self.net, PREFIX, lambda: self.run_phase(phase, batch, lr), sync, steps, gpu)

    def run_phase(self, phase: str, batch: Batch, lr: float) -> None:
        x, y = self._ready(batch)
        if phase == "forward":
            self.net.eval()
            with torch.no_grad(), self._autocast():
                self.run(x)
        elif phase in ("forward_backward", "train_step"):
            self._step(x, y, lr, update=phase == "train_step")
        else:
            raise unknown_phase(phase)
