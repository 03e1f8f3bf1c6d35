"""Builds a torch nn.Module tree that mirrors the framework-neutral graph, name for name."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.model import graph as g
from harness.model.shapes import ModelSummary, pool_output_size


class AnyRankBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over dim 1 of a 2-D or 4-D input (one class serves conv and fc layers)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 4):
            raise ValueError(f"expected 2-D or 4-D input, got {input.dim()}-D")


class GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


# layers whose output is a fresh tensor that nothing else reads: a ReLU right after one may work in place
FRESH_OUTPUT = (g.Conv, g.Linear, g.BatchNorm, g.MaxPool, g.AvgPool, g.GlobalAvgPool, g.LRN, g.Dropout, g.Residual,
                g.Concat)


class Container(nn.Module):
    """A Seq, Concat, Residual or Aux node; ``forward(x, aux)`` appends auxiliary logits to ``aux``.

    As torchvision's models do, a ReLU works in place when the layer before it in the same Seq made a fresh
    tensor (never on a Seq's input, which a sibling branch, shortcut or auxiliary head may also read, nor on
    a Flatten view): fewer fresh activation buffers, the same numbers."""

    def __init__(self, node: g.Node, path: str, summary: ModelSummary) -> None:
        super().__init__()
        self.kind = type(node).__name__
        self.aux_weight = node.weight if isinstance(node, g.Aux) else 0.0
        previous: g.Node | None = None
        for child in g.children(node):
            inplace = isinstance(node, g.Seq) and isinstance(previous, FRESH_OUTPUT)
            self.add_module(child.name, build(child, f"{path}.{child.name}" if path else child.name, summary, inplace))
            previous = child
        # a plain tuple, resolved once: the per-call cost of children() and isinstance is the container's Python
        self.steps = tuple((m, isinstance(m, Container)) for m in self._modules.values())

    def forward(self, x: torch.Tensor, aux: list[tuple[float, torch.Tensor]]) -> torch.Tensor:
        if self.kind == "Seq":
            for module, nested in self.steps:
                x = module(x, aux) if nested else module(x)
            return x
        if self.kind == "Aux" and not self.training:  # heads are skipped, not computed and dropped, at evaluation
            return x
        parts = [m(x, aux) for m, _ in self.steps]
        if self.kind == "Concat":
            return torch.cat(parts, dim=1)
        if self.kind == "Residual":
            return parts[0] + parts[1]
        aux.append((self.aux_weight, parts[0]))  # Aux, in training
        return x


def build(node: g.Node, path: str, summary: ModelSummary, inplace: bool = False) -> nn.Module:
    if isinstance(node, (g.Seq, g.Concat, g.Residual, g.Aux)):
        return Container(node, path, summary)
    in_shape = _input_shapes(summary)[path]
    if isinstance(node, g.Conv):
        return nn.Conv2d(in_shape[0], node.out_channels, node.kernel, node.stride, node.padding, bias=node.bias)
    if isinstance(node, g.Linear):
        return nn.Linear(in_shape[0], node.out_features, bias=node.bias)
    if isinstance(node, g.BatchNorm):
        return AnyRankBatchNorm(in_shape[0], eps=node.eps, momentum=node.momentum)
    if isinstance(node, g.ReLU):
        return nn.ReLU(inplace=inplace)
    if isinstance(node, g.MaxPool):  # ceil mode only where it changes the output size (same windows otherwise)
        ceil = node.ceil_mode and any(pool_output_size(s, node.kernel, node.stride, node.padding, True)
                                      != pool_output_size(s, node.kernel, node.stride, node.padding) for s in in_shape[1:])
        return nn.MaxPool2d(node.kernel, node.stride, node.padding, ceil_mode=ceil)
    if isinstance(node, g.AvgPool):
        return nn.AvgPool2d(node.kernel, node.stride)
    if isinstance(node, g.GlobalAvgPool):
        return GlobalAvgPool()
    if isinstance(node, g.LRN):
        return nn.LocalResponseNorm(node.size, node.alpha, node.beta, node.k)
    if isinstance(node, g.Dropout):
        return nn.Dropout(node.rate)
    if isinstance(node, g.Flatten):
        return nn.Flatten()
    raise TypeError(f"torch plugin cannot build {type(node).__name__}")


def _input_shapes(summary: ModelSummary) -> dict[str, tuple[int, ...]]:
    cached = getattr(summary, "_inputs", None)
    if cached is None:
        cached = {layer.path: layer.input_shape for layer in summary.layers}
        summary._inputs = cached  # type: ignore[attr-defined]
    return cached


class Net(nn.Module):
    """The whole network: ``forward(x)`` returns (logits, [(weight, aux_logits), ...])."""

    def __init__(self, model: g.ModelDef, summary: ModelSummary) -> None:
        super().__init__()
        self.body = Container(model.body, "", summary)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[float, torch.Tensor]]]:
        aux: list[tuple[float, torch.Tensor]] = []
        return self.body(x, aux), aux


def loss_fn(logits: torch.Tensor, aux: list[tuple[float, torch.Tensor]], labels: torch.Tensor) -> torch.Tensor:
    loss = F.cross_entropy(logits, labels)
    for weight, aux_logits in aux:
        loss = loss + weight * F.cross_entropy(aux_logits, labels)
    return loss
