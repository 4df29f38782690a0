"""Executable checks of proofs/chain_cache_allocation_np_hard.md and proofs/chain_simplified_np_hard.md.

Both reductions are rebuilt here from the system-model definitions (edges, m_ij, T_k, cache slots, m_j(c),
t_j(c)) with exact rational arithmetic, and yes/no answers are compared by brute force on both sides.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from brute_force import disjoint_families

# --------------------------------------------------------------------------------------------------------------
# Shared: a tiny independent model of placements and chains (server = dict with a, m, M, tc, tp).


def _edge_blocks(prev: dict, nxt: dict) -> int | None:
    """m_ij if (prev, nxt) is an edge of the routing topology, else None."""
    end = prev["a"] + prev["m"]
    if nxt["a"] <= end <= nxt["a"] + nxt["m"] - 1:
        return nxt["a"] + nxt["m"] - prev["a"] - prev["m"]
    return None


def _chain_weights_and_time(servers: list[dict], path: list[int], L: int) -> tuple[dict[int, int], Fraction]:
    """Blocks processed per server and T_k of the path j_0 -> path -> j_{J+1}; asserts that it is a chain."""
    source = {"a": 0, "m": 1}
    sink = {"a": L + 1, "m": 1}
    weights: dict[int, int] = {}
    total = Fraction(0)
    prev = source
    for j in path:
        mij = _edge_blocks(prev, servers[j])
        assert mij is not None and mij >= 1, f"({prev}, {servers[j]}) is not an edge"
        weights[j] = mij
        total += servers[j]["tc"] + servers[j]["tp"] * mij
        prev = servers[j]
    assert _edge_blocks(prev, sink) == 1, "the chain does not end at block L"
    assert sum(weights.values()) == L, "processed blocks must partition 1..L"
    return weights, total


def _slots(server: dict, s_m: Fraction, s_c: Fraction) -> int:
    return math.floor((server["M"] - s_m * server["m"]) / s_c)


# --------------------------------------------------------------------------------------------------------------
# MKP -> cache allocation with given chains


def _mkp_yes(values, weights, caps, target) -> bool:
    K = len(values)
    for x in itertools.product((0, 1), repeat=K):
        if sum(v * xi for v, xi in zip(values, x, strict=True)) < target:
            continue
        if all(sum(w[k] * x[k] for k in range(K)) <= cap for w, cap in zip(weights, caps, strict=True)):
            return True
    return False


def build_mkp_reduction(values, weights, caps, target):
    """The construction of chain_cache_allocation_np_hard.md: servers, L, chains (server lists), rate target."""
    K, D = len(values), len(weights)
    H = [1 + max(weights[d]) for d in range(D)]
    offsets = [sum(H[:d]) for d in range(D)]
    L = sum(H)
    theta = Fraction(1, 2 * L * max(values))
    servers: list[dict] = []
    dim = []
    for d in range(D):
        dim.append(len(servers))
        servers.append({"a": offsets[d] + 1, "m": H[d], "M": Fraction(H[d] + caps[d]), "tc": Fraction(0), "tp": theta})
    chains = []
    for k in range(K):
        path = []
        for d in range(D):
            m = H[d] - weights[d][k]
            tc = Fraction(1, values[k]) - theta * L if d == 0 else Fraction(0)
            path.append(len(servers))
            servers.append({"a": offsets[d] + 1, "m": m, "M": Fraction(2 * m), "tc": tc, "tp": theta})
            if weights[d][k] > 0:
                path.append(dim[d])
        chains.append(path)
    return servers, L, chains, Fraction(target)


def _ca_feasible(servers, L, chains, rate_target, s_m=Fraction(1), s_c=Fraction(1)) -> tuple[bool, int | None]:
    """Brute force over every c allowed by the slot constraints; returns (feasible, min sum c)."""
    slots = [_slots(s, s_m, s_c) for s in servers]
    wt = []
    for path in chains:
        weights, T = _chain_weights_and_time(servers, path, L)
        wt.append((weights, T))
    upper = [min(slots[j] // w for j, w in weights.items()) for weights, _ in wt]
    best = None
    for c in itertools.product(*(range(u + 1) for u in upper)):
        use = [0] * len(servers)
        for ck, (weights, _) in zip(c, wt, strict=True):
            for j, w in weights.items():
                use[j] += w * ck
        if any(u > s for u, s in zip(use, slots, strict=True)):
            continue
        if sum(Fraction(ck) / T for ck, (_, T) in zip(c, wt, strict=True)) >= rate_target:
            best = sum(c) if best is None else min(best, sum(c))
    return best is not None, best


def _random_mkp(rng: np.random.Generator):
    K = int(rng.integers(2, 5))
    D = int(rng.integers(1, 3))
    values = [int(v) for v in rng.integers(1, 5, size=K)]
    weights = [[int(w) for w in rng.integers(0, 4, size=K)] for _ in range(D)]
    caps = [int(rng.integers(0, sum(weights[d]) + 1)) for d in range(D)]
    target = int(rng.integers(1, sum(values) + 1))
    return values, weights, caps, target


def test_mkp_reduction_maps_answers():
    rng = np.random.default_rng(20260421)
    answers = []
    for _ in range(60):
        values, weights, caps, target = _random_mkp(rng)
        servers, L, chains, R = build_mkp_reduction(values, weights, caps, target)
        # Service times realise the values exactly: 1/T_k = v_k.
        for k, path in enumerate(chains):
            wk, T = _chain_weights_and_time(servers, path, L)
            assert Fraction(1, values[k]) == T
            for d in range(len(weights)):
                if weights[d][k] > 0:
                    assert wk[d] == weights[d][k]  # dimension server d is server index d
        assert all(s["tp"] > 0 and s["tc"] >= 0 for s in servers)
        yes = _mkp_yes(values, weights, caps, target)
        feasible, best = _ca_feasible(servers, L, chains, R)
        assert yes == feasible
        if feasible:
            assert best is not None and best <= len(values)
        answers.append(yes)
    assert any(answers) and not all(answers), "the generator must produce both yes and no instances"


def test_mkp_reduction_accepted_by_project_verifier():
    """The constructed placement and chains are valid for the project's own model (when it exists)."""
    chain_mod = pytest.importorskip("serveplan.chain.placement")
    verify_mod = pytest.importorskip("serveplan.chain.verify")
    from serveplan.chain.instance import ChainInstance, Server

    values, weights, caps = [3, 2, 1], [[2, 0, 1], [1, 1, 0]], [2, 1]
    # The MKP optimum, by brute force; its allocation must verify and reach exactly the target rate.
    x_best = max(
        (
            x
            for x in itertools.product((0, 1), repeat=3)
            if all(sum(w[k] * x[k] for k in range(3)) <= cap for w, cap in zip(weights, caps, strict=True))
        ),
        key=lambda x: sum(v * xi for v, xi in zip(values, x, strict=True)),
    )
    target = sum(v * xi for v, xi in zip(values, x_best, strict=True))
    servers, L, chains, R = build_mkp_reduction(values, weights, caps, target)
    inst = ChainInstance(
        servers=tuple(
            Server(f"s{j}", float(s["M"]) + 0.5, float(s["tc"]), float(s["tp"])) for j, s in enumerate(servers)
        ),
        num_blocks=L,
        block_memory_gb=1.0,
        cache_memory_gb=1.0,
        arrival_rate=float(R) * 0.5 * (1 - 1e-9),
        target_load=0.5,
    )
    placement = chain_mod.Placement(tuple(s["a"] for s in servers), tuple(s["m"] for s in servers))
    slots = chain_mod.residual_slots(inst, placement)
    assert [int(x) for x in slots] == [_slots(s, Fraction(1), Fraction(1)) for s in servers]
    built = [chain_mod.chain_through(placement, path) for path in chains]
    for path, ch in zip(chains, built, strict=True):
        _, T = _chain_weights_and_time(servers, path, L)
        assert chain_mod.service_time_s(inst, ch) == pytest.approx(float(T))
    sol = chain_mod.ChainSolution(placement=placement, chains=tuple(built), capacities=x_best)
    report = verify_mod.verify(inst, sol)
    assert report.ok, report


