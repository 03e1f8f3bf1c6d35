"""``convbench verify``: same weights, same batch -> same logits in every framework.

Weights are the shared initialisation with biases, batch-norm parameters and running statistics
randomised (so eval-mode batch norm is not an identity and its conventions are exercised).
Each framework computes eval-mode logits in its own worker process; every pair is compared.

Tolerance: max |a - b| <= 1e-4 x max(|a|, |b|) over the batch. fp32 sums of up to ~25k products
drift by ~1e-6 relative; any layout, padding, pooling or formula mistake shows up at ~1e-1 or more.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.graph import ModelDef
from harness.shapes import summarize
from harness.weights import init_weights, save_weights

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


def compute_logits(framework: str, models: list[str], folder: Path, threads: int) -> dict[str, Any]:
    """Worker side: build each model, load the shared weights, save its logits. Imports the framework."""
    from harness.plugin_manager import build_registries, get_plugin_manager
    from harness.weights import load_weights
    pm = get_plugin_manager()
    regs = build_registries(pm)
    out: dict[str, Any] = {}
    for name in models:
        model = regs.models.get(name)
        try:
            native = pm.hook.convbench_build_model(framework=framework, model=model, device="cpu",
                                                   settings={"seed": 0, "threads": threads, "momentum": 0.9,
                                                             "weight_decay": 0.0})
            weights, _ = load_weights(folder / f"{name}.weights.npz")
            native.set_weights(weights)
            logits = native.forward(np.load(folder / f"{name}.input.npy"))
            np.save(folder / f"{name}.{framework}.logits.npy", logits)
            out[name] = {"params": native.param_count()}
        except Exception as exc:  # report per model; the others still run
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


@dataclass
class Comparison:
    model: str
    expected_params: int
    params: dict[str, int | None]
    errors: dict[str, str]
    diffs: dict[tuple[str, str], float]   # pair -> max|a-b| / scale

    @property
    def ok(self) -> bool:
        return (not self.errors and all(p == self.expected_params for p in self.params.values())
                and all(d <= TOLERANCE for d in self.diffs.values()))


def compare(model: ModelDef, frameworks: list[str], results: dict[str, dict[str, Any]], folder: Path) -> Comparison:
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
    return Comparison(model.name, summarize(model).params, params, errors, diffs)


def table(comparisons: list[Comparison], frameworks: list[str]) -> str:
    pairs = [f"{a}~{b}" for a, b in itertools.combinations(sorted(frameworks), 2)]
    header = ["model", "definition", *[f"params[{f}]" for f in frameworks], *pairs, "verdict"]
    lines = [header]
    for c in comparisons:
        row = [c.model, f"{c.expected_params:,}"]
        row += ["error" if c.params[f] is None else f"{c.params[f]:,}" for f in frameworks]
        row += [_fmt(c.diffs.get(tuple(p.split("~")))) for p in pairs]  # type: ignore[arg-type]
        row.append("ok" if c.ok else "FAIL")
        lines.append(row)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    for c in comparisons:
        for fw, err in c.errors.items():
            text.append(f"{c.model} [{fw}]: {err}")
    text.append(f"pair columns: max|logits_a - logits_b| / max|logits|, tolerance {TOLERANCE:g}")
    return "\n".join(text)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data))


def run_verify(frameworks: list[str] | None, models: list[str] | None, seed: int, threads: int) -> int:
    """The command: exits 0 when every model agrees in every framework pair, 1 otherwise."""
    import tempfile

    from harness.errors import ConvbenchError
    from harness.plugin_manager import build_registries, get_plugin_manager
    from harness.runner import run_worker, worker_env

    regs = build_registries(get_plugin_manager())
    specs = [regs.frameworks.get(n) for n in (frameworks or regs.frameworks.names())]
    chosen = [regs.models.get(n) for n in (models or regs.models.names())]
    usable = []
    for spec in specs:
        installed, reason = spec.installed()
        if installed:
            usable.append(spec)
        elif frameworks:
            raise ConvbenchError(f"framework {spec.name} is unavailable: {reason}")
        else:
            print(f"skipping {spec.name}: {reason}")
    if not usable:
        raise ConvbenchError("no framework is available to verify")
    names = [s.name for s in usable]
    with tempfile.TemporaryDirectory(prefix="convbench-verify-") as tmp:
        folder = Path(tmp)
        write_inputs(chosen, folder, seed)
        results: dict[str, dict[str, Any]] = {}
        for spec in usable:
            job = folder / f"{spec.name}.job.json"
            dump(job, {"framework": spec.name, "models": [m.name for m in chosen], "folder": tmp, "threads": threads})
            print(f"computing logits in {spec.name} ...", flush=True)
            code, payload = run_worker(["verify", str(job)], worker_env(spec, threads), folder / "worker.log", None,
                                       lambda line: None)
            if payload is None or "error" in payload and code != 0:
                log = (folder / "worker.log").read_text(errors="replace").strip().splitlines()[-3:]
                why = (payload or {}).get("error") or " | ".join(log)
                payload = {m.name: {"error": f"worker failed: {why}"} for m in chosen}
            results[spec.name] = payload
        comparisons = [compare(m, names, results, folder) for m in chosen]
    print(table(comparisons, names))
    return 0 if all(c.ok for c in comparisons) else 1
