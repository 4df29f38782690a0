"""``serveplan solve PROBLEM ...``: run one method on one instance file.

Each problem package contributes its own sub-subcommand through ``register_solve(subparsers)`` in
``serveplan/<problem>/cli.py``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util

PROBLEM_CLI = {"chain": "serveplan.chain.cli", "alpaserve": "serveplan.alpaserve.cli"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``solve`` and each problem's parser under it."""
    p = sub.add_parser("solve", help="solve one instance with one method")
    problems = p.add_subparsers(dest="problem", metavar="PROBLEM")
    for module in PROBLEM_CLI.values():
        if importlib.util.find_spec(module) is not None:
            mod = importlib.import_module(module)
            if hasattr(mod, "register_solve"):
                mod.register_solve(problems)
    p.set_defaults(func=lambda args: p.print_help() or 1)