def test_mkp_reduction_with_project_cache_allocation_ilp():
    """The project's cache-allocation ILP (given chains) is feasible on the construction iff MKP says yes."""
    cache = pytest.importorskip("formulations.chain_cache")
    from serveplan.chain.instance import ChainInstance, Server
    from serveplan.chain.placement import Placement, chain_through
    from serveplan.solvers import Status, solve

    rng = np.random.default_rng(99)
    answers = []
    for _ in range(10):
        values, weights, caps, target = _random_mkp(rng)
        servers, L, chains, R = build_mkp_reduction(values, weights, caps, target)
        inst = ChainInstance(
            servers=tuple(
                Server(f"s{j}", float(s["M"]) + 0.5, float(s["tc"]), float(s["tp"])) for j, s in enumerate(servers)
            ),
            num_blocks=L,
            block_memory_gb=1.0,
            cache_memory_gb=1.0,
            arrival_rate=float(R) * 0.5 * (1 - 1e-9),
            target_load=0.5,
        )
        placement = Placement(tuple(s["a"] for s in servers), tuple(s["m"] for s in servers))
        built = [chain_through(placement, path) for path in chains]
        res = solve(cache.build_model(inst, placement, built))
        yes = _mkp_yes(values, weights, caps, target)
        assert res.status == (Status.OPTIMAL if yes else Status.INFEASIBLE)
        if yes:
            assert round(res.objective) == _ca_feasible(servers, L, chains, R)[1]
        answers.append(yes)
    assert any(answers) and not all(answers)


