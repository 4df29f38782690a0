"""``serveplan figures [NAME ...]``: draw paper figures from stored rows, running missing experiments first."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``figures`` subcommand."""
    p = sub.add_parser(
        "figures",
        help="draw figures (PNG + PDF + CSV) from result rows; runs missing experiments first",
        description="Each figure is a module in paper_figures/ (see paper_figures/README.md and INDEX.md).",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="figures to draw (default: all); or a dotted module")
    p.add_argument("--list", action="store_true", help="list the figures and the configs they read")
    p.add_argument("--index", action="store_true", help="print paper_figures/INDEX.md (configs, commands, run times)")
    p.add_argument("--out", type=Path, help="output folder (default: <results>/figures)")
    p.add_argument("--results", type=Path, help="results folder (default: $SERVEPLAN_RESULTS or ./results)")
    p.add_argument("--no-run", action="store_true", help="draw from the rows there are; never run experiments")
    p.add_argument("--executor", choices=("local", "serial", "dask"), default="local", help="for missing runs")
    p.add_argument("--workers", type=int, help="worker processes for missing runs (default: every core)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List or draw figures."""
    from experiments.figures import draw_figures, index_markdown, list_figures

    if args.index:
        print(index_markdown(args.results), end="")
        return 0
    if args.list:
        for f in list_figures():
            print(f"{f.name:<28} {', '.join(f.configs):<50} {f.summary}")
        return 0
    names = args.names or [f.name for f in list_figures()]
    paths = draw_figures(
        names,
        out_dir=args.out,
        results_root=args.results,
        run_missing=not args.no_run,
        executor=args.executor,
        workers=args.workers,
        progress=sys.stderr.isatty(),
    )
    for p in paths:
        print(p)
    return 0
