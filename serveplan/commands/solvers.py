"""``serveplan solvers``: every MILP backend, available or not, its version and how to install it."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``solvers`` subcommand."""
    p = sub.add_parser("solvers", help="list MILP solver backends and their availability")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the backend table."""
    from serveplan.solvers import backend_table  # imported here: it loads pyomo and OR-Tools

    rows = backend_table()
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
        return 0
    print(f"{'backend':<14} {'available':<10} {'version':<12} details")
    for r in rows:
        details = r.description if r.available else f"{r.reason}; install: {r.install}"
        print(f"{r.name:<14} {'yes' if r.available else 'no':<10} {r.version or '-':<12} {details}")
    return 0
