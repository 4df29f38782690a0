"""``serveplan solve PROBLEM ...``: run one method on one instance file.

Each problem package contributes its own sub-subcommand through ``register_solve(subparsers)`` in
``serveplan/<problem>/cli.py``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util

PROBLEM_CLI = {"chain": "serveplan.chain.cli", "alpaserve": "serveplan.alpaserve.cli"}


def add_problem_command(sub: argparse._SubParsersAction, name: str, help_text: str, hook: str) -> None:
    """Add command ``name`` whose sub-commands are the problems exposing ``hook`` in their cli module."""
    p = sub.add_parser(name, help=help_text)
    problems = p.add_subparsers(dest="problem", metavar="PROBLEM")
    for module in PROBLEM_CLI.values():
        if importlib.util.find_spec(module) is not None:
            mod = importlib.import_module(module)
            if hasattr(mod, hook):
                getattr(mod, hook)(problems)
    p.set_defaults(func=lambda args: p.print_help() or 1)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``solve`` and each problem's parser under it."""
    add_problem_command(sub, "solve", "solve one instance with one method", "register_solve")
