"""Benchmark of the AlpaServe simulator: compiled kernel vs the pure-Python reference, and the fixed cost per call.

``serveplan bench sim --problem alpaserve`` (or ``python -m serveplan.alpaserve.bench``) builds the S3
model mix (72 models: 12 x {BERT-6.7B, MoE-5.3B, BERT-2.6B, MoE-2.4B, BERT-1.3B, MoE-1.3B}) on 64
V100s, power-law Gamma arrivals (100 requests/s in total, CV 4, SLO 5x; the trace length sets the
number of requests), and two verified placements filled round-robin until memory
is full: SR (64 one-GPU groups) and MP (8 groups of pp=4 x op=2). For each trace size it times

* ``run_fast`` (attainment-only path) and ``run`` (per-request output + latency percentiles), best
  of 5 after a warm-up call (numba compiles once and caches to disk);
* the pure-Python reference (:mod:`serveplan.alpaserve.reference`) on the first 20,000 requests in the
  same process; the ratio compares time per request;

and the fixed cost of one ``run_fast`` call on a 10-request trace (what a placement search pays per
candidate), against rebuilding the simulator (its latency tables) for every call, which is what the
reference implementation of AlpaServe does. Rows are dicts; :func:`markdown` renders the table of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from serveplan.alpaserve.cluster import Cluster, Group, ParallelConfig, Placement
from serveplan.alpaserve.instance import AlpaInstance
from serveplan.alpaserve.latency import latency_model_for
from serveplan.alpaserve.model import get_model
from serveplan.alpaserve.reference import reference_simulate
from serveplan.alpaserve.simulator import Simulator
from serveplan.alpaserve.verify import verify
from serveplan.machine import machine_line
from serveplan.workloads.arrivals import gamma_workload, power_law_rates

MIX = ("bert-6.7b", "moe-5.3b", "bert-2.6b", "moe-2.4b", "bert-1.3b", "moe-1.3b")


def _round_robin_fill(instance: AlpaInstance, configs: list[ParallelConfig]) -> Placement:
    """Add models to groups in turn while each fits the group's memory (a simple verified placement)."""
    budget = instance.cluster.memory_budget_bytes
    used = [0.0] * len(configs)
    members: list[list[int]] = [[] for _ in configs]
    m, stalled = 0, 0
    while stalled < len(configs) * instance.num_models:
        progressed = False
        for g, c in enumerate(configs):
            w = instance.latency.max_stage_weight_bytes(instance.models[m], c)
            if m not in members[g] and used[g] + w <= budget:
                members[g].append(m)
                used[g] += w
                progressed = True
            m = (m + 1) % instance.num_models
        stalled = 0 if progressed else stalled + len(configs)
    return Placement(tuple(Group(c, tuple(ms)) for c, ms in zip(configs, members, strict=True)))


def _instance(num_requests: int, total_rate: float = 100.0, seed: int = 0) -> AlpaInstance:
    models = tuple(get_model(n) for n in MIX) * 12
    lm = latency_model_for("v100-16gb", profile=None)
    duration_s = num_requests / total_rate
    rates = power_law_rates(total_rate, len(models))
    w = gamma_workload(rates, 4.0, duration_s, seed)
    slo = tuple(5 * lm.single_gpu_latency_s(m) for m in models)
    return AlpaInstance(Cluster(64), models, slo, lm, w, w, f"bench-{num_requests}")


