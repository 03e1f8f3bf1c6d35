"""Shape inference, parameter counts and FLOPs, computed from the definition alone.

FLOPs are forward-pass floating-point operations per image, counted as 2 x multiply-accumulates of
convolutions and linear layers (the convention of most published GFLOPs figures); the other layers
are cheap and left out. Parameters are the trainable ones (batch-norm running statistics excluded).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from harness.errors import ConvbenchError
from harness.model.graph import (
    LRN,
    Aux,
    AvgPool,
    BatchNorm,
    Concat,
    Conv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Linear,
    MaxPool,
    ModelDef,
    Node,
    ReLU,
    Residual,
    Seq,
)

Shape = tuple[int, ...]


def pool_output_size(size: int, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> int:
    """Output length of a pooling window along one axis, with PyTorch's ceil-mode rule.

    In ceil mode the last window may overhang the input, but it must start inside the input or
    the left padding; a window starting in the right padding is dropped.
    """
    span = size + 2 * padding - kernel
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@dataclass
class LayerInfo:
    path: str
    node: Node
    input_shape: Shape
    output_shape: Shape
    params: int
    flops: int


@dataclass
class ModelSummary:
    model: str
    output_shape: Shape
    params: int
    flops: int
    layers: list[LayerInfo]
    param_shapes: dict[str, Shape]


def model_summary(model: ModelDef) -> ModelSummary:
    """Walks the model on its input shape; raises ConvbenchError when a layer cannot apply."""
    layers: list[LayerInfo] = []
    param_shapes: dict[str, Shape] = {}
    out = _infer(model.body, tuple(model.input_shape), "", layers, param_shapes, model.name)
    if out != (model.num_classes,):
        raise ConvbenchError(f"model {model.name!r} ends in shape {out}, expected ({model.num_classes},)")
    return ModelSummary(model.name, out, sum(x.params for x in layers), sum(x.flops for x in layers), layers, param_shapes)


def _infer(node: Node, shape: Shape, path: str, layers: list[LayerInfo], pshapes: dict[str, Shape], model: str) -> Shape:
    if isinstance(node, Seq):
        for child in node.children:
            shape = _infer(child, shape, _join(path, child.name), layers, pshapes, model)
        return shape
    if isinstance(node, Concat):
        outs = [_infer(b, shape, _join(path, b.name), layers, pshapes, model) for b in node.branches]
        if any(len(o) != 3 or o[1:] != outs[0][1:] for o in outs):
            raise ConvbenchError(f"{model}: branches of {path!r} disagree in spatial size: {outs}")
        return (sum(o[0] for o in outs), *outs[0][1:])
    if isinstance(node, Residual):
        body = _infer(node.body, shape, _join(path, node.body.name), layers, pshapes, model)
        short = _infer(node.shortcut, shape, _join(path, node.shortcut.name), layers, pshapes, model)
        if body != short:
            raise ConvbenchError(f"{model}: residual {path!r} adds {body} to {short}")
        return body
    if isinstance(node, Aux):
        _infer(node.head, shape, _join(path, node.head.name), layers, pshapes, model)
        return shape
    out, params, flops, shapes = _layer(node, shape, path, model)
    for key, pshape in shapes.items():
        pshapes[f"{path}.{key}"] = pshape
    layers.append(LayerInfo(path, node, shape, out, params, flops))
    return out


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _layer(node: Node, shape: Shape, path: str, model: str) -> tuple[Shape, int, int, dict[str, Shape]]:
    """(output shape, trainable params, flops, parameter shapes incl. running stats) of one layer."""
    def need_chw() -> tuple[int, int, int]:
        if len(shape) != 3:
            raise ConvbenchError(f"{model}: layer {path!r} needs a (C, H, W) input, got {shape}")
        return shape  # type: ignore[return-value]

    def check(out: Shape) -> Shape:
        if any(d <= 0 for d in out):
            raise ConvbenchError(f"{model}: layer {path!r} collapses input {shape} to {out}")
        return out

    if isinstance(node, Conv):
        c, h, w = need_chw()
        oh, ow = (conv_output_size(s, node.kernel, node.stride, node.padding) for s in (h, w))
        out = check((node.out_channels, oh, ow))
        wshape = (node.out_channels, c, node.kernel, node.kernel)
        shapes: dict[str, Shape] = {"weight": wshape}
        if node.bias:
            shapes["bias"] = (node.out_channels,)
        params = sum(math.prod(s) for s in shapes.values())
        return out, params, 2 * math.prod(wshape) * oh * ow, shapes
    if isinstance(node, Linear):
        if len(shape) != 1:
            raise ConvbenchError(f"{model}: linear layer {path!r} needs a flat input, got {shape}")
        shapes = {"weight": (node.out_features, shape[0])}
        if node.bias:
            shapes["bias"] = (node.out_features,)
        params = sum(math.prod(s) for s in shapes.values())
        return (node.out_features,), params, 2 * node.out_features * shape[0], shapes
    if isinstance(node, BatchNorm):
        c = shape[0]
        shapes = {k: (c,) for k in ("weight", "bias", "running_mean", "running_var")}
        return shape, 2 * c, 0, shapes
    if isinstance(node, (ReLU, Dropout, LRN)):
        return shape, 0, 0, {}
    if isinstance(node, MaxPool):
        c, h, w = need_chw()
        if node.padding * 2 > node.kernel:
            raise ConvbenchError(f"{model}: pool {path!r} pads more than half its window")
        oh, ow = (pool_output_size(s, node.kernel, node.stride, node.padding, node.ceil_mode) for s in (h, w))
        return check((c, oh, ow)), 0, 0, {}
    if isinstance(node, AvgPool):
        c, h, w = need_chw()
        oh, ow = (pool_output_size(s, node.kernel, node.stride) for s in (h, w))
        return check((c, oh, ow)), 0, 0, {}
    if isinstance(node, GlobalAvgPool):
        c, _, _ = need_chw()
        return (c,), 0, 0, {}
    if isinstance(node, Flatten):
        return (math.prod(shape),), 0, 0, {}
    raise ConvbenchError(f"{model}: unknown node type {type(node).__name__} at {path!r}")


def node_output_shape(node: Node, shape: Shape, path: str = "", model: str = "model") -> Shape:
    """The per-image output shape of one node (a layer or a container at ``path``) on an input of ``shape``."""
    return _infer(node, tuple(shape), path, [], {}, model)
