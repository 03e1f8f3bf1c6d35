"""The lab's VGG-16 variants (benchmarks/vgg16_variants.py), with which docs/explain.md checks what explain blames: each
is VGG-16 less exactly the layers named, and loads as a model plugin in convbench's own process."""
from __future__ import annotations

import os

from helpers import run_cli
from vgg16_variants import variants

from harness.model.graph import Dropout, Seq, walk
from harness.model.networks import vgg16
from harness.model.shapes import model_summary


def test_each_variant_is_vgg16_less_the_layers_named():
    nodrop, nob5 = variants()
    base = {p: n for p, n in walk(vgg16().body) if not isinstance(n, Seq)}   # the layers, by path
    assert {p: n for p, n in walk(nodrop.body) if not isinstance(n, Seq)} == {
        p: n for p, n in base.items() if not isinstance(n, Dropout)}
    assert {p for p in base if not p.startswith("block5.") or p == "block5.pool"} == {
        p for p, n in walk(nob5.body) if not isinstance(n, Seq)}
    assert model_summary(nob5).output_shape == model_summary(vgg16()).output_shape == (10,)
    summary = {x.path: x for x in model_summary(vgg16()).layers}
    gone = sum(x.flops for p, x in summary.items() if p.startswith("block5.conv"))
    assert model_summary(nob5).flops == model_summary(vgg16()).flops - gone


def test_they_load_as_a_model_plugin(benchmarks_dir):
    env = {"CONVBENCH_PLUGINS": "vgg16_variants",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(benchmarks_dir), os.environ.get("PYTHONPATH")]))}
    proc = run_cli("list", env=env)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()[2:]]
    assert "vgg16_nodrop" in names and "vgg16_nob5conv" in names
