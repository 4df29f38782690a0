"""Benchmark of the exact BPCA MILP: time to proven optimality for J = 4..16 servers, per MILP backend.

Run ``python -m serveplan.chain.bench_milp`` (options ``--sizes``, ``--backends``, ``--time-limit``, ``--threads``,
``--seed``, ``--no-colgen``). For every J it builds one instance of :func:`bench_instance`, then

* ``enumerate``: the full path MILP (:func:`formulations.chain_bpca.build_model`), compiled once with
  :func:`serveplan.solvers.compile_pyomo` and solved by each backend in its own process with a hard kill
  (:func:`serveplan.solvers.subprocess_runner.solve_lp_in_subprocess`); the ratio is the backend's wall time over
  HiGHS's on the same model in the same run;
* ``colgen``: column generation closed exactly by reduced-cost path enumeration
  (:func:`formulations.chain_bpca.solve_bpca`, the same backend for its MILPs, in this process, under the same
  limit; its time is the whole method's).

Statuses, bounds and gaps are reported as the solvers gave them; a solve that hit the limit is reported as
such, never as optimal. It prints machine information and a Markdown table (the "Chain exact MILPs" section
of docs/benchmarks.md).

``--time-expanded`` instead compares the path model (A, enumeration) with the compact time-expanded model (B,
:mod:`formulations.chain_bpca_time`) on a grid of ``--steps`` steps, rounded up (a solution) and down (a bound),
and on a grid-aligned variant of the instance (times rounded to multiples of ``--aligned-step`` seconds, where B
is exact): model size (rows, columns, nonzeros), build and solve time (ratio over A's solve in the same run),
objective and bound ("Chain time-expanded MILP" section of docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from serveplan.chain.instance import ChainInstance, Server
from serveplan.machine import machine_line


def bench_instance(num_servers: int, seed: int = 0) -> ChainInstance:
    """A synthetic two-type cluster sized for exact solving (L = 4 blocks).

    floor(0.3 J) (at least one) servers are high-performance (40 GB, 1.9 s per block), the rest low-performance
    (20 GB, 3.1 s per block: the paper's 109 / 175 ms per layer times 17.5 layers per block);
    tau^c_j ~ U[0.2, 1.0] s; s_m = 8 GB, s_c = 1 GB per block per job; lambda = 1.5 x sum_j 1/(tau^c_j + L tau^p_j)
    (one and a half times the rate of every server running the whole model once), rho_bar = 0.7.
    """
    rng = np.random.default_rng(seed)
    L = 4
    num_high = max(1, int(0.3 * num_servers))
    servers = []
    for j in range(num_servers):
        high = j < num_high
        servers.append(
            Server(
                f"{'hi' if high else 'lo'}{j}",
                40.0 if high else 20.0,
                float(np.round(rng.uniform(0.2, 1.0), 3)),
                (0.109 if high else 0.175) * 17.5,
            )
        )
    base = sum(1.0 / (s.comm_time_s + s.compute_time_s * L) for s in servers)
    return ChainInstance(tuple(servers), L, 8.0, 1.0, float(np.round(1.5 * base, 3)), 0.7, name=f"bench-J{num_servers}")


def bench_bpca(
    sizes: Iterable[int] = range(4, 17, 2),
    backends: Iterable[str] = ("highs", "scip", "cpsat"),
    time_limit_s: float = 60.0,
    threads: int = 1,
    seed: int = 0,
    colgen: bool = True,
    max_paths: int = 200_000,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Solve BPCA exactly for each J in ``sizes``; one row per (J, method, backend).

    Returns
    -------
    list of dict
        Keys: J, paths, method, backend, status, objective, bound, gap, wall_s (the solver call; for colgen the
        whole method: LPs, pricing, enumeration and MILPs), ratio_vs_highs (over HiGHS's enumerate wall_s),
        build_s (building and compiling the enumerate model, not in wall_s), process_s (the child process's
        wall time, including its start-up and imports).
    """
    from formulations.chain_bpca import build_model, solve_bpca
    from serveplan.solvers import compile_pyomo
    from serveplan.solvers.subprocess_runner import solve_lp_in_subprocess

    backends = tuple(backends)
    rows: list[dict[str, Any]] = []
    for J in sizes:
        inst = bench_instance(J, seed)
        t0 = time.perf_counter()
        model = build_model(inst, max_paths=max_paths)
        lp, _ = compile_pyomo(model)
        build_s = time.perf_counter() - t0
        num_paths = len(model.bpca_paths)
        highs_wall = None
        for backend in backends:
            res, _ = solve_lp_in_subprocess(lp, backend, time_limit_s=time_limit_s, threads=threads, seed=seed)
            wall = float(res.wall_s)  # the solver call itself (a killed child: its whole process time)
            if backend == "highs":
                highs_wall = wall
            if progress:
                print(f"J={J} enumerate {backend}: {res.status} in {wall:.2f} s", file=sys.stderr, flush=True)
            rows.append(
                {
                    "J": J,
                    "paths": num_paths,
                    "method": "enumerate",
                    "backend": backend,
                    "status": str(res.status),
                    "objective": res.objective,
                    "bound": res.bound,
                    "gap": res.gap,
                    "wall_s": wall,
                    "ratio_vs_highs": None if not highs_wall else wall / highs_wall,
                    "build_s": build_s,
                    "process_s": float(res.info.get("process_wall_s", res.wall_s)),
                }
            )
        if colgen:
            for backend in backends:
                t0 = time.perf_counter()
                out = solve_bpca(
                    inst,
                    mode="colgen",
                    backend=backend,
                    time_limit_s=time_limit_s,
                    threads=threads,
                    max_paths=max_paths,
                )
                wall = time.perf_counter() - t0
                if progress:
                    print(f"J={J} colgen {backend}: {out.status} in {wall:.2f} s", file=sys.stderr, flush=True)
                rows.append(
                    {
                        "J": J,
                        "paths": out.info.get("threshold_paths"),
                        "method": "colgen",
                        "backend": backend,
                        "status": str(out.status),
                        "objective": out.objective,
                        "bound": out.bound,
                        "gap": out.gap,
                        "wall_s": wall,
                        "ratio_vs_highs": None if not highs_wall else wall / highs_wall,
                        "build_s": 0.0,
                        "process_s": wall,
                    }
                )
    return rows


def aligned_instance(inst: ChainInstance, step_s: float) -> ChainInstance:
    """``inst`` with every tau^c_j and tau^p_j rounded to a multiple of ``step_s`` (tau^p at least one step)."""
    servers = tuple(
        Server(
            s.name,
            s.memory_gb,
            round(s.comm_time_s / step_s) * step_s,
            max(1, round(s.compute_time_s / step_s)) * step_s,
        )
        for s in inst.servers
    )
    return ChainInstance(
        servers,
        inst.num_blocks,
        inst.block_memory_gb,
        inst.cache_memory_gb,
        inst.arrival_rate,
        inst.target_load,
        name=f"{inst.name}-aligned",
    )


def bench_time_expanded(
    sizes: Iterable[int] = (4, 8, 12),
    steps: Iterable[int] = (25, 100, 400),
    aligned_step_s: float = 0.05,
    backend: str = "highs",
    time_limit_s: float = 60.0,
    threads: int = 1,
    seed: int = 0,
    max_paths: int = 200_000,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Model A (path enumeration) against model B (time-expanded) per J; one row per (instance, model, grid).

    For each J two instances: :func:`bench_instance` (``general``) and its grid-aligned variant
    (:func:`aligned_instance`, ``aligned``). On each, A is solved once (the baseline), then B on every grid of
    ``steps`` (general) or on the aligned grid (aligned), both roundings. All solves run in this process with
    the same backend, thread count and time limit.

    Returns
    -------
    list of dict
        Keys: J, instance, model (``A``, ``B-up``, ``B-down``, ``B-exact``), grid (steps, or the step in s), rows,
        cols, nonzeros, build_s (building and compiling the pyomo model), solve_s (the solver call),
        ratio_vs_a (solve_s over A's on the same instance), status, objective, bound.
    """
    from formulations.chain_bpca import build_model as build_a
    from formulations.chain_bpca_time import build_model as build_b
    from formulations.chain_bpca_time import grid_step_s, on_grid
    from serveplan.solvers import compile_pyomo, solve

    rows: list[dict[str, Any]] = []

    def run(J: int, kind: str, model_name: str, grid: str, build: Any, base: float | None) -> float:
        t0 = time.perf_counter()
        model = build()
        lp, _ = compile_pyomo(model)
        build_s = time.perf_counter() - t0
        res = solve(model, backend, time_limit_s=time_limit_s, threads=threads, seed=seed)
        if progress:
            print(f"J={J} {kind} {model_name} {grid}: {res.status} in {res.wall_s:.2f} s", file=sys.stderr, flush=True)
        rows.append(
            {
                "J": J,
                "instance": kind,
                "model": model_name,
                "grid": grid,
                "rows": lp.num_rows,
                "cols": lp.num_cols,
                "nonzeros": int(lp.A.nnz),
                "build_s": build_s,
                "solve_s": float(res.wall_s),
                "ratio_vs_a": None if not base else float(res.wall_s) / base,
                "status": str(res.status),
                "objective": res.objective,
                "bound": res.bound,
            }
        )
        return float(res.wall_s)

    for J in sizes:
        general = bench_instance(J, seed)
        aligned = aligned_instance(general, aligned_step_s)
        for kind, inst in (("general", general), ("aligned", aligned)):
            base = run(J, kind, "A", "-", lambda inst=inst: build_a(inst, max_paths=max_paths), None)
            if kind == "aligned":
                if not on_grid(inst, aligned_step_s):
                    raise AssertionError("the aligned instance is not on its grid")
                grids = [(f"{aligned_step_s:g} s", aligned_step_s, ("B-exact",))]
            else:
                grids = [(str(n), grid_step_s(inst, steps=n), ("B-up", "B-down")) for n in steps]
            for label, step, names in grids:
                for name in names:
                    rounding = "down" if name == "B-down" else "up"
                    run(J, kind, name, label, lambda inst=inst, step=step, r=rounding: build_b(inst, step, r), base)
    return rows


def time_expanded_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`bench_time_expanded` as a Markdown table."""
    lines = [
        "| J | instance | model | grid | rows | cols | nonzeros | build (s) | solve (s) | vs A | status | objective "
        "| bound |",
        "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['J']} | {r['instance']} | {r['model']} | {r['grid']} | {r['rows']} | {r['cols']} | "
            f"{r['nonzeros']} | {_fmt(r['build_s'])} | {_fmt(r['solve_s'])} | "
            f"{_fmt(r['ratio_vs_a']) + 'x' if r['ratio_vs_a'] is not None else '1.00x'} | {r['status']} | "
            f"{_fmt(r['objective'], 0)} | {_fmt(r['bound'], 2)} |"
        )
    return "\n".join(lines)


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isnan(x):
            return "-"
        return f"{x:.{digits}f}"
    return str(x)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| J | method | backend | columns | status | objective | bound | gap | solve (s) | vs HiGHS enum | build (s) "
        "| process (s) |",
        "|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['J']} | {r['method']} | {r['backend']} | {_fmt(r['paths'])} | {r['status']} | "
            f"{_fmt(r['objective'], 0)} | {_fmt(r['bound'], 2)} | {_fmt(r['gap'], 3)} | {_fmt(r['wall_s'])} | "
            f"{_fmt(r['ratio_vs_highs'])}x | {_fmt(r['build_s'])} | {_fmt(r['process_s'])} |"
        )
    return "\n".join(lines)


def run_benchmark(quick: bool = False) -> list[dict[str, Any]]:
    """``serveplan bench milp --problem chain``: the time-expanded comparison (model A vs model B) with HiGHS.

    ``quick``: J in {4, 8} and grids of 25 and 100 steps, 20 s per solve; otherwise J in {4, 8, 12, 16} and
    grids of 25, 100 and 400 steps, 30 s per solve (the settings of docs/benchmarks.md). The backend comparison
    of model A over every backend stays on ``python -m serveplan.chain.bench_milp``.
    """
    sizes, steps, limit = ((4, 8), (25, 100), 20.0) if quick else ((4, 8, 12, 16), (25, 100, 400), 30.0)
    return bench_time_expanded(sizes, steps, 0.05, "highs", limit, 1, 0)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(range(4, 17, 2)))
    ap.add_argument("--backends", nargs="+", default=["highs", "scip", "cpsat"])
    ap.add_argument("--time-limit", type=float, default=60.0, help="per solve, seconds")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-colgen", action="store_true")
    ap.add_argument("--time-expanded", action="store_true", help="compare the path model with the time-expanded one")
    ap.add_argument("--steps", type=int, nargs="+", default=[25, 100, 400], help="--time-expanded grids")
    ap.add_argument("--aligned-step", type=float, default=0.05, help="--time-expanded aligned grid, seconds")
    args = ap.parse_args(argv)
    print(f"Machine: {machine_line()}")
    if args.time_expanded:
        backend = args.backends[0]
        print(f"Backend {backend}, per-solve limit {args.time_limit:g} s, {args.threads} thread(s), seed {args.seed}\n")
        start = time.perf_counter()
        rows = bench_time_expanded(
            args.sizes,
            args.steps,
            args.aligned_step,
            backend,
            args.time_limit,
            args.threads,
            args.seed,
            progress=True,
        )
        print(time_expanded_table(rows))
        print(f"\nTotal {time.perf_counter() - start:.0f} s")
        return 0
    print(f"Per-solve limit {args.time_limit:g} s, {args.threads} thread(s), seed {args.seed}\n")
    start = time.perf_counter()
    rows = bench_bpca(
        args.sizes, args.backends, args.time_limit, args.threads, args.seed, not args.no_colgen, progress=True
    )
    print(markdown_table(rows))
    print(f"\nTotal {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
