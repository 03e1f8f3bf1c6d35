"""Every network: definition-level counts, and the torch realisation's parameters and shapes."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import ALL_MODELS, needs

from harness.devices import parse_device
from harness.errors import ConvbenchError
from harness.model.graph import Conv, Flatten, Linear, MaxPool, ModelDef, Seq, aux_heads
from harness.model.shapes import model_summary, pool_output_size
from harness.model.weights import check_weights, init_weights, load_weights, save_weights

PUBLISHED_PARAMS = {"lenet5": 62_006, "vgg16_imagenet": 138_357_544, "vgg19_imagenet": 143_667_240}
CIFAR = {"simple_cnn", "lenet5", "alexnet", "alexnet_lrn", "vgg16", "googlenet", "resnet32"}
IMAGENET = {"alexnet_imagenet", "vgg16_imagenet", "vgg19_imagenet", "googlenet_imagenet"}


def test_required_models_are_registered():
    assert CIFAR | IMAGENET <= set(ALL_MODELS)


@pytest.mark.parametrize("name,params", PUBLISHED_PARAMS.items())
def test_published_parameter_counts(registries, name, params):
    assert model_summary(registries.models.get(name)).params == params


def test_resnet32_is_the_papers_size(registries):
    # He et al. report 0.46M; the 1x1 projection shortcuts of the Paddle book add ~7k
    assert 0.46e6 <= model_summary(registries.models.get("resnet32")).params <= 0.47e6


def test_alexnet_variants_differ_only_by_lrn(registries):
    plain, lrn = (model_summary(registries.models.get(n)) for n in ("alexnet", "alexnet_lrn"))
    assert plain.params == lrn.params and plain.flops == lrn.flops
    assert [x.path for x in lrn.layers if "lrn" not in x.path] == [x.path for x in plain.layers]


def test_googlenet_has_two_auxiliary_heads(registries):
    for name in ("googlenet", "googlenet_imagenet"):
        heads = aux_heads(registries.models.get(name))
        assert [p.rsplit(".", 1)[-1] for p, _ in heads] == ["aux1", "aux2"]
        assert all(h.weight == 0.3 for _, h in heads)


def test_flops_of_vgg16_imagenet_match_the_usual_figure(registries):
    # 15.47 G multiply-accumulates is the commonly cited figure for VGG-16 at 224x224
    assert model_summary(registries.models.get("vgg16_imagenet")).flops == pytest.approx(2 * 15.47e9, rel=0.01)


@needs("torch")
@pytest.mark.parametrize("size,k,s,p", [(s, k, st, p) for s in range(5, 40) for k, st, p in
                                         [(2, 2, 0), (3, 2, 0), (3, 2, 1), (3, 1, 1), (5, 3, 0), (3, 3, 1)]])
def test_ceil_mode_pool_size_follows_torch(size, k, s, p):
    import torch  # the reference for the ceil-mode rule
    for ceil in (False, True):
        pool = torch.nn.MaxPool2d(k, s, p, ceil_mode=ceil)
        expected = pool(torch.zeros(1, 1, size, size)).shape[-1]
        assert pool_output_size(size, k, s, p, ceil) == expected


def test_collapsing_model_is_refused():
    model = ModelDef("bad", (3, 8, 8), 10, Seq("net", (Conv("c", 4, 11), Flatten("f"), Linear("fc", 10))))
    with pytest.raises(ConvbenchError, match="collapses"):
        model_summary(model)


def test_model_must_end_in_class_count():
    model = ModelDef("bad", (3, 4, 4), 10, Seq("net", (MaxPool("p", 2, 2), Flatten("f"), Linear("fc", 7))))
    with pytest.raises(ConvbenchError, match="expected \\(10,\\)"):
        model_summary(model)


def test_weights_roundtrip_and_check(tmp_path, registries):
    model = registries.models.get("resnet32")
    w = init_weights(model, 3)
    assert np.array_equal(w["stem.conv.weight"], init_weights(model, 3)["stem.conv.weight"])
    save_weights(tmp_path / "w.npz", w, model="resnet32")
    back, meta = load_weights(tmp_path / "w.npz")
    assert meta == {"model": "resnet32"} and all(np.array_equal(back[k], w[k]) for k in w)
    del back["fc.bias"]
    with pytest.raises(ConvbenchError, match="missing"):
        check_weights(model, back)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ConvbenchError, match="bad.npz"):
        load_weights(tmp_path / "bad.npz")


@needs("torch")
@pytest.mark.parametrize("name", ALL_MODELS)
def test_torch_builds_every_model(registries, name):
    from convbench_torch import plugin
    model = registries.models.get(name)
    native = plugin.native(model, "cpu", {"seed": 0, "threads": 2})
    assert native.param_count() == model_summary(model).params
    weights = init_weights(model, 1)
    native.set_weights(weights)
    back = native.get_weights()
    assert set(back) == set(weights) and all(np.array_equal(back[k], weights[k]) for k in weights)
    x = np.random.default_rng(0).random((2, *model.input_shape), dtype=np.float32)
    logits = native.forward(x)
    assert logits.shape == (2, model.num_classes) and np.isfinite(logits).all()
    _, aux = native.net.train()(native._images(x))
    assert len(aux) == len(aux_heads(model))
    assert all(a.shape == (2, model.num_classes) for _, a in aux)


@needs("torch")
def test_torch_device_hooks():
    from harness.plugin_manager import get_plugin_manager
    pm = get_plugin_manager()
    devices = pm.hook.convbench_discover_devices(framework="torch")
    assert devices[0].name == "cpu"
    assert pm.hook.convbench_synchronize(framework="torch", device="cpu") is True
    with pytest.raises(ConvbenchError, match="cuda:7"):
        from convbench_torch.device import torch_device
        torch_device(parse_device("cuda:7"))
