"""``serveplan bench solvers|sim|placement|heuristics``: benchmarks with machine info and ratios vs a baseline.

``bench solvers`` runs a solver suite (``experiments/bench_suites/*.toml``; see docs/harness.md).
The other topics dispatch to the problem packages: for each problem, the function ``bench_<topic>`` of
``serveplan.<problem>.bench``, else ``run_benchmark`` of ``serveplan.<problem>.bench_<topic>``. A
benchmark function returns a list of row dicts (its own ratios vs the baseline it measured in the same
call); it is called with ``quick=True`` when it takes ``quick`` and ``--quick`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOPICS = ("sim", "placement", "heuristics", "milp")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``bench`` and its topics."""
    p = sub.add_parser("bench", help="benchmarks: solvers (MILP backends), sim, placement, heuristics")
    topics = p.add_subparsers(dest="topic", metavar="TOPIC")
    s = topics.add_parser("solvers", help="every backend on a suite of MILPs: time to optimality, gaps, profile")
    s.add_argument("--suite", default="tiny", help="suite name in experiments/bench_suites/ or a TOML path")
    s.add_argument("--time-limit", type=float, metavar="S", help="per-solve limit (default: the suite's)")
    s.add_argument("--threads", type=int, metavar="N", help="thread budget of every solver (default: the suite's)")
    s.add_argument("--backends", nargs="+", metavar="B", help="backends, or 'all' available (default: the suite's)")
    s.add_argument("--mps", nargs="+", default=[], metavar="FILE", help="also benchmark these MPS/LP files")
    s.add_argument("--out", type=Path, help="output folder (default: <results>/bench/<suite>)")
    s.add_argument("--markdown", action="store_true", help="print the tables as Markdown (for docs/benchmarks.md)")
    s.set_defaults(func=run_solvers)
    for topic in TOPICS:
        t = topics.add_parser(topic, help=f"{topic} benchmarks of every problem package that provides one")
        t.add_argument("--problem", choices=("chain", "alpaserve"), help="only this problem")
        t.add_argument("--quick", action="store_true", help="smaller sizes, where the benchmark supports it")
        t.set_defaults(func=run_topic, topic=topic)
    p.set_defaults(func=lambda args: p.print_help() or 1)


def run_solvers(args: argparse.Namespace) -> int:
    """Run a solver suite and print the per-backend summary."""
    from experiments.bench_solvers import load_suite, run_suite, summary_table
    from experiments.summary import markdown_table
    from serveplan.machine import machine_line
    from serveplan.paths import results_dir

    suite = load_suite(args.suite)
    if args.backends == ["all"]:
        from serveplan.solvers import available_backends

        args.backends = available_backends()
    out = args.out or results_dir() / "bench" / suite.name
    print(f"machine: {machine_line()}")
    limit = args.time_limit or suite.time_limit_s
    threads = args.threads or suite.threads
    print(f"suite {suite.name}: time limit {limit:g} s, {threads} thread(s), a process per solve")
    table = run_suite(
        suite, backends=args.backends, time_limit_s=args.time_limit, threads=args.threads, mps_files=args.mps,
        out_dir=out,
    )  # fmt: skip
    print()
    if table.empty:
        print("(no runs)")
    elif args.markdown:
        cols = ["instance", "backend", "status", "objective", "gap", "wall_s", "num_vars", "num_integer"]
        print(markdown_table(summary_table(table)) + "\n\n" + markdown_table(table[cols]))
    else:
        print(summary_table(table).to_string(index=False))
    print(f"\nwritten: {out}/runs.csv, performance_profile.png/pdf, gap_over_time.png/pdf")
    return 0


def find_benchmarks(topic: str, problem: str | None = None) -> list[tuple[str, Callable[..., Any]]]:
    """``(problem, function)`` for every problem package that has a ``topic`` benchmark."""
    found = []
    for prob in ("chain", "alpaserve"):
        if problem not in (None, prob):
            continue
        for module, attr in ((f"serveplan.{prob}.bench", f"bench_{topic}"), (f"serveplan.{prob}.bench_{topic}",
                                                                              "run_benchmark")):  # fmt: skip
            if importlib.util.find_spec(module) is None:
                continue
            fn = getattr(importlib.import_module(module), attr, None)
            if callable(fn):
                found.append((prob, fn))
                break
    return found


def run_topic(args: argparse.Namespace) -> int:
    """Run every benchmark of one topic and print its rows."""
    import pandas as pd

    from serveplan.machine import machine_line

    benches = find_benchmarks(args.topic, args.problem)
    if not benches:
        print(f"no {args.topic} benchmark provided by the problem packages yet")
        return 1
    print(f"machine: {machine_line()}")
    for prob, fn in benches:
        kwargs = {"quick": True} if args.quick and "quick" in inspect.signature(fn).parameters else {}
        print(f"\n== {prob}: {fn.__module__}.{fn.__name__}")
        rows = fn(**kwargs)
        print(pd.DataFrame(rows).to_string(index=False) if rows else "(no rows)")
    return 0
