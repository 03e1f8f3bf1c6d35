"""Framework-neutral layer graph: the one definition every framework plugin realises.

A network is a tree of nodes. Leaves are layers; containers are `Seq` (children in order),
`Concat` (branches on the same input, joined on the channel axis), `Residual` (body plus
shortcut, added) and `Aux` (an auxiliary classifier head that reads the current tensor and
leaves it unchanged). Every node has a name; a parameter's key in a portable weight file is the
dotted path of its layer plus ``weight``, ``bias``, ``running_mean`` or ``running_var``.

Tensors are described in NCHW order (``(C, H, W)`` per image, or ``(F,)`` after flattening).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Union


@dataclass(frozen=True)
class Conv:
    name: str
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    bias: bool = True


@dataclass(frozen=True)
class BatchNorm:
    """Batch norm over channels (4-D input) or features (2-D input).

    ``momentum`` follows the PyTorch convention: running = (1 - momentum) * running + momentum * batch,
    with the unbiased batch variance going into the running variance.
    """
    name: str
    eps: float = 1e-5
    momentum: float = 0.1


@dataclass(frozen=True)
class ReLU:
    name: str


@dataclass(frozen=True)
class MaxPool:
    """Max pooling; ``ceil_mode`` rounds the output size up (the last window may overhang)."""
    name: str
    kernel: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False


@dataclass(frozen=True)
class AvgPool:
    """Average pooling without padding, floor mode: every window lies inside the input."""
    name: str
    kernel: int
    stride: int


@dataclass(frozen=True)
class GlobalAvgPool:
    """Mean over H and W, giving ``(C,)``."""
    name: str


@dataclass(frozen=True)
class LRN:
    """Cross-channel local response normalisation.

    y = x / (k + alpha / size * sum over the ``size`` channels centred on c of x^2) ^ beta,
    the window zero-padded at the channel edges (torch.nn.LocalResponseNorm's formula).
    """
    name: str
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


@dataclass(frozen=True)
class Dropout:
    """Inverted dropout: active in training only, identity at evaluation."""
    name: str
    rate: float


@dataclass(frozen=True)
class Flatten:
    """Flattens ``(C, H, W)`` to ``(C*H*W,)`` in C-major (NCHW) order."""
    name: str


@dataclass(frozen=True)
class Linear:
    name: str
    out_features: int
    bias: bool = True


@dataclass(frozen=True)
class Seq:
    name: str
    children: tuple["Node", ...]


@dataclass(frozen=True)
class Concat:
    """Runs each branch on the same input and concatenates the results on the channel axis."""
    name: str
    branches: tuple[Seq, ...]


@dataclass(frozen=True)
class Residual:
    """``body(x) + shortcut(x)``; an empty shortcut is the identity."""
    name: str
    body: Seq
    shortcut: Seq


@dataclass(frozen=True)
class Aux:
    """Auxiliary classifier: in training its logits join the loss with ``weight``; ignored at eval."""
    name: str
    head: Seq
    weight: float


Layer = Union[Conv, BatchNorm, ReLU, MaxPool, AvgPool, GlobalAvgPool, LRN, Dropout, Flatten, Linear]
Node = Union[Layer, Seq, Concat, Residual, Aux]
PARAMETRIC = (Conv, BatchNorm, Linear)


@dataclass(frozen=True)
class ModelDef:
    """A network: its id, input shape ``(C, H, W)``, class count and layer tree."""
    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    body: Seq
    description: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


def children(node: Node) -> tuple[Node, ...]:
    """Direct child nodes of a container, in a fixed order; () for a layer."""
    if isinstance(node, Seq):
        return node.children
    if isinstance(node, Concat):
        return node.branches
    if isinstance(node, Residual):
        return (node.body, node.shortcut)
    if isinstance(node, Aux):
        return (node.head,)
    return ()


def walk(node: Node, prefix: str = "") -> Iterator[tuple[str, Node]]:
    """Yields ``(dotted_path, node)`` depth-first for the node's descendants (not the node itself)."""
    for child in children(node):
        path = f"{prefix}{child.name}"
        yield path, child
        yield from walk(child, path + ".")


def aux_heads(model: ModelDef) -> list[tuple[str, Aux]]:
    """The auxiliary heads of a model with their dotted paths, in forward order."""
    return [(p, n) for p, n in walk(model.body) if isinstance(n, Aux)]
