"""A network cut into the nodes ``convbench explain`` times one by one: each a layer, or a block at ``--depth``.

A cell is one node of the model's graph (a layer, or an Aux-free container) with the input shape it sees in the
network. An auxiliary head (``Aux``) is never inside a cell: a container holding one is always opened, and the
head's own nodes become cells that run only in training (the network skips them at evaluation). Concatenation and
residual additions are not layers: with their branches cut into cells, their joins fall in the unattributed remainder.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import ConvbenchError
from harness.model.graph import Aux, Concat, ModelDef, Node, Residual, Seq, children, walk
from harness.model.shapes import LayerInfo, Shape, model_summary, node_output_shape


@dataclass(frozen=True)
class LayerSpec:
    """One cell: ``path`` (dotted, as in weight keys), its ``node``, the shapes it sees per image, its forward
    FLOPs and trainable parameters per image, ``input_grad`` (the network's backward computes the gradient of
    this node's input: every node but the one that reads the images) and ``training_only`` (inside an auxiliary
    head: skipped at evaluation)."""
    path: str
    node: Node
    input_shape: Shape
    output_shape: Shape
    flops: int
    params: int
    input_grad: bool
    training_only: bool

    @property
    def kind(self) -> str:
        """The node's type (Conv, BatchNorm, ... or Seq for a block)."""
        return type(self.node).__name__

    def holds(self, path: str) -> bool:
        """``path`` (a layer's, or a weight key) is this node's or lies under it."""
        return within(path, self.path)

    def weights(self, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The node's entries of a whole model's portable weights (keys unchanged: ``<path>.<param>``)."""
        return {k: v for k, v in weights.items() if self.holds(k)}


def within(path: str, node: str) -> bool:
    """``path`` is the node at dotted path ``node`` or lies under it."""
    return path == node or path.startswith(node + ".")


def _has_aux(node: Node) -> bool:
    return isinstance(node, Aux) or any(isinstance(n, Aux) for _, n in walk(node))


def _is_empty(node: Node) -> bool:
    return isinstance(node, Seq) and not any(True for _ in walk(node))


def layer_specs(model: ModelDef, depth: int | None = None) -> list[LayerSpec]:
    """The model's cells in forward order: every layer (``depth`` None), or the nodes ``depth`` levels below the
    body (1: the body's children), layers above that depth as they are."""
    if depth is not None and depth < 1:
        raise ConvbenchError(f"depth must be 1 or more, got {depth}")
    summary = model_summary(model)
    leaves = summary.layers
    first = leaves[0].path if leaves else ""
    out: list[LayerSpec] = []

    def spec(node: Node, path: str, training_only: bool) -> LayerSpec:
        mine = [x for x in leaves if within(x.path, path)]
        head: LayerInfo = mine[0]
        return LayerSpec(path, node, head.input_shape, node_output_shape(node, head.input_shape, path, model.name),
                         sum(x.flops for x in mine), sum(x.params for x in mine), head.path != first, training_only)

    def visit(node: Node, path: str, level: int, training_only: bool) -> None:
        if isinstance(node, Aux):   # transparent: its head's nodes run in training only
            visit(node.head, f"{path}.{node.head.name}", level, True)
        elif _is_empty(node):
            return
        elif not children(node) or (depth is not None and level >= depth and not _has_aux(node)):
            out.append(spec(node, path, training_only))
        else:
            for child in children(node):
                visit(child, f"{path}.{child.name}", level + 1, training_only)

    for child in model.body.children:
        visit(child, child.name, 1, False)
    return out


def layer_spec(model: ModelDef, path: str) -> LayerSpec:
    """The cell at ``path`` (any depth); a one-line ConvbenchError names the model's top-level nodes otherwise."""
    for depth in (*range(1, 1 + path.count(".") + 1), None):
        for s in layer_specs(model, depth):
            if s.path == path:
                return s
    names = ", ".join(s.path for s in layer_specs(model, 1))
    raise ConvbenchError(f"{model.name} has no node {path!r} that can be timed alone; its blocks: {names}")


def chains(model: ModelDef, specs: list[LayerSpec]) -> bool:
    """True when the evaluation cells of ``specs``, chained from the images in order (each reading the previous
    one's output), give the network's logits: no cell lies below a Concat or a Residual, whose branches read the
    same input rather than each other's outputs."""
    joins = [p for p, n in walk(model.body) if isinstance(n, (Concat, Residual))]
    return not any(within(s.path, j) and s.path != j for s in specs if not s.training_only for j in joins)
