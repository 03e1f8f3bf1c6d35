"""The ``convbench`` command line. User errors print one line, ``convbench: error: ...``, and exit 2; tracebacks
mean bugs. A bare ``convbench`` lists the commands (exit 0); ``convbench --version`` prints the version.

A new command is a module in this package with ``add_parser(subparsers)`` and ``run(args, argv) -> int``,
named in ``COMMANDS``; its options' help texts say their defaults (tests/commands/test_help.py checks).
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import stat
import sys
from typing import NoReturn, Sequence

from harness import __version__
from harness.atomic import refused_write
from harness.errors import ConvbenchError

COMMANDS = ("run", "verify", "eval", "list", "plugins", "report", "compare", "doctor", "explain", "history", "export")
PREFIX = "convbench: error: "   # the one prefix of every error line


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """argparse's complaint as a ConvbenchError: printed after the one prefix, with where the options are."""
        raise ConvbenchError(f"{message} (see '{self.prog} --help')")


def build_parser() -> Parser:
    parser = Parser(prog="convbench", usage="convbench [--version] COMMAND [OPTIONS]",
                    description="Train and time classic CNNs identically across frameworks.",
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"convbench {__version__}",
                        help="print convbench's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser, prog="convbench",
                                help=argparse.SUPPRESS)   # listed one line each in the epilog instead
    for name in COMMANDS:
        importlib.import_module(f"harness.commands.{name}").add_parser(sub)
    width = max(map(len, COMMANDS))
    parser.epilog = "commands:\n" + "".join(f"  {a.dest:{width}}  {a.help}\n" for a in sub._choices_actions) + \
        "\nconvbench COMMAND --help lists a command's options and their defaults."
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        take_as_interrupt("SIGTERM", "SIGHUP")
        parser = build_parser()
        if not argv:   # a bare `convbench`: what it can do, not a complaint
            print(parser.format_help(), end="")
            return 0
        args = parser.parse_args(argv)
        return importlib.import_module(f"harness.commands.{args.command}").run(args, argv)
    except ConvbenchError as exc:
        print(f"{PREFIX}{exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("convbench: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:   # the disk refusing a write that no writer caught: one line, not a traceback
        failed = refused_write(exc)
        if failed is None:
            raise
        print(f"{PREFIX}{failed}", file=sys.stderr)
        return failed.exit_code


def take_as_interrupt(*names: str) -> None:
    """Every command, `run` included, takes SIGTERM and SIGHUP (a dropped ssh session) as Ctrl-C: a resumable
    folder, exit 130. A signal this process was started ignoring stays ignored (``nohup convbench run ...``)."""
    for name in names:
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    if signum == getattr(signal, "SIGHUP", None):
        _silence_hung_up_terminal()
    raise KeyboardInterrupt


def _silence_hung_up_terminal() -> None:
    """After a hang-up, writing to the terminal fails (EIO): what is left to say (the table, the resume command)
    goes to /dev/null instead, so the run still ends as interrupted. Files and pipes keep their output."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        try:
            if stat.S_ISCHR(os.fstat(fd).st_mode) and not os.isatty(fd):   # a terminal no more (or /dev/null)
                os.dup2(devnull, fd)
        except OSError:
            pass
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
