"""``convbench explain``'s results: the per-layer table (layers as rows, frameworks as columns), the unattributed
remainder per framework, the sentences naming the layers that explain a difference, and explain.csv.

A payload is one framework's worker result (``harness.worker.explain_cell``): its network's phases and each node's,
every figure a median in milliseconds with its 95 % interval, the raw samples beside it. The phase a table shows is
the one asked for; with a training phase each node also has its forward (evaluation) time, and ``backward`` is the
phase minus that forward (the backward pass and the update, derived, no interval of its own).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from harness.atomic import write_atomic
from harness.results.table import text_table

PASS_FACTOR = {"forward": 1, "forward_backward": 3, "train_step": 3}   # as speed mode counts a pass's FLOPs
NETWORK, SUM, REMAINDER = "(network)", "(sum of layers)", "(unattributed)"
SHOWN_LAYERS = 3   # a summary sentence names at most this many layers


@dataclass(frozen=True)
class Explained:
    """Every framework's payload for one model and phase; ``failed``: {framework: why} for those without one."""
    model: str
    phase: str
    payloads: list[dict[str, Any]]
    failed: dict[str, str]

    @property
    def frameworks(self) -> list[str]:
        return [p["framework"] for p in self.payloads]

    @property
    def paths(self) -> list[str]:
        return [layer["path"] for layer in self.payloads[0]["layers"]] if self.payloads else []

    def layer(self, framework: str, path: str) -> dict[str, Any]:
        payload = next(p for p in self.payloads if p["framework"] == framework)
        return next(x for x in payload["layers"] if x["path"] == path)

    def ms(self, framework: str, path: str, phase: str | None = None) -> float | None:
        """A node's median milliseconds for ``phase`` (default the run's); None where the network skips it."""
        timing = self.layer(framework, path).get(phase or self.phase)
        return None if timing is None else float(timing["ms"])

    def network_ms(self, framework: str, phase: str | None = None) -> float:
        payload = next(p for p in self.payloads if p["framework"] == framework)
        return float(payload["network"][phase or self.phase]["ms"])

    def sum_ms(self, framework: str, phase: str | None = None) -> float:
        return sum(v for path in self.paths if (v := self.ms(framework, path, phase)) is not None)

    def remainder_ms(self, framework: str, phase: str | None = None) -> float:
        """The network's step minus the sum of its nodes' steps: what no node accounts for (negative where the
        nodes alone take longer than inside the network)."""
        return self.network_ms(framework, phase) - self.sum_ms(framework, phase)


def ms_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def slowest(values: dict[str, float | None]) -> tuple[str, float | None]:
    """(the slowest framework, its time over the fastest's), ('-', None) unless at least two have a positive time."""
    known = {fw: v for fw, v in values.items() if v is not None and v > 0}
    if len(known) < 2:
        return "-", None
    worst = max(known, key=lambda fw: known[fw])
    return worst, known[worst] / min(known.values())


def table(ex: Explained) -> str:
    return text_table(*table_rows(ex))


