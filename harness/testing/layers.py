"""Checks of the optional layer cells (``convbench explain``), skipped with the reason where a plugin has none: a
plugin that fails one times something other than its network's layers: a cell whose forward differs from the
network's (chained from the images, the cells must give the network's logits), or whose backward or update is not
the network's rule."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.model.graph import Conv, Flatten, Linear, ReLU
from harness.model.layers import LayerSpec, chains, layer_spec, layer_specs
from harness.model.verification import TOLERANCE
from harness.model.weights import init_weights
from harness.testing.numerics import relative_error
from harness.testing.training import tiny
from harness.testing.wiring import Kit


def cell(kit: Kit, model: Any, spec: LayerSpec, weights: dict[str, np.ndarray], **settings: Any) -> Any:
    """The plugin's cell of ``spec``, its weights loaded; skips where the plugin has no layer cells."""
    layer = kit.build_layer(model, spec, **settings)
    if layer is None:
        pytest.skip(f"the {kit.framework} plugin has no layer cells (convbench_build_layer)")
    layer.set_weights(spec.weights(weights))
    return layer


class TestLayers:
    """Layer cells (docs/plugins.md, 'Layer cells'), where the plugin has them."""

    def test_cells_chain_to_the_network(self, convbench_kit: Kit, convbench_model: str, convbench_native: Any) -> None:
        """Each cell's forward, fed the previous cell's output, ends in the network's logits: the blocks at depth 1,
        and every layer where no branch or residual join lies between them."""
        model = convbench_kit.model(convbench_model)
        weights = init_weights(model, 0)
        x = np.random.default_rng(3).random((2, *model.input_shape), dtype=np.float32)
        convbench_native.set_weights(weights)
        expected = convbench_native.forward(x)
        cuts = [1] + ([None] if chains(model, layer_specs(model)) else [])
        for depth in cuts:
            h = x
            for spec in layer_specs(model, depth):
                if spec.training_only:
                    continue
                out = cell(convbench_kit, model, spec, weights).forward(h)
                assert out.shape == (2, *spec.output_shape), f"{spec.path}: output {out.shape}"
                h = out
            where = "every layer" if depth is None else f"the blocks at depth {depth}"
            assert relative_error(h, expected) <= TOLERANCE, f"{model.name}: {where} chained differ from the network"

    def test_linear_cell_backward_and_update(self, convbench_kit: Kit) -> None:
        """A Linear cell's train_step is backward of sum(output * grad) and the network's SGD rule (momentum, weight
        decay); forward_backward leaves the weights as they were."""
        model = tiny("kit_layer", (1, 2, 3), Conv("conv", 2, 1), ReLU("relu"), Flatten("flatten"), Linear("fc", 3))
        spec, rng = layer_spec(model, "fc"), np.random.default_rng(11)
        assert spec.input_grad and spec.input_shape == (12,)
        w = {"fc.weight": rng.standard_normal((3, 12), dtype=np.float32),
             "fc.bias": rng.standard_normal(3, dtype=np.float32)}
        layer = cell(convbench_kit, model, spec, w, momentum=0.9, weight_decay=0.01)
        x, g = rng.standard_normal((4, 12), dtype=np.float32), rng.standard_normal((4, 3), dtype=np.float32)
        before = layer.forward(x)
        assert relative_error(before, x @ w["fc.weight"].T + w["fc.bias"]) <= TOLERANCE
        batch = layer.prepare(x, g)
        layer.run_phase("forward_backward", batch, 0.1)
        assert relative_error(layer.forward(x), before) <= TOLERANCE, "forward_backward changed the weights"
        weight, bias = w["fc.weight"].astype(np.float64), w["fc.bias"].astype(np.float64)
        vw, vb = np.zeros_like(weight), np.zeros_like(bias)
        for lr in (0.1, 0.05):   # v = m v + grad + wd w; w -= lr v (torch's rule, the first v being the gradient)
            layer.run_phase("train_step", batch, lr)
            vw = 0.9 * vw + g.T.astype(np.float64) @ x + 0.01 * weight
            vb = 0.9 * vb + g.sum(0, dtype=np.float64) + 0.01 * bias
            weight, bias = weight - lr * vw, bias - lr * vb
        assert relative_error(layer.forward(x), x @ weight.T + bias) <= TOLERANCE, "not the network's SGD rule"
