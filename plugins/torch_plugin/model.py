"""TorchModel: the NativeModel of the torch plugin."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.graph import ModelDef
from harness.shapes import summarize
from harness.weights import check_weights
from plugins.torch_plugin.device import torch_device
from plugins.torch_plugin.layers import Net, loss_fn

PREFIX = "body."


class TorchModel:
    def __init__(self, model: ModelDef, device: str, settings: dict[str, Any]) -> None:
        self.model = model
        self.device = torch_device(device)
        if "threads" in settings:
            torch.set_num_threads(int(settings["threads"]))
        torch.manual_seed(int(settings.get("seed", 0)))
        self.net = Net(model, summarize(model)).to(self.device)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=0.0, momentum=settings.get("momentum", 0.9),
                                         weight_decay=settings.get("weight_decay", 0.0))

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

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device, non_blocking=True)

    def forward(self, images: np.ndarray) -> np.ndarray:
        self.net.eval()
        with torch.no_grad():
            logits, _ = self.net(self._tensor(images))
        return logits.float().cpu().numpy()

    def train_step(self, images: np.ndarray, labels: np.ndarray, lr: float) -> float:
        self.net.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = self._tensor(images), self._tensor(labels.astype(np.int64))
        self.optimizer.zero_grad(set_to_none=True)
        logits, aux = self.net(x)
        loss = loss_fn(logits, aux, y)
        loss.backward()
        self.optimizer.step()
        return float(loss.item())

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
        self.net.eval()
        with torch.no_grad():
            y = self._tensor(labels.astype(np.int64))
            logits, _ = self.net(self._tensor(images))
            loss = torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum")
            correct = (logits.argmax(dim=1) == y).sum()
        return float(loss.item()), int(correct.item())