# --------------------------------------------------------------------------------------------------------------
# 3-PARTITION -> simplified block placement


def _three_partition_yes(x: list[int], B: int) -> bool:
    n = len(x) // 3
    idx = list(range(len(x)))

    def rec(rest: list[int]) -> bool:
        if not rest:
            return True
        first = rest[0]
        for a, b in itertools.combinations(rest[1:], 2):
            if x[first] + x[a] + x[b] == B and rec([i for i in rest if i not in (first, a, b)]):
                return True
        return False

    return n >= 1 and rec(idx)


def _sbp_min_chains(blocks: list[int], times: list[Fraction], L: int, rate_target: Fraction):
    """Brute-force optimum of the simplified problem: (min K, the optimal families) or (None, [])."""
    best, arg = None, []
    for fam in disjoint_families(len(blocks)):
        if not fam or any(sum(blocks[j] for j in s) < L for s in fam):
            continue
        if sum(1 / sum(times[j] for j in s) for s in fam) < rate_target:
            continue
        if best is None or len(fam) < best:
            best, arg = len(fam), [fam]
        elif len(fam) == best:
            arg.append(fam)
    return best, arg


def build_three_partition_reduction(x: list[int], B: int, theta: Fraction):
    """Servers (M_j, tau^c, tau^p), L, c, s_m, s_c and target R of chain_simplified_np_hard.md."""
    n = len(x) // 3
    servers = [{"M": Fraction(2 * xj), "tc": Fraction(1), "tp": theta} for xj in x]
    return servers, B, 1, Fraction(1), Fraction(1), Fraction(n) / (3 + theta * B)


def _random_three_partition(rng: np.random.Generator, n: int = 2):
    while True:
        B = int(rng.integers(9, 40))
        lo, hi = B // 4 + 1, (B - 1) // 2  # B/4 < x < B/2
        if lo > hi:
            continue
        x = [int(v) for v in rng.integers(lo, hi + 1, size=3 * n - 1)]
        last = n * B - sum(x)
        if lo <= last <= hi and 4 * last > B and 2 * last < B:
            return [*x, last], B


@pytest.mark.parametrize("theta", [Fraction(0), Fraction(1), Fraction(1, 7)])
def test_three_partition_reduction_maps_answers(theta):
    rng = np.random.default_rng(7 + int(theta * 7))
    answers = []
    for _ in range(25):
        x, B = _random_three_partition(rng)
        servers, L, c, s_m, s_c, R = build_three_partition_reduction(x, B, theta)
        m = [min(math.floor(s["M"] / (s_m + s_c * c)), L) for s in servers]
        t = [s["tc"] + s["tp"] * mj for s, mj in zip(servers, m, strict=True)]
        assert m == x
        best, fams = _sbp_min_chains(m, t, L, R)
        yes = _three_partition_yes(x, B)
        assert yes == (best is not None)
        if best is not None:
            n = len(x) // 3
            assert best == n
            for fam in fams:
                assert all(len(s) == 3 and sum(x[j] for j in s) == B for s in fam)
        answers.append(yes)
    assert any(answers) and not all(answers), "the generator must produce both yes and no instances"


def test_three_partition_reduction_with_project_simplified_milp():
    """The project's exact simplified-placement MILP decides the constructed instances like 3-PARTITION."""
    simplified = pytest.importorskip("formulations.chain_simplified")
    from serveplan.chain.instance import ChainInstance, Server
    from serveplan.solvers import Status, solve

    rng = np.random.default_rng(70)
    answers = []
    theta = Fraction(1)
    for _ in range(8):
        x, B = _random_three_partition(rng)
        servers, L, c, s_m, s_c, R = build_three_partition_reduction(x, B, theta)
        rho = 0.5
        inst = ChainInstance(
            servers=tuple(
                Server(f"s{j}", float(s["M"]), float(s["tc"]), float(s["tp"])) for j, s in enumerate(servers)
            ),
            num_blocks=L,
            block_memory_gb=float(s_m),
            cache_memory_gb=float(s_c),
            # lambda / (rho_bar c) = R, less a relative 1e-9 so that float round-off cannot reject exact triples
            arrival_rate=float(R) * rho * c * (1 - 1e-9),
            target_load=rho,
        )
        model = simplified.build_model(inst, c)
        res = solve(model)
        yes = _three_partition_yes(x, B)
        if yes:
            assert res.status == Status.OPTIMAL and round(res.objective) == len(x) // 3
        else:
            assert res.status == Status.INFEASIBLE
        answers.append(yes)
    assert any(answers) and not all(answers)
