"""explain's results from payloads written here (the worker's JSON shape): the table, the remainder, the sentence that
names the layers a difference comes from, explain.csv, and report.html in a real headless Chromium."""
from __future__ import annotations

import csv
from typing import Any

from harness.results import explain
from harness.results.explain_html import write_html


def timing(ms: float) -> dict[str, Any]:
    return {"ms": ms, "ms_ci_low": 0.9 * ms, "ms_ci_high": 1.1 * ms, "n": 10, "warmup": 2, "stop": "target",
            "stable": True, "first_step_s": 0.1, "samples": [ms / 1000] * 10}


def payload(framework: str, network: tuple[float, float], layers: dict[str, tuple[float | None, float]]) -> dict[str, Any]:
    """A framework's result: its network's (forward, train_step) ms and each node's."""
    return {"framework": framework, "framework_version": "1.0", "model": "net", "phase": "train_step", "depth": None,
            "batch_size": 16, "device": "cpu", "device_name": "a CPU", "flops_per_image": 4_000_000, "threads": 2,
            "method": "layer cells", "execution": {"precision": "fp32", "compile": "eager", "layout": "nchw"},
            "network": {"forward": timing(network[0]), "train_step": timing(network[1])},
            "layers": [{"path": path, "kind": path.split(".")[-1].rstrip("0123456789").capitalize(), "input_shape": [3, 8, 8],
                        "output_shape": [4, 8, 8], "flops_per_image": 1_000_000 if "conv" in path else 0, "params": 10,
                        "training_only": fwd is None, "forward": None if fwd is None else timing(fwd),
                        "train_step": timing(step)} for path, (fwd, step) in layers.items()]}


# tensorflow is 10 ms slower a step than torch: 6 ms in conv2, 2 ms in conv1, 1 ms less in relu, 3 ms unattributed
TORCH = payload("torch", (8.0, 20.0), {"conv1": (2.0, 6.0), "relu": (1.0, 3.0), "conv2": (3.0, 9.0), "aux.fc": (None, 1.0)})
TF = payload("tensorflow", (10.0, 30.0), {"conv1": (3.0, 8.0), "relu": (0.5, 2.0), "conv2": (5.0, 15.0),
                                          "aux.fc": (None, 1.0)})


def explained(*payloads: dict[str, Any]) -> explain.Explained:
    return explain.load([*payloads, {"framework": "paddle", "error": "unavailable: not installed"}], "net", "train_step")


def test_remainder_and_the_sentence_naming_the_layers():
    ex = explained(TORCH, TF)
    assert ex.failed == {"paddle": "unavailable: not installed"}
    assert ex.sum_ms("torch") == 19.0 and ex.remainder_ms("torch") == 1.0
    assert ex.sum_ms("tensorflow", "forward") == 8.5       # the auxiliary head's forward is skipped at evaluation
    assert explain.summaries(ex) == [
        "tensorflow vs torch on net train_step: +10.0 ms per step (+50 %), 60 % of it in conv2 (60 %); "
        "unattributed remainder +30 % of it"]
    text = explain.table(ex)
    assert "conv2" in text.splitlines()[4] and "tensorflow" in text.splitlines()[4] and "1.67" in text.splitlines()[4]
    assert "(unattributed)" in text and "4 (+13 %)" in text
    assert explain.remainder_lines(ex)[1] == ("tensorflow: network 30.0 ms, layers 26.0 ms, unattributed 4 ms "
                                              "(+13 % of the network) [layer cells]")


def test_sentence_names_up_to_three_layers_until_half_the_difference():
    slow = payload("paddle", (10.0, 32.0), {"conv1": (2.0, 7.0), "relu": (1.0, 4.0), "conv2": (3.0, 10.0),
                                              "aux.fc": (None, 2.0)})
    line = explain.summaries(explained(TORCH, slow))[0]
    assert line == ("paddle vs torch on net train_step: +12.0 ms per step (+60 %), 25 % of it in conv1 (8 %), relu (8 %), "
                    "conv2 (8 %); unattributed remainder +67 % of it")


def test_no_layer_is_blamed_when_the_layers_do_not_add_up():
    odd = payload("jax", (8.0, 21.0), {"conv1": (2.0, 30.0), "relu": (1.0, 3.0), "conv2": (3.0, 9.0), "aux.fc": (None, 1.0)})
    assert explain.summaries(explained(TORCH, odd)) == [
        "jax vs torch on net train_step: +1.0 ms per step (+5 %); the layers do not account for it: the unattributed "
        "remainder differs by -23.0 ms (-22.0 ms in jax, 1 ms in torch)"]


def test_csv_has_a_row_per_node_and_the_totals(tmp_path):
    ex = explained(TORCH, TF)
    explain.write_csv(ex, tmp_path / "explain.csv")
    with open(tmp_path / "explain.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["layer"] for r in rows if r["framework"] == "torch"] == [
        "conv1", "relu", "conv2", "aux.fc", "(sum of layers)", "(network)", "(unattributed)"]
    conv2 = next(r for r in rows if r["framework"] == "tensorflow" and r["layer"] == "conv2")
    assert float(conv2["train_step_ms"]) == 15.0 and float(conv2["backward_ms"]) == 10.0
    assert float(conv2["gflops"]) == 1e6 * 3 * 16 / 0.015 / 1e9
    assert conv2["compile"] == "eager" and conv2["threads"] == "2" and conv2["method"] == "layer cells"
    aux = next(r for r in rows if r["framework"] == "torch" and r["layer"] == "aux.fc")
    assert aux["forward_ms"] == "" and aux["training_only"] == "True"


def test_report_in_a_browser(pages, tmp_path):
    page, errors, remote = pages.open(write_html(explained(TORCH, TF), tmp_path / "report.html"), tmp_path / "explain.png")
    assert not errors and not remote
    pages.assert_plots_drawn(page, 1)
    assert page.locator(".js-plotly-plot g.trace").count() == 2            # a bar series per framework
    assert page.locator(".js-plotly-plot g.trace path").count() >= 8       # a bar per framework and node
    assert "60 % of it in conv2" in page.locator("ul.summary").inner_text()
    assert "paddle: not timed: unavailable" in page.locator("ul.note").inner_text()
    assert page.locator("table.layers tbody tr").count() == 4 + 3
