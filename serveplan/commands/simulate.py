"""``serveplan simulate PROBLEM ...``: evaluate a placement on a workload with a simulator."""

from __future__ import annotations

import argparse

from serveplan.commands.solve import add_problem_command


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``simulate`` and each problem's parser under it."""
    add_problem_command(sub, "simulate", "simulate a placement on a workload", "register_simulate")
