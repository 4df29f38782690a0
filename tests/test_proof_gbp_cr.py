"""Executable checks of proofs/gbp_cr_equal_memory_optimal.md (Theorem "GBP-CR optimality")."""

from __future__ import annotations

import math

import numpy as np
import pytest
from brute_force import disjoint_families


def sbp_best_rates(m: np.ndarray, t: np.ndarray, L: int) -> dict[int, float]:
    """F(K): the best rate sum_k 1/T_k over all families of exactly K disjoint covering subsets (brute force)."""
    mm, tt = [int(x) for x in m], [float(x) for x in t]
    F: dict[int, float] = {}
    for fam in disjoint_families(len(mm)):
        if not fam or any(sum(mm[j] for j in s) < L for s in fam):
            continue
        rate = sum(1.0 / sum(tt[j] for j in s) for s in fam)
        F[len(fam)] = max(F.get(len(fam), 0.0), rate)
    return F


def sbp_optimum(F: dict[int, float], R: float) -> int | None:
    """Fewest chains reaching rate R: a family with K chains and rate >= R exists iff F(K) >= R."""
    ok = [k for k, f in F.items() if f >= R]
    return min(ok) if ok else None


def gbp_cr_reference(m: np.ndarray, t: np.ndarray, L: int, R: float) -> tuple[int | None, list[float]]:
    """Algorithm 1 as written in the paper (independent of the project's implementation)."""
    if m.sum() < L:
        return None, []
    order = sorted((j for j in range(len(m)) if m[j] > 0), key=lambda j: t[j] / m[j])
    a, T, nu, times = 1, 0.0, 0.0, []
    for j in order:
        T += t[j]
        a = min(a + int(m[j]) - 1, L) + 1
        if a > L:
            times.append(T)
            nu += 1.0 / T
            if nu >= R:
                return len(times), times
            a, T = 1, 0.0
    return None, times


def _equal_memory_case(rng: np.random.Generator):
    J = int(rng.integers(3, 7))
    L = int(rng.integers(2, 7))
    s_m, s_c, c = 1.0, 0.25, int(rng.integers(1, 4))
    per_block = s_m + s_c * c
    m_target = int(rng.integers(1, L + 1))
    M = per_block * (m_target + 0.5)
    tc = rng.uniform(0.0, 1.0, size=J)
    tp = rng.uniform(0.05, 1.0, size=J)
    m = np.full(J, min(math.floor(M / per_block), L))
    t = tc + tp * m
    return J, L, s_m, s_c, c, M, tc, tp, m, t


def test_reference_gbp_cr_is_optimal_with_equal_memory():
    rng = np.random.default_rng(34)
    outcomes = []
    for _ in range(150):
        _, L, _, _, _, _, _, _, m, t = _equal_memory_case(rng)
        F = sbp_best_rates(m, t, L)
        if not F:
            continue
        R = float(rng.uniform(0.3, 1.3)) * max(F.values())
        best = sbp_optimum(F, R)
        K, _ = gbp_cr_reference(m, t, L, R)
        assert best == K
        # Step 1 of the proof: F(K) = g(K) for every K.
        n = math.ceil(L / m[0])
        ts = np.sort(t)
        for k, f in F.items():
            g = sum(1.0 / ts[(i - 1) * n : i * n].sum() for i in range(1, k + 1))
            assert f == pytest.approx(g, rel=1e-12)
        outcomes.append(best)
    assert None in outcomes and 1 in outcomes
    assert max(b for b in outcomes if b is not None) >= 2, "some optimum must need several chains"


def _instance(M, tc, tp, L, s_m, s_c, c, R):
    from serveplan.chain.instance import ChainInstance, Server

    rho = 0.5
    return ChainInstance(
        servers=tuple(Server(f"s{j}", float(M[j]), float(tc[j]), float(tp[j])) for j in range(len(M))),
        num_blocks=L,
        block_memory_gb=s_m,
        cache_memory_gb=s_c,
        arrival_rate=R * c * rho,
        target_load=rho,
    )


def test_project_gbp_cr_is_optimal_with_equal_memory():
    gbp = pytest.importorskip("heuristics.gbp_cr")
    rng = np.random.default_rng(35)
    outcomes = []
    for _ in range(120):
        J, L, s_m, s_c, c, M, tc, tp, m, t = _equal_memory_case(rng)
        F = sbp_best_rates(m, t, L)
        if not F:
            continue
        R = float(rng.uniform(0.3, 1.3)) * max(F.values())
        best = sbp_optimum(F, R)
        inst = _instance(np.full(J, M), tc, tp, L, s_m, s_c, c, R)
        np.testing.assert_array_equal(gbp.max_blocks(inst, c), m)
        for rule in ("shift", "truncate"):
            res = gbp.gbp_cr(inst, c, last_server=rule)
            assert res.num_needed == best, (rule, res.reason)
            if best is not None:
                # c * K(c) is the surrogate value of the optimal disjoint placement
                assert res.surrogate == c * best
        outcomes.append(best is not None)
    assert any(outcomes) and not all(outcomes)


# Counterexample with unequal memory (proof, "Remarks"): L=2, c=1, s_m=s_c=1, R=0.4.
_CE = {
    "M": np.array([2.0, 4.0, 2.0]),
    "tc": np.array([0.5, 0.2, 1.0]),
    "tp": np.array([0.5, 1.0, 0.5]),
    "L": 2,
    "R": 0.4,
}


def test_unequal_memory_counterexample():
    m = np.array([min(math.floor(x / 2.0), _CE["L"]) for x in _CE["M"]])
    t = _CE["tc"] + _CE["tp"] * m
    np.testing.assert_allclose(t, [1.0, 2.2, 1.5])
    best = sbp_optimum(sbp_best_rates(m, t, _CE["L"]), _CE["R"])
    K, _ = gbp_cr_reference(m, t, _CE["L"], _CE["R"])
    assert best == 1 and K is None
    gbp = pytest.importorskip("heuristics.gbp_cr")
    inst = _instance(_CE["M"], _CE["tc"], _CE["tp"], _CE["L"], 1.0, 1.0, 1, _CE["R"])
    assert gbp.gbp_cr(inst, 1).num_needed is None
