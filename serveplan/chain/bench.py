"""Benchmark of the chain heuristics: GBP-CR + GCA at scale (target: J = 1000, L = 80 in <= 10 s on 2 cores).

``bench_heuristics(sizes=...)`` builds a seeded synthetic instance per (J, L) (memory 20/40 GB, BLOOM-like blocks:
s_m = 1.32 GB, s_c = 0.11 GB), sets lambda so that GBP-CR at c = 7 needs about 90% of the chains the servers can
form (so most servers are placed and the routing graph is large), runs every step once to compile the numba
kernel, then times the best of ``repeats`` runs of

* ``gbp_cr`` at c = 7: the baseline every ratio is relative to;
* ``gca`` at c = 7 on GBP-CR's placement;
* ``gbp_cr+gca:7``: the registered method at c = 7 (GBP-CR, GCA, verify, Theorem 3.7 bounds);
* ``tune:surrogate``: the 1-D search over c = 1..c_max by c K(c) (GBP-CR per c);
* ``gbp_cr+gca``: the registered method with its default tuning (GBP-CR + GCA + Theorem 3.7 lower bound for
  every c = 1..c_max; this is the paper's full offline pipeline).

Run ``python -m serveplan.chain.bench`` (prints a Markdown table and the machine) or ``serveplan bench heuristics``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from serveplan.machine import machine_info

BENCH_C = 7
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((100, 80), (300, 80), (1000, 80))


def _best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_instance(num_servers: int, num_blocks: int, seed: int = 0):
    """The benchmark instance for (J, L): synthetic servers, lambda at 90% of GBP-CR's chain capacity at c = 7."""
    from heuristics.gbp_cr import gbp_cr
    from serveplan.chain.builders import synthetic_instance

    inst = synthetic_instance(num_servers, num_blocks, arrival_rate=1.0, seed=seed)
    every = gbp_cr(inst, BENCH_C, stop_rule="max_chains")
    reachable = BENCH_C * sum(1.0 / t for t in every.chain_bound_times_s)
    return inst.with_arrival_rate(0.9 * inst.target_load * reachable)


def bench_heuristics(
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES, *, repeats: int = 3, seed: int = 0, quick: bool = False
) -> list[dict[str, Any]]:
    """Time GBP-CR, GCA, the tuning and the registered methods; one row per (size, step).

    Parameters
    ----------
    sizes : sequence of (J, L)
    repeats : int, default 3
        Best-of repeats per step (after one untimed warm-up run that compiles the numba kernel).
    seed : int
    quick : bool
        Only the largest size, one repeat, skipping the full lower-bound tuning.

    Returns
    -------
    list of dict
        Keys: J, L, step, seconds, ratio_vs_gbp_cr, chains, job_servers, c, and the machine fields.
    """
    from heuristics.c_tuning import tune_c
    from heuristics.gbp_cr import gbp_cr
    from heuristics.gca import gca
    from serveplan.registry import Budget, get_method

    if quick:
        sizes, repeats = (max(sizes),), 1
    machine = machine_info()
    rows: list[dict[str, Any]] = []
    method_gca = get_method("chain", "gbp_cr+gca")[0]
    for J, L in sizes:
        inst = bench_instance(J, L, seed)
        placed = gbp_cr(inst, BENCH_C)
        gca(inst, placed.placement)  # warm-up: compiles (or loads) the numba kernel
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("gbp_cr", lambda inst=inst: gbp_cr(inst, BENCH_C)),
            ("gca", lambda inst=inst, p=placed.placement: gca(inst, p)),
            ("gbp_cr+gca:7", lambda inst=inst: method_gca(inst, Budget(), str(BENCH_C))),
            ("tune:surrogate", lambda inst=inst: tune_c(inst, "surrogate")),
        ]
        if not quick:
            steps.append(("gbp_cr+gca", lambda inst=inst: method_gca(inst, Budget(), None)))
        base = None
        for name, fn in steps:
            seconds, out = _best_of(fn, repeats)
            base = seconds if base is None else base
            row: dict[str, Any] = {"J": J, "L": L, "step": name, "seconds": round(seconds, 4)}
            row["ratio_vs_gbp_cr"] = round(seconds / base, 2)
            row.update(_describe(out))
            rows.append(row)
    for row in rows:
        row.update(machine)
    return rows


def _describe(out: Any) -> dict[str, Any]:
    """Chains, job servers and c of whatever a step returned."""
    caps = getattr(out, "capacities", None)
    if caps is not None:
        return {"chains": len(caps), "job_servers": int(sum(caps)), "c": ""}
    if hasattr(out, "chain_bound_times_s"):
        return {"chains": len(out.chains), "job_servers": out.c * len(out.chains), "c": out.c}
    if hasattr(out, "best_c"):
        return {"chains": "", "job_servers": "", "c": out.best_c}
    sol = getattr(out, "solution", None)
    if sol is not None:
        return {"chains": len(sol.chains), "job_servers": sol.total_capacity, "c": out.info.get("c", "")}
    return {"chains": "", "job_servers": "", "c": ""}


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (without the machine columns)."""
    cols = ["J", "L", "step", "seconds", "ratio_vs_gbp_cr", "chains", "job_servers", "c"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---:" if c != "step" else "---" for c in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m serveplan.chain.bench [--quick]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    rows = bench_heuristics(quick="--quick" in args)
    m = machine_info()
    print(f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, numpy {m['numpy']}, numba {m['numba']}, "
          f"{m['os']}\n")  # fmt: skip
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
