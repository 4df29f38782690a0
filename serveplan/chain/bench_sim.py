"""Benchmark of the chain serving simulator: compiled kernel vs the pure-Python reference.

Run ``python -m serveplan.chain.bench_sim`` (options: ``--jobs``, ``--chains``, ``--reference-jobs``,
``--load``) or ``serveplan bench sim --problem chain [--quick]``. It simulates ``--jobs`` Poisson arrivals
with Exp(1) sizes on ``--chains`` chains (random rates in [0.2, 2], capacities in 1..8) at load
rho = lambda / nu for every policy, first with the numba kernel (after one warm-up call that compiles it),
then with the Python reference on ``--reference-jobs`` jobs in the same process; the ratio compares time per
job. It prints machine information and a Markdown table (the "Chain simulator" section of
docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from serveplan.chain.policies import POLICIES
from serveplan.chain.simulator import simulate_poisson
from serveplan.machine import machine_line


def run_benchmark(
    num_jobs: int = 1_000_000,
    num_chains: int = 100,
    reference_jobs: int = 50_000,
    load: float = 0.8,
    seed: int = 0,
    quick: bool = False,
) -> list[dict[str, float | str]]:
    """Time every policy; returns one row per policy (seconds, jobs per second, speed-up vs reference).

    Also the ``sim`` topic of ``serveplan bench`` (``--quick``: 100,000 jobs, 5,000 reference jobs).
    """
    if quick:
        num_jobs, reference_jobs = 100_000, 5_000
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0.2, 2.0, num_chains)
    cap = rng.integers(1, 9, num_chains)
    lam = load * float(mu @ cap)
    rows = []
    for policy in POLICIES:
        simulate_poisson(mu, cap, lam, 1000, policy=policy, seed=seed)  # compile
        t0 = time.perf_counter()
        res = simulate_poisson(mu, cap, lam, num_jobs, policy=policy, seed=seed)
        kernel_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        simulate_poisson(mu, cap, lam, reference_jobs, policy=policy, seed=seed, reference=True)
        ref_s = time.perf_counter() - t0
        per_job_kernel = kernel_s / num_jobs
        per_job_ref = ref_s / reference_jobs
        rows.append(
            {
                "policy": policy,
                "jobs": num_jobs,
                "chains": num_chains,
                "kernel_s": kernel_s,
                "kernel_jobs_per_s": num_jobs / kernel_s,
                "reference_jobs": reference_jobs,
                "reference_s": ref_s,
                "speedup": per_job_ref / per_job_kernel,
                "mean_response_s": float(np.mean(res.response_s)),
            }
        )
    return rows


def to_markdown(rows: list[dict[str, float | str]]) -> str:
    """The rows as a Markdown table."""
    head = "| policy | jobs | chains | kernel (s) | jobs/s | Python ref jobs | Python ref (s) | speed-up per job |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['policy']} | {r['jobs']:,} | {r['chains']} | {r['kernel_s']:.2f} | {r['kernel_jobs_per_s']:,.0f} "
            f"| {r['reference_jobs']:,} | {r['reference_s']:.2f} | {r['speedup']:.0f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: print machine info and the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--chains", type=int, default=100)
    p.add_argument("--reference-jobs", type=int, default=50_000)
    p.add_argument("--load", type=float, default=0.8)
    args = p.parse_args(argv)
    print(f"machine: {machine_line()}")
    print(f"load rho = {args.load}; Poisson arrivals, Exp(1) sizes; rates U[0.2, 2], capacities 1..8\n")
    print(to_markdown(run_benchmark(args.jobs, args.chains, args.reference_jobs, args.load)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
