"""The ``serveplan`` command line: one entry point, one module per subcommand.

Each subcommand lives in ``serveplan/commands/<name>.py`` and exposes ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int`` as the handler. Errors that users can cause
(:class:`serveplan.errors.ServeplanError`) print as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from serveplan import __version__
from serveplan.errors import ServeplanError

COMMAND_MODULES = (
    "serveplan.commands.solvers",
    "serveplan.commands.methods",
    "serveplan.commands.solve",
    "serveplan.commands.simulate",
    "serveplan.commands.run",
    "serveplan.commands.show",
    "serveplan.commands.figures",
    "serveplan.commands.bench",
    "serveplan.commands.export",
    "serveplan.commands.plan",
    "serveplan.commands.profile",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand that exists in this installation."""
    parser = argparse.ArgumentParser(
        prog="serveplan",
        description="Place deep-learning models on serving clusters: exact MILPs, heuristics, simulators.",
    )
    parser.add_argument("--version", action="version", version=f"serveplan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except ServeplanError as exc:
        print(f"serveplan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("serveplan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
