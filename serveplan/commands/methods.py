"""``serveplan methods``: every registered method of every problem."""

from __future__ import annotations

import argparse

from serveplan.registry import PROBLEMS, list_methods


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``methods`` subcommand."""
    p = sub.add_parser("methods", help="list placement methods by problem")
    p.add_argument("problem", nargs="?", choices=PROBLEMS, help="only this problem")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the method table."""
    for m in list_methods(args.problem):
        name = m.name if m.param is None else f"{m.name}:{m.param}"
        print(f"{m.problem:<10} {name:<22} {m.kind:<10} {m.summary}")
    return 0
