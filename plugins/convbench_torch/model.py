"""TorchModel: the NativeModel (and TimedModel) of the torch plugin."""
from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import numpy as np
import torch

from convbench_torch.device import torch_device
from convbench_torch.layers import Net, loss_fn
from harness.model.graph import ModelDef
from harness.model.shapes import model_summary
from harness.model.weights import check_momentum, check_weights
from harness.plugin_base import Execution, unknown_phase
from harness.settings import BuildSettings

PREFIX = "body."
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def set_tf32(on: bool) -> None:
    """TF32 for fp32 matmuls and cuDNN convolutions alike (torch's defaults differ: convs on, matmuls off).
    torch >= 2.9 has per-backend ``fp32_precision`` and refuses a mix with the legacy ``allow_tf32`` flags."""
    mode = "tf32" if on else "ieee"
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
    else:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on


def tf32_allowed() -> bool:
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        return torch.backends.cuda.matmul.fp32_precision == "tf32" and torch.backends.cudnn.conv.fp32_precision == "tf32"
    return bool(torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32)


class Batch(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    ready: Any  # torch.cuda.Event of the side-stream copy, or None on the CPU


class TorchModel:
    def __init__(self, model: ModelDef, execution: Execution, settings: BuildSettings) -> None:
        self.model = model
        parallel = settings.parallel if settings.parallel and settings.parallel.mode == "processes" else None
        self.world = parallel.world_size if parallel else 1
        self.device = torch_device(execution.device)   # a data-parallel rank gets its own device here
        set_tf32(execution.tf32)
        torch.backends.cudnn.benchmark = execution.autotune
        if settings.threads:
            torch.set_num_threads(settings.threads)
        torch.manual_seed(settings.seed)
        self.precision, self.compiled = execution.precision, execution.compile == "torch.compile"
        self.net = Net(model, model_summary(model)).to(self.device)
        self.channels_last = execution.layout == "nhwc"
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=0.0, momentum=settings.momentum,
                                         weight_decay=settings.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.copy_stream: Any = None   # a side stream for host-to-device batch copies (GPU), made on first use
        self.run: torch.nn.Module = self.net
        if parallel is not None and self.world > 1:
            self.run = self._distributed(parallel.rank)
        if self.compiled:  # after DDP: torch.compile(DDP(net)) is the documented order (DDP's optimizer hooks)
            self.run = torch.compile(self.run)

    def _distributed(self, rank: int) -> torch.nn.Module:
        """DistributedDataParallel over a process group set up from torchrun's variables (the harness
        sets them): gloo on CPU, NCCL on GPUs. Gradients are averaged; batch-norm statistics are each
        process's own, with rank 0's buffers broadcast at every forward (DDP's default)."""
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel
        cuda = self.device.type == "cuda"
        if cuda:  # NCCL binds the communicator to the current device: set it to this rank's before init
            torch.cuda.set_device(self.device)
        dist.init_process_group("nccl" if cuda else "gloo", init_method="env://", rank=rank, world_size=self.world)
        return DistributedDataParallel(self.net, device_ids=[self.device.index] if cuda else None)

    def execution_info(self) -> dict[str, Any]:
        """What ran, read back from torch: TF32 only where the GPU has it (compute capability 8.0+) and both
        convolutions and matmuls may use it; autotuning is cudnn.benchmark (GPUs only)."""
        cuda = self.device.type == "cuda"
        return {"world_size": self.world, "precision": self.precision,
                "compile": "torch.compile" if self.compiled else "eager",
                "layout": "nhwc" if self.channels_last else "nchw",
                "tf32": bool(cuda and tf32_allowed() and torch.cuda.get_device_capability(self.device)[0] >= 8),
                "autotune": bool(torch.backends.cudnn.benchmark) if cuda else None,
                "deterministic": torch.are_deterministic_algorithms_enabled()}

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.precision])

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
            import torch.distributed as dist
            dist.all_reduce(stacked)
            stacked = stacked / self.world
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