def table_rows(ex: Explained) -> tuple[list[str], list[list[Any]]]:
    """(header, rows): a row per node, a column per framework (median ms of the phase), the slowest framework and its
    ratio to the fastest, then each framework's achieved GFLOP/s; then the sum of the nodes, the whole network and the
    unattributed remainder."""
    fws = ex.frameworks
    first = ex.payloads[0]
    batch, factor = first["batch_size"], PASS_FACTOR[ex.phase]
    header = ["layer", "kind", "MFLOP/img", *[f"{fw} ms" for fw in fws], "slowest", "x fastest",
              *[f"{fw} GFLOP/s" for fw in fws]]

    def rate(flops: int, ms: float | None) -> str:
        return f"{flops * factor * batch / ms / 1e6:.3g}" if flops and ms else "-"

    def row(name: str, kind: str, flops: int | None, values: dict[str, float | None]) -> list[Any]:
        worst, ratio = slowest(values)
        return [name, kind, "" if flops is None else f"{flops / 1e6:.3g}", *[ms_text(values[fw]) for fw in fws], worst,
                "-" if ratio is None else f"{ratio:.2f}", *[rate(flops or 0, values[fw]) for fw in fws]]
    body = [row(x["path"], x["kind"], x["flops_per_image"], {fw: ex.ms(fw, x["path"]) for fw in fws})
            for x in first["layers"]]
    body.append(row(SUM, "", None, {fw: ex.sum_ms(fw) for fw in fws}))
    body.append(row(NETWORK, "", first["flops_per_image"], {fw: ex.network_ms(fw) for fw in fws}))
    body.append([REMAINDER, "", "", *[f"{ms_text(ex.remainder_ms(fw))} ({pct(ex.remainder_ms(fw), ex.network_ms(fw))})"
                                      for fw in fws], "", "", *["" for _ in fws]])
    return header, body


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:+.0f} %" if whole else "-"


def summaries(ex: Explained) -> list[str]:
    """For each framework slower than the fastest network: how much slower, and the layers that explain most of it
    ("tensorflow vs torch on vgg16 train_step: +190 ms per step (+65 %), 71 % of it in block1.conv2.conv (40 %),
    ..."), with the share of the unattributed remainder."""
    if len(ex.frameworks) < 2:
        return []
    fastest = min(ex.frameworks, key=ex.network_ms)
    lines = []
    for fw in sorted(ex.frameworks, key=ex.network_ms, reverse=True):
        if fw == fastest:
            continue
        lines.append(difference(ex, fw, fastest))
    return lines


def difference(ex: Explained, slow: str, fast: str) -> str:
    """One sentence: how much slower ``slow`` runs the phase than ``fast``, and which layers explain it."""
    total = ex.network_ms(slow) - ex.network_ms(fast)
    head = (f"{slow} vs {fast} on {ex.model} {ex.phase}: {total:+.1f} ms per step "
            f"({pct(total, ex.network_ms(fast))})")
    if total <= 0:
        return head
    # largest difference first, ties in forward order
    diffs = [((ex.ms(slow, p) or 0.0) - (ex.ms(fast, p) or 0.0), p) for p in ex.paths]
    diffs.sort(key=lambda dp: -dp[0])
    named, covered = [], 0.0
    for d, path in diffs:
        if d <= 0 or len(named) == SHOWN_LAYERS or covered >= 0.5 * total:
            break
        named.append(f"{path} ({100 * d / total:.0f} %)")
        covered += d
    rest = ex.remainder_ms(slow) - ex.remainder_ms(fast)
    if abs(rest) > total:   # the nodes' sums miss the networks' steps by more than the difference itself
        return (f"{head}; the layers do not account for it: the unattributed remainder differs by {rest:+.1f} ms "
                f"({ms_text(ex.remainder_ms(slow))} ms in {slow}, {ms_text(ex.remainder_ms(fast))} ms in {fast})")
    where = f", {100 * covered / total:.0f} % of it in {', '.join(named)}" if named else ""
    return f"{head}{where}; unattributed remainder {100 * rest / total:+.0f} % of it"


SETTINGS = ("precision", "compile", "layout", "tf32", "autotune", "deterministic", "world_size")


