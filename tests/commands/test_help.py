"""The command line helps: a bare `convbench` lists the commands, `--version`, one error prefix, every option's help
text with its default, and one parser (and message) for every number option."""
from __future__ import annotations

import argparse
import re

import pytest
from helpers import run_cli

from harness import __version__
from harness.commands import args as types
from harness.commands.cli import COMMANDS, build_parser
from harness.devices import Device
from harness.errors import ConvbenchError
from harness.orchestrator.plan import DIRECT
from harness.settings import RunSettings

PARSER = build_parser()
SUBCOMMANDS = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices
# what a run option's default is when the option is absent: RunSettings' own (threads: all cores, said in words)
RUN_DEFAULTS = {k: getattr(RunSettings, k) for k in DIRECT if k != "threads"}
NUMBER_TYPES = {types.whole_number, types.positive_int, types.non_negative_int, types.finite_float, types.positive_float,
                types.non_negative_float, types.percent_arg, types.alpha_arg, types.seconds_or_off}


def options() -> list[tuple[str, argparse.Action]]:
    return [(command, action) for command, parser in SUBCOMMANDS.items() for action in parser._actions
            if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction)]


def shown(value: object) -> str:
    """A default as a help text writes it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return value.name if isinstance(value, Device) else str(value)


@pytest.mark.parametrize("command, action", options(), ids=lambda x: x if isinstance(x, str) else x.dest)
def test_every_option_says_what_it_does_and_its_default(command, action):
    text = (action.help or "").replace("%%", "%")
    assert text.strip(), f"convbench {command} {'/'.join(action.option_strings) or action.dest} has no help text"
    if not action.option_strings or action.required or action.nargs == 0:   # positional, required, or a flag
        return
    assert "default" in text, f"convbench {command} {action.option_strings[0]}: help does not say its default"
    for default in (action.default, RUN_DEFAULTS.get(action.dest) if command == "run" else None):
        if default not in (None, [], False):
            assert shown(default) in text, f"convbench {command} {action.option_strings[0]}: default {default!r} not said"


def test_frameworks_default_is_the_installed_ones():
    for command in ("run", "verify", "doctor"):
        action = next(a for a in SUBCOMMANDS[command]._actions if a.dest == "frameworks")
        assert "every installed one" in action.help and "available" not in action.help
    data_dir = next(a for a in SUBCOMMANDS["run"]._actions if a.dest == "data_dir").help
    assert "$CONVBENCH_DATA" in data_dir and "~/.cache/convbench" in data_dir and "downloaded" in data_dir


number_options = [(c, a) for c, a in options() if a.type in NUMBER_TYPES]


@pytest.mark.parametrize("command, action", number_options, ids=lambda x: x if isinstance(x, str) else x.dest)
def test_every_number_option_has_the_one_parser_and_message(command, action):
    positional = [] if command in ("run", "verify", "list", "plugins", "doctor") else ["a", "b"][:len(
        [a for a in SUBCOMMANDS[command]._actions if not a.option_strings])]
    required = [x for a in SUBCOMMANDS[command]._actions if a.required and a.option_strings for x in (a.option_strings[0], "x")]
    with pytest.raises(ConvbenchError) as err:
        PARSER.parse_args([command, *positional, *required, action.option_strings[0], "many"])
    whole = action.type in {types.whole_number, types.positive_int, types.non_negative_int}
    expected = ("expected seconds or off" if action.type is types.seconds_or_off
                else "expected a whole number" if whole else "expected a number")
    assert f"argument {action.option_strings[0]}: {expected}, got 'many'" in str(err.value)


def test_no_option_parses_numbers_with_argparse_bare_types():
    """float/int as an argparse type answer "invalid float value": every number goes through harness.commands.args."""
    assert not [(c, a.dest) for c, a in options() if a.type in (float, int)]
    assert len(number_options) > 20


@pytest.mark.parametrize("text, value", [("5", 5.0), ("5%", 5.0), (" 2.5% ", 2.5), ("0", 0.0)])
def test_percent(text, value):
    assert types.percent_arg(text) == value


@pytest.mark.parametrize("argv, message", [
    (["compare", "a", "b", "--threshold", "-5"], "argument --threshold: must not be negative, got -5"),
    (["compare", "a", "b", "--threshold", "nan%"], "argument --threshold: expected a finite number, got 'nan'"),
    (["compare", "a", "b", "--alpha", "1"], "argument --alpha: must be between 0 and 1, got 1"),
    (["run", "--momentum", "fast"], "argument --momentum: expected a number, got 'fast'"),
    (["run", "--weight-decay", "x"], "argument --weight-decay: expected a number, got 'x'"),
    (["run", "--target", "high"], "argument --target: expected a number, got 'high'"),
])
def test_range_messages(argv, message):
    with pytest.raises(ConvbenchError, match=message):
        PARSER.parse_args(argv)


@pytest.mark.parametrize("argv, message", [
    (["run", "--steps", "many"], "argument --steps: expected auto or a whole number of steps (1 or more), got 'many'"),
    (["run", "--steps", "0"], "argument --steps: expected auto or a whole number of steps (1 or more), got '0'"),
    (["run", "--precision-target", "0"], "argument --precision-target: must be above 0 and below 100"),
    (["run", "--precision-target", "x"], "argument --precision-target: expected a number, got 'x'"),
    (["run", "--budget", "soon"], "argument --budget: expected a duration such as 30m, 2h, 1h30m or 90s, got 'soon'"),
    (["run", "--budget", "0m"], "argument --budget: expected a duration"),
    (["run", "--budget", "m"], "argument --budget: expected a duration"),
    (["run", "--max-time", "0"], "argument --max-time: must be positive, got 0"),
])
def test_sampling_options_refuse_bad_values_in_one_line(argv, message):
    with pytest.raises(ConvbenchError, match=re.escape(message)):
        PARSER.parse_args(argv)


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400),
                                           ("1.5h", 5400), (" 45M ", 2700)])
def test_durations(text, seconds):
    assert types.duration_arg(text) == seconds


def test_steps_auto_or_a_number():
    assert (types.steps_arg("auto"), types.steps_arg("AUTO"), types.steps_arg("100")) == ("auto", "auto", 100)
    assert types.fraction_pct_arg("1%") == types.fraction_pct_arg("1") == 0.01


def test_history_takes_plural_options_and_the_singular_still_works():
    args = PARSER.parse_args(["history", "results", "--models", "lenet5,alexnet", "--framework", "torch"])
    assert (args.models, args.frameworks) == (["lenet5", "alexnet"], ["torch"])
    assert "--model " not in SUBCOMMANDS["history"].format_help()   # the alias works but is not advertised


@pytest.mark.e2e
def test_bare_convbench_lists_every_command_one_line_each():
    proc = run_cli()
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    listed = lines[lines.index("commands:") + 1:lines.index("commands:") + 1 + len(COMMANDS)]
    assert [line.split()[0] for line in listed] == list(COMMANDS)
    assert all(len(line.split()) > 2 for line in listed)   # the name and what it does, on its own line
    assert proc.stdout.startswith("usage: convbench") and "convbench COMMAND --help" in proc.stdout


@pytest.mark.e2e
def test_version():
    proc = run_cli("--version")
    assert (proc.returncode, proc.stdout) == (0, f"convbench {__version__}\n")


@pytest.mark.e2e
def test_one_error_prefix():
    """Was "convbench: error: convbench run: argument --lr: ...", two prefixes."""
    proc = run_cli("run", "--lr", "x")
    assert proc.returncode == 2
    assert proc.stderr == "convbench: error: argument --lr: expected a number, got 'x' (see 'convbench run --help')\n"
    proc = run_cli("frobnicate")
    assert proc.returncode == 2 and proc.stderr.startswith("convbench: error: argument COMMAND: invalid choice: 'frobnicate'")
    assert proc.stderr.count("convbench:") == 1
