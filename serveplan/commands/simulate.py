"""``serveplan simulate PROBLEM ...``: evaluate a placement on a workload with a simulator."""

from __future__ import annotations

import argparse
import importlib
import importlib.util

from serveplan.commands.solve import PROBLEM_CLI


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``simulate`` and each problem's parser under it."""
    p = sub.add_parser("simulate", help="simulate a placement on a workload")
    problems = p.add_subparsers(dest="problem", metavar="PROBLEM")
    for module in PROBLEM_CLI.values():
        if importlib.util.find_spec(module) is not None:
            mod = importlib.import_module(module)
            if hasattr(mod, "register_simulate"):
                mod.register_simulate(problems)
    p.set_defaults(func=lambda args: p.print_help() or 1)
