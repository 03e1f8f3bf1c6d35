"""PNG plots for ``convbench report``: matplotlib on the Agg backend, no pyplot global state.

Inputs are plain lists/dicts prepared by harness.results.report; each function writes one PNG and returns
its path.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.atomic import write_atomic
from harness.results.colours import colour


def _figure(n_panels: int, width: float = 4.2, height: float = 3.3) -> tuple[Any, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    cols = min(3, n_panels)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]
    return fig, axes


def _save(fig: Any, path: Path) -> Path:
    return write_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=110))


def accuracy_vs_time(curves: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Test accuracy against cumulative training time, one panel per model, one line per framework and
    seed (same colour per framework). ``curves``: dicts with model, framework, seed, time_s, accuracy."""
    models = list(dict.fromkeys(c["model"] for c in curves))
    frameworks = list(dict.fromkeys(c["framework"] for c in curves))
    fig, axes = _figure(max(1, len(models)))
    for ax, model in zip(axes, models):
        labelled: set[str] = set()
        for c in (c for c in curves if c["model"] == model):
            fw = c["framework"]
            label = fw if fw not in labelled else None
            labelled.add(fw)
            ax.plot(c["time_s"], [100 * a for a in c["accuracy"]], marker="o", markersize=3, linewidth=1.4,
                    color=colour(fw, frameworks), alpha=0.85, label=label)
        ax.set_title(model)
        ax.set_xlabel("training time (s, evaluation excluded)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if not models:
        axes[0].text(0.5, 0.5, "no per-epoch history", ha="center", va="center", transform=axes[0].transAxes)
    fig.suptitle("Test accuracy vs wall-clock training time (one line per framework and seed)")
    return _save(fig, path)


def _grouped_bars(ax: Any, groups: Mapping[str, Mapping[str, tuple[float, float, float]]],
                  frameworks: Sequence[str], unit: str) -> None:
    """Bars per framework within each group; values are (height, err_low, err_high)."""
    names = list(groups)
    width = min(0.3, 0.8 / max(1, len(frameworks)))
    heights = []
    for i, fw in enumerate(frameworks):
        xs, ys, lo, hi = [], [], [], []
        for g, name in enumerate(names):
            if fw in groups[name]:
                h, el, eh = groups[name][fw]
                xs.append(g + width * (i - (len(frameworks) - 1) / 2))
                ys.append(h)
                lo.append(el)
                hi.append(eh)
        if xs:
            err = [lo, hi] if any(lo) or any(hi) else None
            ax.bar(xs, ys, width * 0.92, yerr=err, capsize=3, color=colour(fw, frameworks), label=fw,
                   error_kw={"elinewidth": 1, "ecolor": "#333333"})
            heights += ys
    ax.set_xticks(range(len(names)), names, rotation=20 if len(names) > 4 else 0)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel(unit)
    positive = [h for h in heights if h > 0]
    if positive and max(positive) / min(positive) > 50:
        ax.set_yscale("log")
        ax.set_ylabel(f"{unit}, log scale")
    ax.grid(axis="y", alpha=0.3)


def _figure_legend(fig: Any, axes: Sequence[Any]) -> None:
    """One legend for all panels, below them, so it never hides a bar."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncols=len(entries), fontsize=9)


def train_time_bars(bars: Mapping[str, Mapping[str, tuple[float, float]]], path: Path) -> Path:
    """Training time per model (groups) and framework (bars): mean with +/- std error bars over seeds.
    ``bars``: model -> framework -> (mean seconds, std seconds; 0 for one seed)."""
    frameworks = list(dict.fromkeys(f for per in bars.values() for f in per))
    groups = {m: {f: (mean, std, std) for f, (mean, std) in per.items()} for m, per in bars.items()}
    fig, (ax,) = _figure(1, width=max(5.0, 1.4 * len(bars) + 2), height=3.8)
    _grouped_bars(ax, groups, frameworks, "training time (s)")
    _figure_legend(fig, [ax])
    ax.set_title("Training time (mean, error bars: std over seeds)")
    return _save(fig, path)


def speed_bars(speed: Mapping[str, Mapping[str, Mapping[str, tuple[float, float, float]]]], path: Path) -> Path:
    """Median step time per phase (panels), model (groups) and framework (bars), error bars = the
    distribution-free 95% CI of the median. ``speed``: phase -> model -> framework -> (median, lo, hi) ms."""
    phases = list(speed)
    frameworks = list(dict.fromkeys(f for per in speed.values() for m in per.values() for f in m))
    n_models = max((len(v) for v in speed.values()), default=1)
    fig, axes = _figure(max(1, len(phases)), width=max(4.2, 1.3 * n_models + 2), height=3.6)
    for ax, phase in zip(axes, phases):
        groups = {m: {f: (med, med - lo, hi - med) for f, (med, lo, hi) in per.items()}
                  for m, per in speed[phase].items()}
        _grouped_bars(ax, groups, frameworks, "median step time (ms)")
        ax.set_title(phase)
    _figure_legend(fig, axes)
    fig.suptitle("Median step time (error bars: 95% CI of the median)")
    return _save(fig, path)
