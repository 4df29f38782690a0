"""Executable check of proofs/chain_service_rate_bound.md (Lemma 3.2, service-rate bound)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from serveplan.chain.instance import ChainInstance, Server
from serveplan.chain.placement import Chain, ChainSolution, Placement
from serveplan.chain.verify import verify


def _instance(rng: np.random.Generator):
    J = int(rng.integers(3, 8))
    L = int(rng.integers(2, 9))
    s_m, s_c = 1.0, 0.25
    M = rng.uniform(1.0, 1.0 + 3.0 * L, size=J)
    tc = rng.uniform(0.0, 1.0, size=J)
    tp = rng.uniform(0.05, 1.0, size=J)
    inst = ChainInstance(
        servers=tuple(Server(f"s{j}", float(M[j]), float(tc[j]), float(tp[j])) for j in range(J)),
        num_blocks=L,
        block_memory_gb=s_m,
        cache_memory_gb=s_c,
        arrival_rate=1e-6,  # the rate target is not the subject here
        target_load=0.5,
    )
    return inst, J, L, s_m, s_c, M, tc, tp


def _lemma_placement(order_by_set, m, L, J):
    """The proof's construction: consecutive ranges, the covering server shifted left to end at L."""
    first, count, chains = [0] * J, [0] * J, []
    for servers in order_by_set:
        e, used, blocks = 0, [], []
        for j in servers:
            if e + m[j] >= L:
                first[j], count[j] = L - m[j] + 1, m[j]
                used.append(j)
                blocks.append(L - e)
                break
            first[j], count[j] = e + 1, m[j]
            used.append(j)
            blocks.append(m[j])
            e += m[j]
        chains.append((tuple(used), tuple(blocks)))
    return first, count, chains


def test_disjoint_covering_sets_give_chains_meeting_the_bound():
    rng = np.random.default_rng(32)
    done = 0
    for _ in range(120):
        inst, J, L, s_m, s_c, M, tc, tp = _instance(rng)
        c = int(rng.integers(1, 4))
        m = [min(math.floor(M[j] / (s_m + s_c * c)), L) for j in range(J)]
        t = [tc[j] + tp[j] * m[j] for j in range(J)]
        # a random family of disjoint covering sets: shuffle, cut greedily whenever coverage is reached
        perm = [int(j) for j in rng.permutation(J) if m[j] > 0]
        family, cur, cov = [], [], 0
        for j in perm:
            cur.append(j)
            cov += m[j]
            if cov >= L:
                family.append(cur)
                cur, cov = [], 0
        if not family:
            continue
        first, count, chains = _lemma_placement(family, m, L, J)
        slots = [math.floor((M[j] - s_m * count[j]) / s_c) for j in range(J)]
        bound = c * sum(1.0 / sum(t[j] for j in s) for s in family)
        nu = 0.0
        for servers, blocks in chains:
            prev_a, prev_m = 0, 1  # dummy source hosts block 0
            for j, b in zip(servers, blocks, strict=True):
                end = prev_a + prev_m
                assert first[j] <= end <= first[j] + count[j] - 1  # (prev, j) is an edge
                assert b == first[j] + count[j] - end >= 1
                assert c * b <= slots[j]
                prev_a, prev_m = first[j], count[j]
            assert prev_a + prev_m - 1 == L
            nu += c / sum(tc[j] + tp[j] * b for j, b in zip(servers, blocks, strict=True))
        assert nu >= bound * (1 - 1e-12)
        sol = ChainSolution(
            Placement(tuple(first), tuple(count)), tuple(Chain(s, b) for s, b in chains), (c,) * len(chains)
        )
        rep = verify(inst, sol)
        assert rep.checks["memory"] and rep.checks["chains"] and rep.checks["coverage"], rep
        done += 1
    assert done > 50


def test_project_simplified_decode_meets_the_bound():
    simplified = pytest.importorskip("formulations.chain_simplified")
    from serveplan.chain.placement import total_service_rate

    rng = np.random.default_rng(33)
    done = 0
    for _ in range(20):
        inst = _instance(rng)[0]
        c = int(rng.integers(1, 4))
        model = simplified.build_model(inst, c)
        t = simplified.reserved_time_s(inst, c)
        chosen, taken = [], set()
        for s in rng.permutation(len(model.simplified_subsets)):
            sub = model.simplified_subsets[int(s)]
            if not taken & set(sub):
                chosen.append(int(s))
                taken |= set(sub)
        if not chosen:
            continue
        for s in range(len(model.simplified_subsets)):
            model.x[s].set_value(1 if s in chosen else 0)
        sol = simplified.decode(inst, model)
        rep = verify(inst, sol)
        assert rep.checks["memory"] and rep.checks["chains"] and rep.checks["coverage"], rep
        bound = c * sum(1.0 / float(t[list(model.simplified_subsets[s])].sum()) for s in chosen)
        assert total_service_rate(inst, sol) >= bound * (1 - 1e-12)
        done += 1
    assert done > 8
