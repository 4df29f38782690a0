"""JFFC only: every server that can hosts the whole model; JFFC dispatches over single-server chains.

Sun, He, Hou 2026, PETALS-based experiment (digest section 5.3). It isolates the value of splitting the model
and reserving cache: a server j with M_j >= L s_m hosts blocks 1..L and serves
c_j = floor((M_j - L s_m) / (L s_c)) concurrent jobs (a job holds L cache slots on it); servers too small
for the whole model stay unused. Complexity O(J).
"""

from __future__ import annotations

import time

import numpy as np

from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import Chain, ChainSolution, Placement, slots_from_memory
from serveplan.chain.verify import verify
from serveplan.registry import Budget, MethodResult


def jffc_only_solution(instance: ChainInstance) -> ChainSolution | None:
    """Whole-model placement on every server that fits it with at least one job's cache; None if none does."""
    L = instance.num_blocks
    free = instance.memory_gb - L * instance.block_memory_gb
    caps = np.where(free >= 0, slots_from_memory(np.maximum(free, 0.0), L * instance.cache_memory_gb), 0)
    hosts = [j for j in range(instance.num_servers) if caps[j] >= 1]
    if not hosts:
        return None
    a = tuple(1 if j in hosts else 0 for j in range(instance.num_servers))
    m = tuple(L if j in hosts else 0 for j in range(instance.num_servers))
    chains = tuple(Chain((j,), (L,)) for j in hosts)
    return ChainSolution(Placement(a, m), chains, tuple(int(caps[j]) for j in hosts))


def solve_jffc_only(instance: ChainInstance, budget: Budget, param: str | None = None) -> MethodResult:
    """The ``jffc_only`` method. Objective: total capacity sum c_j (the surrogate)."""
    t0 = time.perf_counter()
    sol = jffc_only_solution(instance)
    if sol is None:
        return MethodResult(
            "jffc_only",
            "infeasible",
            None,
            None,
            wall_s=time.perf_counter() - t0,
            info={"reason": "no server holds the whole model with one job's cache"},
        )
    report = verify(instance, sol)
    return MethodResult(
        method="jffc_only",
        status="feasible",
        solution=sol,
        objective=float(sol.total_capacity),
        verified=report.ok,
        violations=list(report.violations),
        wall_s=time.perf_counter() - t0,
        info={"routing": "jffc", "verify_status": report.status, "total_rate": report.total_rate},
    )
