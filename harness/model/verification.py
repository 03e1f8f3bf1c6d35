"""Verification maths (``convbench verify``): same weights, same batch -> same logits in every framework.

Weights are the shared initialisation with biases, batch-norm parameters and running statistics
randomised (so eval-mode batch norm is not an identity and its conventions are exercised).
Each framework computes eval-mode logits in its own worker process; every pair is compared.

Tolerance: max |a - b| <= 1e-4 x max(|a|, |b|) over the batch. fp32 sums of up to ~25k products
drift by ~1e-6 relative; any layout, padding, pooling or formula mistake shows up at ~1e-1 or more.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.model.graph import ModelDef
from harness.model.shapes import model_summary
from harness.model.weights import init_weights, save_weights

TOLERANCE = 1e-4
BATCH = 2


def verification_weights(model: ModelDef, seed: int) -> dict[str, np.ndarray]:
    weights = init_weights(model, seed)
    rng = np.random.default_rng([seed, 7])
    for key, value in weights.items():
        field = key.rsplit(".", 1)[1]
        if field in ("bias", "running_mean"):
            weights[key] = (rng.standard_normal(value.shape) * 0.1).astype(np.float32)
        elif field == "running_var":
            weights[key] = rng.uniform(0.5, 2.0, value.shape).astype(np.float32)
        elif field == "weight" and value.ndim == 1:
            weights[key] = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
    return weights


def write_inputs(models: list[ModelDef], folder: Path, seed: int) -> None:
    """One weights file and one input batch per model, shared by every framework's worker."""
    for model in models:
        save_weights(folder / f"{model.name}.weights.npz", verification_weights(model, seed))
        x = np.random.default_rng([seed, 11]).random((BATCH, *model.input_shape), dtype=np.float32)
        np.save(folder / f"{model.name}.input.npy", x)


@dataclass
class Agreement:
    model: str
    expected_params: int
    params: dict[str, int | None]
    errors: dict[str, str]
    diffs: dict[tuple[str, str], float]   # pair -> max|a-b| / scale

    @property
    def ok(self) -> bool:
        return (not self.errors and all(p == self.expected_params for p in self.params.values())
                and all(d <= TOLERANCE for d in self.diffs.values()))


def agreement(model: ModelDef, frameworks: list[str], results: dict[str, dict[str, Any]], folder: Path) -> Agreement:
    params: dict[str, int | None] = {}
    errors: dict[str, str] = {}
    logits: dict[str, np.ndarray] = {}
    for fw in frameworks:
        entry = results.get(fw, {}).get(model.name, {"error": "no result"})
        if "error" in entry:
            errors[fw] = entry["error"]
            params[fw] = None
            continue
        params[fw] = entry["params"]
        logits[fw] = np.load(folder / f"{model.name}.{fw}.logits.npy")
    diffs = {}
    for a, b in itertools.combinations(sorted(logits), 2):
        scale = max(float(np.abs(logits[a]).max()), float(np.abs(logits[b]).max()), 1e-12)
        diffs[(a, b)] = float(np.abs(logits[a] - logits[b]).max()) / scale
    return Agreement(model.name, model_summary(model).params, params, errors, diffs)


def table(agreements: list[Agreement], frameworks: list[str]) -> str:
    pairs = [f"{a}~{b}" for a, b in itertools.combinations(sorted(frameworks), 2)]
    header = ["model", "definition", *[f"params[{f}]" for f in frameworks], *pairs, "verdict"]
    lines = [header]
    for c in agreements:
        row = [c.model, f"{c.expected_params:,}"]
        row += ["error" if c.params[f] is None else f"{c.params[f]:,}" for f in frameworks]
        row += [_fmt(c.diffs.get(tuple(p.split("~")))) for p in pairs]  # type: ignore[arg-type]
        row.append("ok" if c.ok else "FAIL")
        lines.append(row)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    for c in agreements:
        for fw, err in c.errors.items():
            text.append(f"{c.model} [{fw}]: {err}")
    text.append(f"pair columns: max|logits_a - logits_b| / max|logits|, tolerance {TOLERANCE:g}")
    return "\n".join(text)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"
