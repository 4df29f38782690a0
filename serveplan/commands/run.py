"""``serveplan run CONFIG``: run an experiment (or suite) config and store one row per case."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from serveplan.errors import InputError, ServeplanError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand."""
    p = sub.add_parser(
        "run",
        help="run an experiment config (grid x seeds x methods), resumable",
        description="Expand the config's grid, run every unfinished case in parallel, store rows under "
        "results/<experiment>/ (see docs/harness.md).",
    )
    p.add_argument("config", help="experiment or suite TOML (e.g. experiments/configs/quickstart.toml)")
    p.add_argument("--executor", choices=("local", "serial", "dask"), default="local",
                   help="local processes (default), this process only, or Dask distributed")  # fmt: skip
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.1:8786 (with --executor dask)")
    p.add_argument("--workers", type=int, help="worker processes (default: every core)")
    p.add_argument("--force", action="store_true", help="rerun finished cases too")
    p.add_argument("--limit-cases", type=int, metavar="N", help="only the first N cases of each experiment")
    p.add_argument("--results", type=Path, help="results folder (default: $SERVEPLAN_RESULTS or ./results)")
    p.add_argument("--no-figures", action="store_true", help="do not draw the config's figures")
    p.add_argument("--quiet", action="store_true", help="no progress bar, summary only")
    p.add_argument("--dry-run", action="store_true", help="count cases (total, finished, to run); run none")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the config; exit 0 when every case finished without error, 1 otherwise."""
    from experiments.config import load_config
    from experiments.figures import draw_figures
    from experiments.runner import run_config
    from serveplan.paths import results_dir

    if args.workers is not None and args.workers < 1:
        raise InputError("must be at least 1", field="--workers", value=args.workers)
    if args.limit_cases is not None and args.limit_cases < 1:
        raise InputError("must be at least 1", field="--limit-cases", value=args.limit_cases)
    if args.scheduler and args.executor != "dask":
        raise InputError("--scheduler needs --executor dask", field="--scheduler", value=args.scheduler)
    if args.limit_cases is None and os.environ.get("SERVEPLAN_LIMIT_CASES"):
        args.limit_cases = int(os.environ["SERVEPLAN_LIMIT_CASES"])
    config = load_config(args.config)
    root = args.results or results_dir()
    if args.dry_run:
        return _dry_run(config, root, args.limit_cases, args.force)
    progress = not args.quiet and sys.stderr.isatty()
    summaries = run_config(
        config,
        executor=args.executor,
        workers=args.workers,
        scheduler=args.scheduler,
        force=args.force,
        limit_cases=args.limit_cases,
        progress=progress,
        results_root=root,
    )
    failed = 0
    for s in summaries:
        print(
            f"{s.experiment}: {s.total} cases, {s.skipped} already done, {s.ran} run, {s.errors} errors "
            f"in {s.wall_s:.1f} s -> {s.root}"
        )
        for msg in s.error_messages[:5]:
            print(f"  error: {msg}")
        if len(s.error_messages) > 5:
            print(f"  ... and {len(s.error_messages) - 5} more (serveplan show {s.root})")
        failed += s.errors
    if summaries:
        print(f"summary: serveplan show {summaries[0].root if len(summaries) == 1 else args.config}")
    if config.figures and not args.no_figures:
        for name in config.figures:
            try:
                paths = draw_figures([name], out_dir=root / "figures", results_root=root, run_missing=False)
            except ServeplanError as exc:  # the rows are stored; a figure that cannot be drawn is not fatal
                print(f"figure {name} not drawn: {exc}")
                continue
            for path in paths:
                print(f"figure: {path}")
    return 1 if failed else 0


def _dry_run(config, root: Path, limit_cases: int | None, force: bool) -> int:
    from experiments.config import experiments_of
    from experiments.grid import expand_cases, grid_points
    from experiments.store import ResultStore

    for exp in experiments_of(config):
        cases = expand_cases(exp)[:limit_cases]
        done = set() if force else ResultStore(root / exp.name).finished_ids()
        finished = sum(c.case_id in done for c in cases)
        print(
            f"{exp.name}: {len(grid_points(exp))} grid points x {len(exp.seeds)} seeds x {len(exp.methods)} methods"
            f" -> {len(cases)} cases, {finished} finished, {len(cases) - finished} to run -> {root / exp.name}"
        )
    return 0
