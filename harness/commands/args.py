"""argparse types shared by the commands: each turns bad text into argparse's one-line error.

Every number option goes through ``whole_number`` or ``finite_float`` (one parser, one message: "expected a
number, got 'x'"), then its range check ("must be positive, got 0")."""
from __future__ import annotations

import argparse
import math
from typing import Any, Callable

from harness.devices import Device, parse_device
from harness.errors import ConvbenchError


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive_int(text: str) -> int:
    if (value := whole_number(text)) < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    if (value := whole_number(text)) < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def finite_float(text: str) -> float:
    """The one parser of a real-number option: inf and nan are refused like any other non-number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    if not (value := finite_float(text)) > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def non_negative_float(text: str) -> float:
    if (value := finite_float(text)) < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def seconds_or_off(text: str) -> float:
    """Seconds, or ``off`` (0: no limit)."""
    if text.strip().lower() == "off":
        return 0.0
    try:
        value = finite_float(text)
    except argparse.ArgumentTypeError:   # the word it also takes, in the message
        raise argparse.ArgumentTypeError(f"expected seconds or off, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds (0 or more) or off, got {text}")
    return value


def device_arg(text: str) -> Device:
    """``cpu``, ``cuda`` or ``cuda:N`` (``cuda`` is ``cuda:0``)."""
    try:
        return parse_device(text)
    except ConvbenchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def on_off(text: str) -> bool:
    """``on`` / ``off`` -> True / False."""
    value = {"on": True, "off": False}.get(text.strip().lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return value


def name_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return names


def names_once(text: str) -> list[str]:
    """``name_list`` with each name once (--frameworks, --models): a name given twice would make two cells of one
    name, the second's files and row replacing the first's."""
    names = name_list(text)
    twice = [n for n in dict.fromkeys(names) if names.count(n) > 1]
    if twice:
        raise argparse.ArgumentTypeError(f"{', '.join(twice)} given twice in {text!r}")
    return names


def sweep_of(parse: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """An option that takes one value or a comma-separated sweep of them (``32,64,128``): a list of ``parse``'s
    values, each checked by it, none given twice. One value is a list of one (the run then is exactly as before)."""
    def parse_list(text: str) -> list[Any]:
        parts = [p.strip() for p in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"expected a value or a comma-separated list of values, got {text!r}")
        values = [parse(p) for p in parts]
        twice = [p for i, p in enumerate(parts) if values[i] in values[:i]]
        if twice:
            raise argparse.ArgumentTypeError(f"{twice[0]} given twice in {text!r}")
        return values
    return parse_list


def one_of(*choices: str) -> Callable[[str], str]:
    """A choice, for options that also take comma-separated sweeps (argparse's ``choices`` sees the whole list)."""
    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text
    return parse


def add_interpreter_options(parser: argparse.ArgumentParser) -> None:
    """--python FRAMEWORK=PATH (repeatable) and --config FILE: the interpreter of each framework's workers."""
    parser.add_argument("--python", action="append", metavar="FRAMEWORK=PATH",
                        help="run FRAMEWORK's workers with this interpreter (repeatable; also $CONVBENCH_PYTHON_<FW> "
                             "and the [python] table of --config; default: this convbench's own interpreter)")
    parser.add_argument("--config", metavar="FILE.toml",
                        help="config file with a [python] table (default: $CONVBENCH_CONFIG, else none)")


def slurm_time_arg(text: str) -> int:
    """A Slurm job time limit, minutes or [D-]H:MM:SS -> whole minutes."""
    from harness.orchestrator.slurm import parse_time
    try:
        return parse_time(text)
    except ConvbenchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_slurm_options(parser: argparse.ArgumentParser) -> None:
    """--executor slurm's options (also the [slurm] table of --config, which they override)."""
    parser.add_argument("--slurm-partition", metavar="NAME", help="slurm: sbatch --partition (default: the cluster's)")
    parser.add_argument("--slurm-time", type=slurm_time_arg, metavar="MIN|H:MM:SS",
                        help="slurm: each job's time limit, sbatch --time (default 60 minutes; --resume may raise it)")
    parser.add_argument("--slurm-gpus-per-task", type=positive_int, metavar="N",
                        help="slurm, GPU runs: sbatch --gpus-per-task; the cell runs on the first (default 1)")
    parser.add_argument("--slurm-account", metavar="NAME", help="slurm: sbatch --account (default: yours)")
    parser.add_argument("--slurm-folder", metavar="DIR",
                        help="slurm: submitit's folder of job scripts and logs (default: RUN_DIR/slurm)")
    parser.add_argument("--slurm-cluster", choices=("slurm", "local"), help=argparse.SUPPRESS)   # local: the test mode


def percent_arg(text: str) -> float:
    """'5%' or '5' -> 5.0 (0 or more)."""
    return non_negative_float(text.strip().removesuffix("%"))


def alpha_arg(text: str) -> float:
    """A significance level strictly between 0 and 1."""
    if not 0 < (value := finite_float(text)) < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value




def steps_arg(text: str) -> int | str:
    """``auto`` (adaptive sampling) or a fixed number of timed steps (1 or more)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto or a whole number of steps (1 or more), got {text!r}") from None


def fraction_pct_arg(text: str) -> float:
    """'1%' or '1' -> 0.01: a percentage above 0 and below 100, as a fraction."""
    value = percent_arg(text)
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"must be above 0 and below 100 (a percentage), got {text}")
    return value / 100


DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def duration_arg(text: str) -> float:
    """Seconds from '90', '90s', '30m', '2h' or '1h30m' (above 0)."""
    rest, total, bad = text.strip().lower(), 0.0, argparse.ArgumentTypeError(
        f"expected a duration such as 30m, 2h, 1h30m or 90s, got {text!r}")
    if not rest:
        raise bad
    try:
        if rest[-1].isdigit() or rest[-1] == ".":
            total = float(rest)
        else:
            number = ""
            for ch in rest:
                if ch in DURATION_UNITS:
                    if not number:
                        raise bad
                    total += float(number) * DURATION_UNITS[ch]
                    number = ""
                else:
                    number += ch
    except ValueError:
        raise bad from None
    if not (math.isfinite(total) and total > 0):
        raise bad
    return total
