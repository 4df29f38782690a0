"""The solve budget and ``KEY=VALUE`` method options as command-line arguments.

Not a subcommand: the problem CLIs (``serveplan/chain/cli.py``, ``serveplan/chain/simulate_cli.py``,
``serveplan/alpaserve/cli.py``) add these arguments to their parsers and build a
:class:`~serveplan.registry.Budget` from them, so every ``serveplan solve PROBLEM`` reads its budget the same way.
"""

from __future__ import annotations

import argparse

from serveplan.errors import InputError
from serveplan.registry import Budget


def add_budget_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--backend``, ``--time-limit``, ``--threads``, ``--rel-gap`` and ``--seed`` (a Budget's fields)."""
    parser.add_argument("--backend", default="highs", help="MILP backend for exact methods (default highs)")
    parser.add_argument("--time-limit", type=float, default=None, metavar="S", help="wall-clock limit, seconds")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="thread budget")
    parser.add_argument("--rel-gap", type=float, default=None, help="relative MIP gap for exact methods")
    parser.add_argument("--seed", type=int, default=0, help="seed for random methods (default 0)")


def add_option_argument(parser: argparse.ArgumentParser, help: str = "method option") -> None:
    """Add the repeatable ``--option/-o KEY=VALUE`` (read with :func:`parse_options`)."""
    parser.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE", help=help)


def parse_options(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs as a dict of strings (both sides stripped; the methods convert the values).

    Raises
    ------
    InputError
        A pair without ``=``.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError("options are KEY=VALUE", field="--option", value=pair)
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def budget_from_args(args: argparse.Namespace) -> Budget:
    """The Budget of arguments added by :func:`add_budget_arguments` and :func:`add_option_argument`."""
    return Budget(
        time_limit_s=args.time_limit,
        threads=args.threads,
        backend=args.backend,
        rel_gap=args.rel_gap,
        seed=args.seed,
        options=parse_options(args.option),
    )
