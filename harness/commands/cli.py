"""The ``convbench`` command line. User errors print one line and exit 2; tracebacks mean bugs.

A new command is a module in this package with ``add_parser(subparsers)`` and ``run(args, argv) -> int``,
named in ``COMMANDS``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import stat
import sys
from typing import NoReturn, Sequence

from harness.atomic import refused_write
from harness.errors import ConvbenchError

COMMANDS = ("run", "verify", "eval", "list", "plugins", "report", "compare", "doctor", "history")


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConvbenchError(f"{self.prog}: {message}")


def build_parser() -> Parser:
    parser = Parser(prog="convbench", description="Train and time classic CNNs identically across frameworks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"harness.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        take_as_interrupt("SIGTERM", "SIGHUP")
        args = build_parser().parse_args(argv)
        return importlib.import_module(f"harness.commands.{args.command}").run(args, argv)
    except ConvbenchError as exc:
        print(f"convbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("convbench: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:   # the disk refusing a write that no writer caught: one line, not a traceback
        failed = refused_write(exc)
        if failed is None:
            raise
        print(f"convbench: error: {failed}", file=sys.stderr)
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
