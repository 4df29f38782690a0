"""``serveplan show RESULTS``: a summary table of stored rows, mean ± std over seeds."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``show`` subcommand."""
    p = sub.add_parser(
        "show",
        help="summarise stored results (mean ± std over seeds, per method and grid point)",
        description="RESULTS is a results folder (results/<experiment>), a results.csv/.parquet, "
        "an experiment or suite config, or an experiment name under the results folder.",
    )
    p.add_argument("results", help="results folder, results file, config, or experiment name")
    p.add_argument("--metrics", help="comma-separated metrics (default: the config's metrics, objective, time)")
    p.add_argument("--by", help="comma-separated grouping columns (default: label and the grid axes)")
    p.add_argument("--results-root", type=Path, help="results folder (default: $SERVEPLAN_RESULTS or ./results)")
    p.add_argument("--errors", action="store_true", help="also list the messages of failed cases")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables (for docs)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one table per experiment (quietly stopping when the reader goes away, e.g. ``| head``)."""
    try:
        return _show(args)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not complain
        return 0


def _show(args: argparse.Namespace) -> int:
    from experiments.summary import load_results, markdown_table, render, summary_table

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    by = [b.strip() for b in args.by.split(",") if b.strip()] if args.by else None
    for res in load_results(args.results, args.results_root):
        print(f"== {res.name} ({len(res.rows)} rows)")
        table = summary_table(res, metrics, by)
        print(markdown_table(table) if args.markdown and not table.empty else render(table))
        if args.errors and "status" in res.rows:
            bad = res.rows[res.rows["status"] == "error"]
            for _, row in bad.iterrows():
                print(f"  error: {row.get('label')} seed {row.get('seed')}: {row.get('message')}")
        print()
    return 0