def csv_rows(ex: Explained) -> list[dict[str, Any]]:
    """explain.csv: a row per framework and node, then its (sum of layers), (network) and (unattributed) rows."""
    out: list[dict[str, Any]] = []
    phases = ("forward",) if ex.phase == "forward" else ("forward", ex.phase)
    for payload in ex.payloads:
        fw = payload["framework"]
        common = {"model": ex.model, "phase": ex.phase, "framework": fw, "framework_version": payload.get("framework_version"),
                  "device": payload.get("device"), "device_name": payload.get("device_name"),
                  "batch_size": payload["batch_size"], "threads": payload.get("threads"), "method": payload["method"],
                  **{k: payload.get("execution", {}).get(k) for k in SETTINGS}}
        for layer in payload["layers"]:
            row = {**common, "layer": layer["path"], "kind": layer["kind"], "training_only": layer["training_only"],
                   "input_shape": "x".join(map(str, layer["input_shape"])),
                   "output_shape": "x".join(map(str, layer["output_shape"])),
                   "flops_per_image": layer["flops_per_image"], "params": layer["params"]}
            for phase in phases:
                row.update(timing_columns(phase, layer.get(phase)))
            row.update(derived(row, ex.phase, layer["flops_per_image"], payload["batch_size"]))
            out.append(row)
        network = {**common, "layer": NETWORK, "flops_per_image": payload["flops_per_image"]}
        for phase in phases:
            network.update(timing_columns(phase, payload["network"][phase]))
        network.update(derived(network, ex.phase, payload["flops_per_image"], payload["batch_size"]))
        total = {**common, "layer": SUM, **{f"{ph}_ms": ex.sum_ms(fw, ph) for ph in phases}}
        rest = {**common, "layer": REMAINDER, **{f"{ph}_ms": ex.remainder_ms(fw, ph) for ph in phases}}
        out.extend([total, network, rest])
    return out


def timing_columns(phase: str, timing: dict[str, Any] | None) -> dict[str, Any]:
    keys = ("ms", "ms_ci_low", "ms_ci_high", "n", "stable", "first_step_s")
    return {f"{phase}_{k}": None if timing is None else timing.get(k) for k in keys}


def derived(row: dict[str, Any], phase: str, flops: int, batch: int) -> dict[str, Any]:
    """backward_ms (the phase minus the forward) and the phase's achieved GFLOP/s."""
    step, forward = row.get(f"{phase}_ms"), row.get("forward_ms")
    out: dict[str, Any] = {}
    if phase != "forward":
        out["backward_ms"] = step - forward if step is not None and forward is not None else None
    out["gflops"] = flops * PASS_FACTOR[phase] * batch / (step / 1000) / 1e9 if step and flops else None
    return out


def write_csv(ex: Explained, path: Path) -> None:
    rows = csv_rows(ex)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buffer.getvalue())


def remainder_lines(ex: Explained) -> list[str]:
    """Per framework: how much of the network's step the nodes account for, and by which method."""
    lines = []
    for p in ex.payloads:
        fw = p["framework"]
        profiled = p.get("profiled_step_ms", {}).get(ex.phase)
        seen = f"; the profiled step {ms_text(profiled)} ms" if profiled is not None else ""
        lines.append(f"{fw}: network {ms_text(ex.network_ms(fw))} ms, layers {ms_text(ex.sum_ms(fw))} ms, unattributed "
                     f"{ms_text(ex.remainder_ms(fw))} ms ({pct(ex.remainder_ms(fw), ex.network_ms(fw))} of the network)"
                     f" [{p['method']}{seen}]")
    return lines


def unstable(ex: Explained) -> list[str]:
    """The series that did not reach their precision target, by framework (a note under the table)."""
    out = []
    for payload in ex.payloads:
        bad = [layer["path"] for layer in payload["layers"]
               if any(t is not None and t["stable"] is False for t in (layer.get(ph) for ph in ("forward", ex.phase)))]
        if bad:
            out.append(f"{payload['framework']}: {len(bad)} of {len(payload['layers'])} nodes short of the precision "
                       f"target ({', '.join(bad[:4])}{', ...' if len(bad) > 4 else ''})")
    return out


def load(payloads: Sequence[dict[str, Any]], model: str, phase: str) -> Explained:
    """Splits worker results into the timed and the failed."""
    ok = [p for p in payloads if "layers" in p]
    failed = {p["framework"]: p.get("error", "no result") for p in payloads if "layers" not in p}
    return Explained(model, phase, ok, failed)
