"""``convbench list``: the models with input shape, classes, parameters and FLOPs."""
from __future__ import annotations

import argparse
import json
from typing import Any

from harness.model.shapes import model_summary
from harness.plugin_manager import build_registries, get_plugin_manager


def add_parser(sub: argparse._SubParsersAction) -> None:
    lst = sub.add_parser("list", help="list the models with shapes, parameters and FLOPs")
    lst.add_argument("--format", choices=("table", "json"), default="table",
                     help="table (default): one line per model; json: a list of objects, one per model")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    rows: list[dict[str, Any]] = []
    for model in build_registries(get_plugin_manager()).models:
        s = model_summary(model)
        rows.append({"id": model.name, "input_shape": list(model.input_shape), "classes": model.num_classes,
                     "params": s.params, "flops_per_image": s.flops, "description": model.description})
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'id':20s} {'input':>11s} {'classes':>7s} {'params':>13s} {'GFLOPs':>8s}")
    for r in rows:
        shape = "x".join(map(str, r["input_shape"]))
        print(f"{r['id']:20s} {shape:>11s} {r['classes']:>7d} {r['params']:>13,d} {r['flops_per_image'] / 1e9:>8.3f}")
    print("FLOPs: forward pass per image, 2 x multiply-accumulates of conv and linear layers")
    return 0
