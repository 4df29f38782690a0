"""Executable check of proofs/bpca_milp_equivalence.md: the path MILP equals BPCA by brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

S_M, S_C, RHO = 1.0, 0.5, 0.5  # binary fractions: slot counts are exact


def _slots(M: float, m: int) -> int:
    return math.floor((M - S_M * m) / S_C)


def _chains(first: list[int], count: list[int], L: int):
    """All j_0 -> j_{J+1} paths of the routing graph as (servers, blocks), by the edge definition."""
    used = [j for j in range(len(first)) if count[j] > 0]
    out = []

    def rec(prev_a: int, prev_m: int, servers: list[int], blocks: list[int]):
        end = prev_a + prev_m  # a_i + m_i
        if end == L + 1:  # edge into the sink (a = L + 1, m = 1)
            out.append((tuple(servers), tuple(blocks)))
            return
        for j in used:
            if j not in servers and first[j] <= end <= first[j] + count[j] - 1:
                rec(first[j], count[j], [*servers, j], [*blocks, first[j] + count[j] - end])

    rec(0, 1, [], [])
    return out


def _min_allocation(chains, times, slots, R):
    """min sum c s.t. sum c_k / T_k >= R and slot limits (exhaustive DFS with pruning); None if infeasible."""
    caps = [min(slots[j] // b for j, b in zip(*ch, strict=True)) for ch in chains]
    items = [(t, ch, u) for t, ch, u in zip(times, chains, caps, strict=True) if u >= 1]
    items.sort(key=lambda x: x[0])
    best = [math.inf]

    def dfs(i: int, residual: list[int], rate: float, total: int):
        if rate >= R - 1e-12:
            best[0] = min(best[0], total)
            return
        if i == len(items) or total + 1 >= best[0]:
            return
        t, (servers, blocks), _ = items[i]
        u = min(residual[j] // b for j, b in zip(servers, blocks, strict=True))
        for c in range(u, -1, -1):
            if total + c >= best[0]:
                continue
            res = list(residual)
            for j, b in zip(servers, blocks, strict=True):
                res[j] -= b * c
            dfs(i + 1, res, rate + c / t, total + c)

    dfs(0, list(slots), 0.0, 0)
    return None if math.isinf(best[0]) else best[0]


def bpca_brute_force(M, tc, tp, L, R):
    J = len(M)
    options = [
        [None] + [(a, m) for m in range(1, L + 1) for a in range(1, L - m + 2) if _slots(M[j], m) >= 0]
        for j in range(J)
    ]
    best = None
    for choice in itertools.product(*options):
        first = [o[0] if o else 0 for o in choice]
        count = [o[1] if o else 0 for o in choice]
        chains = _chains(first, count, L)
        if not chains:
            continue
        slots = [_slots(M[j], count[j]) if count[j] else 0 for j in range(J)]
        times = [sum(tc[j] + tp[j] * b for j, b in zip(*ch, strict=True)) for ch in chains]
        v = _min_allocation(chains, times, slots, R)
        if v is not None and (best is None or v < best):
            best = v
    return best


def _random_instance(rng: np.random.Generator):
    J = int(rng.integers(2, 4))
    L = int(rng.integers(2, 4))
    M = [float(x) for x in rng.choice([1.5, 2.0, 2.5, 3.0, 3.5, 4.0], size=J)]
    tc = rng.uniform(0.0, 0.5, size=J)
    tp = rng.uniform(0.2, 1.0, size=J)
    R = float(rng.uniform(0.3, 4.0))
    return J, L, M, tc, tp, R


def _own_check(sol, M, tc, tp, L, R):
    """Re-check a decoded solution with this file's definitions."""
    first, count = list(sol.placement.first_block), list(sol.placement.num_blocks)
    valid = set(_chains(first, count, L))
    load = [0] * len(M)
    rate = 0.0
    for ch, c in zip(sol.chains, sol.capacities, strict=True):
        assert (ch.servers, ch.blocks) in valid
        rate += c / sum(tc[j] + tp[j] * b for j, b in zip(ch.servers, ch.blocks, strict=True))
        for j, b in zip(ch.servers, ch.blocks, strict=True):
            load[j] += b * c
    assert rate >= R * (1 - 1e-9)
    for j in range(len(M)):
        if count[j]:
            assert load[j] <= _slots(M[j], count[j])
        else:
            assert load[j] == 0


def test_path_milp_equals_brute_force_bpca():
    bpca = pytest.importorskip("formulations.chain_bpca")
    from heuristics.gbp_cr import gbp_cr
    from serveplan.chain.instance import ChainInstance, Server
    from serveplan.chain.verify import verify
    from serveplan.solvers import Status, solve

    rng = np.random.default_rng(8)
    outcomes = []
    for n in range(14):
        J, L, M, tc, tp, R = _random_instance(rng)
        truth = bpca_brute_force(M, tc, tp, L, R)
        inst = ChainInstance(
            servers=tuple(Server(f"s{j}", M[j], float(tc[j]), float(tp[j])) for j in range(J)),
            num_blocks=L,
            block_memory_gb=S_M,
            cache_memory_gb=S_C,
            arrival_rate=R * RHO,
            target_load=RHO,
        )
        out = bpca.solve_bpca(inst, mode="enumerate")
        seg_model = bpca.build_model(inst, linking="segment")
        seg = solve(seg_model)
        if truth is None:
            assert out.status == Status.INFEASIBLE
            assert seg.status == Status.INFEASIBLE
        else:
            assert seg.status == Status.OPTIMAL and round(seg.objective) == truth
            seg_sol = bpca.decode(inst, seg_model)
            _own_check(seg_sol, M, tc, tp, L, R)
            assert seg_sol.total_capacity == truth
            assert out.status == Status.OPTIMAL
            assert round(out.objective) == truth
            assert out.solution.total_capacity == truth
            _own_check(out.solution, M, tc, tp, L, R)
            assert verify(inst, out.solution).ok
        outcomes.append(truth)
        # service-rate bound consequence: GBP-CR's surrogate c K(c) never beats the BPCA optimum
        for c in (1, 2, 3):
            g = gbp_cr(inst, c)
            if g.feasible:
                assert truth is not None and truth <= g.surrogate
        if n >= 6:
            continue
        # column generation: whatever it reports must be consistent with the true optimum
        cg = bpca.solve_bpca(inst, mode="colgen")
        if truth is None:
            assert cg.solution is None
        else:
            assert cg.status != Status.INFEASIBLE
            if cg.bound is not None:
                assert cg.bound <= truth + 1e-6
            if cg.solution is not None:
                assert cg.solution.total_capacity >= truth
                assert verify(inst, cg.solution).ok
            if cg.status == Status.OPTIMAL:
                assert cg.solution is not None and cg.solution.total_capacity == truth
    assert None in outcomes and any(t is not None and t >= 2 for t in outcomes)
