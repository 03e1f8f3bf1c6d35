"""The command line: one thin module per ``convbench`` command (arguments in, text and an exit code out).

Each module has ``add_parser(subparsers)`` and ``run(args, argv) -> int``; ``cli`` assembles them. The work
itself is done by the orchestrator, the results package or the model package.
"""
