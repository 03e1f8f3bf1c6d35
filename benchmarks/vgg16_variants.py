"""VGG-16 with the layers ``convbench explain`` blamed taken out, to time the network again without them
(docs/explain.md, 'Checking what the table blames'). A model plugin: load it with
``CONVBENCH_PLUGINS=vgg16_variants PYTHONPATH=benchmarks``.

- ``vgg16_nodrop``: VGG-16 (CIFAR) without its dropout layers (every other layer and weight as in vgg16);
- ``vgg16_nob5conv``: VGG-16 without block5's three conv + BN + ReLU (+ dropout) blocks (512 channels in and out
  on 2x2 inputs, so the shapes after them are unchanged): block5 is its max pool alone.
"""
from __future__ import annotations

from dataclasses import replace

from harness import hookimpl
from harness.model.graph import Dropout, ModelDef, Node, Seq
from harness.model.networks import vgg16


def without(node: Node, drop: "callable") -> Node:
    if isinstance(node, Seq):
        return replace(node, children=tuple(without(c, drop) for c in node.children if not drop(c)))
    return node


def variants() -> list[ModelDef]:
    base = vgg16()
    nodrop = replace(base, name="vgg16_nodrop", body=without(base.body, lambda n: isinstance(n, Dropout)),
                     description="vgg16 without dropout (benchmarks/vgg16_variants.py)")
    blocks = tuple(replace(b, children=tuple(c for c in b.children if c.name == "pool")) if b.name == "block5" else b
                   for b in base.body.children)
    nob5 = replace(base, name="vgg16_nob5conv", body=replace(base.body, children=blocks),
                   description="vgg16 without block5's convolutions (benchmarks/vgg16_variants.py)")
    return [nodrop, nob5]


@hookimpl
def convbench_add_models(registry) -> None:
    for model in variants():
        registry.add(model.name, model)
