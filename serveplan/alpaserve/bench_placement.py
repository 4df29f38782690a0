"""Benchmark of AlpaServe placement: Algorithm 2 with model buckets, and the window MILP's time to a 1 % gap.

``serveplan bench placement --problem alpaserve`` (or ``python -m serveplan.alpaserve.bench_placement``).

1. **Algorithm 2 at 64 GPUs / 72 mixed models** (the digest's section-8 setting, where the reference
   ``mp-search-sep`` took 172.6 s): 12 x {BERT-6.7B, MoE-5.3B, BERT-2.6B, MoE-2.4B, BERT-1.3B, MoE-1.3B}, V100
   13 GiB budget, power-law Gamma arrivals of 160 requests/s in total (the digest's 108 requests/s is served
   completely by every search under serveplan's latency model, so the load is raised until no search serves
   every request), CV 4, SLO 5x; the search sees a 190 s train trace (about 30,000 requests, the size of the
   reference's ``gen_train_workload``) and is scored on it and on an independent 190 s test trace.
   Rows, all in one process after a warm-up that compiles the simulator:

   * ``search`` - :class:`heuristics.alpaserve_search.PlacementSearch` as registered (per-bucket workloads,
     memoised (bucket, devices) answers, best-first split search with monotone pruning);
   * ``search (all splits)`` - the same without the best-first pruning (every split evaluated, memoised);
   * ``reference loop`` - the reference's loop structure (every split re-solves every bucket against the whole
     trace and simulates the concatenation), on the same simulator: the baseline of the ratio;
   * ``search_flat`` - Algorithm 2 without buckets (reference ``mp-search``);
   * ``search (threads=N)``, ``search_flat (threads=N)`` - the same with every core running the selector on a
     bucket's group partitions at once (same answer; compared by wall seconds with the one-thread row).

   Wall seconds and process CPU seconds are both reported; on a shared machine the CPU seconds are the stable
   measure (the speed-up column uses them).

2. **Window MILP, 16 GPUs / 8 models** (2 x {BERT-1.3B, BERT-2.6B, BERT-6.7B, MoE-1.3B}, 30 requests/s, CV 3,
   200 s train trace): HiGHS with ``rel_gap = 0.01`` and a 60 s limit, then to optimality (``rel_gap`` 1e-4) for
   reference; and the 64-GPU / 72-model instance of part 1 decomposed by Algorithm 2's partitions (one MILP per
   partition, 6 busiest windows, 120 s in all).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from heuristics.alpaserve_search import PlacementSearch
from serveplan.alpaserve.cluster import Cluster, Placement
from serveplan.alpaserve.instance import AlpaInstance
from serveplan.alpaserve.latency import latency_model_for
from serveplan.alpaserve.model import get_model
from serveplan.alpaserve.simulator import Simulator
from serveplan.machine import machine_line
from serveplan.registry import Budget, run_method
from serveplan.workloads.arrivals import gamma_workload, power_law_rates

MIX = ("bert-6.7b", "moe-5.3b", "bert-2.6b", "moe-2.4b", "bert-1.3b", "moe-1.3b")
MILP_MIX = ("bert-1.3b", "bert-2.6b", "bert-6.7b", "moe-1.3b")


def make_instance(
    num_gpus: int,
    names: tuple[str, ...],
    rate: float,
    cv: float,
    duration_s: float,
    slo_scale: float = 5.0,
    seed: int = 0,
) -> AlpaInstance:
    """Power-law Gamma instance with independent train (stream 1) and test (stream 0) traces."""
    models = tuple(get_model(n) for n in names)
    lm = latency_model_for("v100-16gb")
    slo = [slo_scale * lm.single_gpu_latency_s(m) for m in models]
    rates = power_law_rates(rate, len(models))
    train = gamma_workload(rates, cv, duration_s, seed, stream=1)
    test = gamma_workload(rates, cv, duration_s, seed, stream=0)
    return AlpaInstance(Cluster(num_gpus), models, slo, lm, train, test, name=f"bench-{num_gpus}gpu-{len(models)}m")


def _search_row(label: str, inst: AlpaInstance, **kwargs: Any) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    ps = PlacementSearch(inst, inst.train, **{k: v for k, v in kwargs.items() if k != "use_buckets"})
    res = ps.run(use_buckets=kwargs.get("use_buckets", True))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    test = Simulator(inst, inst.test).run(res.placement).attainment
    return {
        "benchmark": "algorithm2",
        "instance": inst.name,
        "requests": inst.train.num_requests,
        "method": label,
        "seconds": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "simulations": res.num_simulations,
        "splits": f"{res.stats.get('splits_evaluated', 0)}/{res.num_splits}",
        "device_split": "+".join(map(str, res.split)),
        "train_attainment": round(res.attainment, 5),
        "test_attainment": round(test, 5),
    }


def bench_algorithm2(quick: bool = False) -> list[dict[str, Any]]:
    """Rows of part 1 (``quick``: 32 GPUs / 36 models, 54 requests/s)."""
    size = (32, MIX * 6, 80.0, 4.0, 375.0) if quick else (64, MIX * 12, 160.0, 4.0, 190.0)
    inst = make_instance(*size)
    # warm-up: compile / load the simulator kernel
    Simulator(inst, inst.train).run(Placement(()))
    rows = [
        _search_row("search", inst),
        _search_row("search (all splits)", inst, prune_monotone=False),
        _search_row("reference loop", inst, reference_loop=True),
        _search_row("search_flat", inst, use_buckets=False),
    ]
    threads = os.cpu_count() or 1
    if threads > 1:  # parallel candidate evaluation: same answer, compared by wall time with one thread
        rows.append(_search_row(f"search (threads={threads})", inst, threads=threads))
        rows.append(_search_row(f"search_flat (threads={threads})", inst, use_buckets=False, threads=threads))
    base = next(r for r in rows if r["method"] == "reference loop")["cpu_s"]
    serial = {r["method"]: r["seconds"] for r in rows}
    for r in rows:
        r["cpu_speedup_vs_reference_loop"] = round(base / max(r["cpu_s"], 1e-9), 1)
        one = serial.get(r["method"].split(" (threads=")[0]) if "(threads=" in r["method"] else None
        r["wall_speedup_vs_1_thread"] = None if one is None else round(one / max(r["seconds"], 1e-9), 2)
    return rows


def bench_window_milp(time_limit_s: float = 60.0) -> list[dict[str, Any]]:
    """Rows of part 2."""
    inst = make_instance(16, MILP_MIX * 2, 30.0, 3.0, 200.0)
    rows = []
    for gap in (0.01, 1e-4):
        res = run_method("alpaserve", "milp:window", inst, Budget(time_limit_s=time_limit_s, rel_gap=gap))
        rows.append(
            {
                "benchmark": "window_milp",
                "instance": inst.name,
                "requests": inst.train.num_requests,
                "method": f"milp:window rel_gap={gap:g}",
                "seconds": round(res.wall_s, 2),
                "status": res.status,
                "gap": None if res.gap is None else round(res.gap, 6),
                "train_attainment": round(res.info.get("train_attainment", float("nan")), 5),
                "test_attainment": round(res.info.get("test_attainment", float("nan")), 5),
            }
        )
    big = make_instance(64, MIX * 12, 160.0, 4.0, 190.0)
    res = run_method(
        "alpaserve",
        "milp:window",
        big,
        Budget(time_limit_s=2 * time_limit_s, rel_gap=0.01, options={"space": "decompose", "max_windows": 6}),
    )
    rows.append(
        {
            "benchmark": "window_milp",
            "instance": big.name,
            "requests": big.train.num_requests,
            "method": "milp:window space=decompose max_windows=6",
            "seconds": round(res.wall_s, 2),
            "status": res.status,
            "gap": None if res.gap is None else round(res.gap, 6),
            "train_attainment": round(res.info.get("train_attainment", float("nan")), 5),
            "test_attainment": round(res.info.get("test_attainment", float("nan")), 5),
        }
    )
    return rows


def run_benchmark(quick: bool = False) -> list[dict[str, Any]]:
    """Both parts; rows of dicts (``quick`` shrinks part 1)."""
    return bench_algorithm2(quick) + bench_window_milp()


def markdown(rows: list[dict[str, Any]]) -> str:
    """The tables of docs/benchmarks.md (one per part)."""
    out = [f"Machine: {machine_line()}", ""]
    for part in ("algorithm2", "window_milp"):
        sub = [r for r in rows if r["benchmark"] == part]
        if not sub:
            continue
        keys = [k for k in sub[0] if k != "benchmark"]
        out.append("| " + " | ".join(keys) + " |")
        out.append("|" + "---|" * len(keys))
        for r in sub:
            out.append("| " + " | ".join("" if r.get(k) is None else str(r.get(k)) for k in keys) + " |")
        out.append("")
    return "\n".join(out)


def main() -> None:  # pragma: no cover - command-line entry
    """``python -m serveplan.alpaserve.bench_placement [--quick]``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(markdown(run_benchmark(args.quick)))


if __name__ == "__main__":  # pragma: no cover
    main()
