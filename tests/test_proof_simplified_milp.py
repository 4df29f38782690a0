"""Executable check of proofs/chain_simplified_milp_exact.md (minimal-cover MILP for the simplified problem)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from brute_force import disjoint_families

simplified = pytest.importorskip("formulations.chain_simplified")

from serveplan.chain.instance import ChainInstance, Server  # noqa: E402
from serveplan.solvers import Status, solve  # noqa: E402


def _brute_force(m: list[int], t: list[float], L: int, R: float) -> int | None:
    best = None
    for fam in disjoint_families(len(m)):
        if not fam or any(sum(m[j] for j in s) < L for s in fam):
            continue
        if sum(1.0 / sum(t[j] for j in s) for s in fam) >= R * (1 - 1e-12) and (best is None or len(fam) < best):
            best = len(fam)
    return best


def _minimal_covers_brute(m: list[int], L: int) -> set[tuple[int, ...]]:
    out = set()
    for k in range(1, len(m) + 1):
        for s in itertools.combinations(range(len(m)), k):
            if sum(m[j] for j in s) >= L and all(sum(m[j] for j in s if j != i) < L for i in s):
                out.add(s)
    return out


def test_minimal_cover_milp_equals_brute_force():
    rng = np.random.default_rng(41)
    outcomes = []
    for _ in range(16):
        J = int(rng.integers(3, 7))
        L = int(rng.integers(2, 8))
        c = int(rng.integers(1, 3))
        s_m, s_c = 1.0, 0.5
        M = rng.uniform(0.5, (s_m + s_c * c) * (L + 0.5), size=J)
        tc, tp = rng.uniform(0.0, 1.0, size=J), rng.uniform(0.05, 1.0, size=J)
        m = [min(math.floor(M[j] / (s_m + s_c * c)), L) for j in range(J)]
        t = [tc[j] + tp[j] * m[j] for j in range(J)]
        covers = _minimal_covers_brute(m, L)
        assert set(simplified.minimal_covers(np.array(m), L)) == covers
        if not covers:
            continue
        top = max(1.0 / sum(t[j] for j in s) for s in covers)
        R = float(rng.uniform(0.5, 3.0)) * top
        truth = _brute_force(m, t, L, R)
        inst = ChainInstance(
            servers=tuple(Server(f"s{j}", float(M[j]), float(tc[j]), float(tp[j])) for j in range(J)),
            num_blocks=L,
            block_memory_gb=s_m,
            cache_memory_gb=s_c,
            arrival_rate=R * c * 0.5,
            target_load=0.5,
        )
        res = solve(simplified.build_model(inst, c))
        if truth is None:
            assert res.status == Status.INFEASIBLE
        else:
            assert res.status == Status.OPTIMAL and round(res.objective) == truth
        outcomes.append(truth)
    assert None in outcomes and any(o is not None and o >= 2 for o in outcomes)
