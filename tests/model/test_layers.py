"""A network cut into the nodes explain times: layers or blocks, their shapes, FLOPs, gradients and auxiliary heads."""
from __future__ import annotations

import pytest

from harness.errors import ConvbenchError
from harness.model import networks
from harness.model.layers import chains, layer_spec, layer_specs
from harness.model.shapes import model_summary


@pytest.mark.parametrize("model", [networks.vgg16(), networks.googlenet(), networks.resnet_cifar(32),
                                   networks.alexnet(lrn=True)], ids=lambda m: m.name)
def test_every_cut_covers_the_network_once(model):
    summary = model_summary(model)
    for depth in (None, 1, 2, 3):
        specs = layer_specs(model, depth)
        assert sum(s.flops for s in specs) == summary.flops and sum(s.params for s in specs) == summary.params
        leaves = [x.path for x in summary.layers]
        covered = [leaf for leaf in leaves if any(leaf == s.path or leaf.startswith(s.path + ".") for s in specs)]
        assert covered == leaves
    assert [s.path for s in layer_specs(model)] == [x.path for x in summary.layers]


def test_blocks_shapes_and_gradients_of_vgg16():
    specs = layer_specs(networks.vgg16(), 1)
    assert [s.path for s in specs] == ["block1", "block2", "block3", "block4", "block5", "head"]
    assert specs[0].input_shape == (3, 32, 32) and specs[0].output_shape == (64, 16, 16) and specs[0].kind == "Seq"
    assert [s.input_grad for s in specs] == [False, True, True, True, True, True]   # the images need no gradient
    assert chains(networks.vgg16(), layer_specs(networks.vgg16()))


def test_auxiliary_heads_are_their_own_training_only_nodes():
    model = networks.googlenet()
    blocks = layer_specs(model, 1)
    heads = [s for s in blocks if s.training_only]
    assert [s.path for s in heads] == ["aux1.head", "aux2.head"] and heads[0].output_shape == (10,)
    assert heads[0].input_shape == next(s for s in blocks if s.path == "inc4a").output_shape
    assert chains(model, blocks) and not chains(model, layer_specs(model))   # the inception branches do not chain
    leaves = layer_specs(model)
    assert all(s.training_only == s.path.startswith(("aux1.", "aux2.")) for s in leaves)


def test_one_node_by_path_and_a_wrong_one():
    model = networks.resnet_cifar(32)
    block = layer_spec(model, "stage2.block0")
    assert block.input_shape == (16, 32, 32) and block.output_shape == (32, 16, 16) and block.kind == "Residual"
    assert layer_spec(model, "stem.conv").kind == "Conv"
    with pytest.raises(ConvbenchError, match="resnet32 has no node 'stage9' that can be timed alone; its blocks: stem"):
        layer_spec(model, "stage9")
    with pytest.raises(ConvbenchError, match="depth must be 1 or more"):
        layer_specs(model, 0)