def _best(fn: Any, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_simulator(sizes: tuple[int, ...] = (100_000, 1_000_000), reference_requests: int = 20_000) -> list[dict]:
    """Throughput and fixed-cost rows (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    inst = _instance(max(sizes))
    placements = {
        "SR 64x(1,1)": _round_robin_fill(inst, [ParallelConfig(1, 1)] * 64),
        "MP 8x(4,2)": _round_robin_fill(inst, [ParallelConfig(4, 2)] * 8),
    }
    for p in placements.values():
        assert verify(inst, p).ok
    t0 = time.perf_counter()
    Simulator(inst, _instance(10, total_rate=1.0).test).run_fast(placements["SR 64x(1,1)"])
    first_call_s = time.perf_counter() - t0
    for n in sizes:
        inst_n = _instance(n)
        for label, p in placements.items():
            sim = Simulator(inst_n)
            sim.run_fast(p)  # tables + compilation out of the timing
            fast_s = _best(lambda sim=sim, p=p: sim.run_fast(p))
            full_s = _best(lambda sim=sim, p=p: sim.run(p).latency_p99_s)
            k = min(reference_requests, inst_n.test.num_requests)
            sub = inst_n.test.slice(0.0, float(inst_n.test.arrival_s[k - 1]) + 1e-9, rebase=False)
            table = {
                (m, g.config, 1): inst_n.latency.stage_latencies_s(inst_n.models[m], g.config).tolist()
                for g in p.groups
                for m in g.models
            }
            t = time.perf_counter()
            _, good_ref, _ = reference_simulate(sub, p, table, inst_n.slo_s)
            ref_s = time.perf_counter() - t
            check = Simulator(inst_n, sub).run(p)
            n_req = inst_n.test.num_requests
            rows.append(
                {
                    "kind": "throughput",
                    "placement": label,
                    "replicas": p.num_replicas,
                    "requests": n_req,
                    "run_fast_s": fast_s,
                    "run_fast_req_per_s": n_req / fast_s,
                    "run_s": full_s,
                    "run_req_per_s": n_req / full_s,
                    "reference_requests": sub.num_requests,
                    "reference_s": ref_s,
                    "speedup_per_request": (ref_s / sub.num_requests) / (fast_s / n_req),
                    "agrees_with_reference": bool(np.array_equal(check.good, good_ref)),
                    "attainment": sim.run_fast(p)[0],
                }
            )
    tiny = _instance(10, total_rate=1.0)
    for label, p in placements.items():
        sim = Simulator(tiny)
        sim.run_fast(p)
        calls = 2000
        t = time.perf_counter()
        for _ in range(calls):
            sim.run_fast(p)
        per_call = (time.perf_counter() - t) / calls
        rebuild_calls = 20
        t = time.perf_counter()
        for _ in range(rebuild_calls):
            Simulator(tiny).run_fast(p)
        rebuild = (time.perf_counter() - t) / rebuild_calls
        rows.append(
            {
                "kind": "fixed_cost",
                "placement": label,
                "replicas": p.num_replicas,
                "requests": tiny.test.num_requests,
                "per_call_ms": per_call * 1e3,
                "rebuild_tables_per_call_ms": rebuild * 1e3,
                "speedup": rebuild / per_call,
                "first_call_s": first_call_s,
            }
        )
    return rows


def bench_sim(quick: bool = False) -> list[dict]:
    """Entry point of ``serveplan bench sim``: :func:`bench_simulator` (smaller with ``quick``)."""
    return bench_simulator(sizes=(100_000,) if quick else (100_000, 1_000_000))


def markdown(rows: list[dict]) -> str:
    """The two Markdown tables of docs/benchmarks.md."""
    out = [
        "| placement | replicas | requests | attainment | run_fast (s) | requests/s | run (s) "
        "| requests/s (full stats) | Python ref requests | Python ref (s) | speed-up per request | same result |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r["kind"] == "throughput":
            out.append(
                f"| {r['placement']} | {r['replicas']} | {r['requests']:,} | {r['attainment']:.3f} "
                f"| {r['run_fast_s']:.3f} "
                f"| {r['run_fast_req_per_s']:,.0f} | {r['run_s']:.3f} | {r['run_req_per_s']:,.0f} "
                f"| {r['reference_requests']:,} | {r['reference_s']:.2f} | {r['speedup_per_request']:,.0f}x "
                f"| {'yes' if r['agrees_with_reference'] else 'NO'} |"
            )
    out += [
        "",
        "| placement | replicas | requests | run_fast per call (ms) | rebuilding tables per call (ms) | speed-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["kind"] == "fixed_cost":
            out.append(
                f"| {r['placement']} | {r['replicas']} | {r['requests']} | {r['per_call_ms']:.4f} "
                f"| {r['rebuild_tables_per_call_ms']:.2f} | {r['speedup']:,.0f}x |"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    """Print machine information and the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100k requests only")
    args = ap.parse_args(argv)
    import os

    print(f"Machine: {machine_line()}; load average before the run {os.getloadavg()[0]:.1f}\n")
    rows = bench_sim(quick=args.quick)
    print(markdown(rows))
    first = next(r["first_call_s"] for r in rows if r["kind"] == "fixed_cost")
    print(f"\nfirst call in this process (loads the cached compiled kernel): {first:.2f} s")
    print(f"load average after the run {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
