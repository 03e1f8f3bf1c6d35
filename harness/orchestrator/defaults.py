"""What a run does with what it was not told, and with what it was told but does not read.

- No ``--frameworks``: the installed frameworks (``frameworks_to_run``); those left out are named, with why.
  Installed means here, where convbench runs (with ``--executor ray`` the nodes are expected to hold the same
  environment); a framework given its own ``--python`` counts as asked for.
- No ``--device``: cpu, on every machine. A run's device is what its command says, not what the machine happens to
  have: the same command measures the same thing on a laptop and on a GPU server, a cell's device never depends on
  which other frameworks are in the run (tensorflow-cpu, the ``tensorflow`` extra, never sees a GPU while torch
  does), and runs stay comparable in ``compare`` and ``history``. Where a framework sees a GPU the run's first line
  says so and how to use it (``device_note``), so nobody times a GPU box's CPU by accident.
- Options that the mode does not read are named in one warning line (``warn_ignored``); a plain-SGD optimizer
  with a nonzero momentum is refused (``check_plain_sgd``).
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Iterable

from harness.errors import ConvbenchError
from harness.frameworks import FrameworkSpec
from harness.orchestrator.probes import Probe
from harness.registry import Registry

# options only one mode reads: given in the other mode they are ignored, and the run says so
MODE_OPTIONS = {"train": ("epochs", "target", "lr", "schedule", "augment", "resume_from"),
                "speed": ("warmup", "steps", "precision_target", "max_time", "min_steps", "budget")}


def frameworks_to_run(asked: list[str] | None, registry: Registry[FrameworkSpec],
                      interpreter: Callable[[str], str | None]) -> tuple[list[str], dict[str, str]]:
    """(the run's frameworks, those left out: name -> why). ``--frameworks`` as given (one that cannot run fails the
    run with its ``unavailable`` rows); else each registered one that is installed here (its module is found; nothing
    is imported) or that has an interpreter of its own (``--python``: asked for, so its probe decides, and a broken
    one fails the run); the others are left out. None installed: one line, exit 2."""
    if asked:
        return [registry.get(name).name for name in asked], {}
    chosen, left_out = [], {}
    for spec in registry:
        installed, reason = (True, "") if interpreter(spec.name) else spec.installed()
        if installed:
            chosen.append(spec.name)
        else:
            left_out[spec.name] = reason
    if not chosen:
        raise ConvbenchError("no framework is installed: " + "; ".join(f"{n}: {why}" for n, why in left_out.items()))
    return chosen, left_out


def left_out_line(left_out: dict[str, str]) -> str:
    """The run's line about the frameworks it did not take (empty when none)."""
    if not left_out:
        return ""
    return ("  left out (not installed; --frameworks NAME requires one): "
            + "; ".join(f"{name}: {why}" for name, why in left_out.items()))


def warn_ignored(mode: str, given: Iterable[str]) -> None:
    """One line on stderr naming the options given that ``mode`` does not read (the run goes on without them)."""
    other = "speed" if mode == "train" else "train"
    ignored = [f"--{o.replace('_', '-')}" for o in MODE_OPTIONS[other] if o in set(given)]
    if ignored:
        print(f"convbench: warning: {', '.join(ignored)} {'applies' if len(ignored) == 1 else 'apply'} to {other} mode; "
              f"ignored in this {mode}-mode run", file=sys.stderr, flush=True)


def check_plain_sgd(momentum: float, given: dict[str, Any], from_file: dict[str, Any]) -> None:
    """``optimizer sgd`` is momentum 0: a nonzero momentum given as firmly (on the command line, or in the same recipe
    file) is a contradiction, refused rather than zeroed. A file's momentum under ``--optimizer sgd`` is overridden,
    as every command-line option overrides the file."""
    if momentum == 0:
        return
    if "momentum" in given:
        where = f"--momentum {momentum:g}"
    elif "momentum" in from_file and "optimizer" not in given:
        where = f"the recipe file's momentum {momentum:g}"
    else:
        return
    raise ConvbenchError(f"optimizer sgd is plain SGD (momentum 0), but {where} asks for momentum: drop one, or use "
                         "--optimizer momentum")


def device_note(probes: dict[str, Probe]) -> str:
    """For a run on cpu by default: the GPUs its frameworks see and how to use them ("" when none is seen)."""
    seen: dict[str, list[str]] = {}
    described: dict[str, str] = {}
    for name, probe in probes.items():
        for d in probe.devices if probe.available else ():
            if d["name"] != "cpu":
                seen.setdefault(d["name"], []).append(name)
                described.setdefault(d["name"], d.get("description") or "")
    if not seen:
        return ""
    first = min(seen, key=lambda n: (len(n), n))
    what = first + (f" ({described[first]})" if described[first] else "")
    more = f" and {len(seen) - 1} more GPU{'s' if len(seen) > 2 else ''}" if len(seen) > 1 else ""
    blind = [n for n, p in probes.items() if p.available and n not in seen[first]]
    caveat = f"; {', '.join(blind)} {'sees' if len(blind) == 1 else 'see'} no GPU" if blind else ""
    who = f"{', '.join(seen[first])} {'sees' if len(seen[first]) == 1 else 'see'}"
    return f" (the default; {who} {what}{more}{caveat}: --device {first} runs there)"
