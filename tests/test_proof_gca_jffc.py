"""Executable check of proofs/gca_sufficiency_jffs.md (Theorem "GCA sufficiency").

Memory-aware join-the-fastest-free-server over *all* chains of a placement is simulated with an independent
event loop and compared job by job with JFFC over GCA's chains and capacities.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest


def _all_chains(first: list[int], count: list[int], L: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every j_0 -> j_{J+1} path: (servers, blocks processed)."""
    J = len(first)
    used = [j for j in range(J) if count[j] > 0]
    out = []

    def rec(prev_end: int, servers: list[int], blocks: list[int]):
        if prev_end == L:
            out.append((tuple(servers), tuple(blocks)))
            return
        for j in used:
            last = first[j] + count[j] - 1
            if j not in servers and first[j] <= prev_end + 1 <= last:
                rec(last, [*servers, j], [*blocks, last - prev_end])

    rec(0, [], [])
    return out


def _random_setting(rng: np.random.Generator):
    while True:
        J = int(rng.integers(3, 6))
        L = int(rng.integers(2, 6))
        first, count = [], []
        for _ in range(J):
            m = int(rng.integers(1, L + 1))
            a = int(rng.integers(1, L - m + 2))
            first.append(a)
            count.append(m)
        chains = _all_chains(first, count, L)
        slots = [int(x) for x in rng.integers(1, 9, size=J)]
        tc = rng.uniform(0.0, 1.0, size=J)
        tp = rng.uniform(0.1, 1.0, size=J)
        # interesting cases only: GCA finds several chains
        if len(chains) >= 2 and len(gca_reference(chains, slots, tc, tp)) >= 2:
            return J, L, first, count, slots, tc, tp, chains


def _time(chain, tc, tp) -> float:
    servers, blocks = chain
    return float(sum(tc[j] + tp[j] * b for j, b in zip(servers, blocks, strict=True)))


def _fits(chain, residual) -> bool:
    return all(residual[j] >= b for j, b in zip(*chain, strict=True))


def gca_reference(chains, slots, tc, tp):
    """GCA with the exact pruning rule: the fastest chain all of whose links still fit, filled to capacity."""
    residual = list(slots)
    out = []
    while True:
        free = [ch for ch in chains if _fits(ch, residual)]
        if not free:
            return out
        ch = min(free, key=lambda p: (_time(p, tc, tp), p))
        ck = min(residual[j] // b for j, b in zip(*ch, strict=True))
        assert ck >= 1
        for j, b in zip(*ch, strict=True):
            residual[j] -= b * ck
        out.append((ch, ck))


def jffs_all(chains, slots, tc, tp, arrivals, sizes):
    """Memory-aware JFFS over all chains: per job (chain, start, finish); also the peak count per chain."""
    order = sorted(chains, key=lambda p: (_time(p, tc, tp), p))
    times = {p: _time(p, tc, tp) for p in chains}
    residual = list(slots)
    n = len(arrivals)
    chain_of, start, finish = [None] * n, np.zeros(n), np.zeros(n)
    busy: list[tuple[float, int]] = []
    queue: list[int] = []
    qhead = 0
    in_service: dict = {}
    peak: dict = {}

    def try_start(i: int, t: float) -> bool:
        for p in order:
            if _fits(p, residual):
                for j, b in zip(*p, strict=True):
                    residual[j] -= b
                chain_of[i], start[i], finish[i] = p, t, t + sizes[i] * times[p]
                heapq.heappush(busy, (finish[i], i))
                in_service[p] = in_service.get(p, 0) + 1
                peak[p] = max(peak.get(p, 0), in_service[p])
                return True
        return False

    for i in range(n):
        t = arrivals[i]
        while busy and busy[0][0] <= t:  # completions first at equal times
            tf, k = heapq.heappop(busy)
            for j, b in zip(*chain_of[k], strict=True):
                residual[j] += b
            in_service[chain_of[k]] -= 1
            while qhead < len(queue) and try_start(queue[qhead], tf):
                qhead += 1
        if qhead < len(queue) or not try_start(i, t):
            queue.append(i)
    while busy:
        tf, k = heapq.heappop(busy)
        for j, b in zip(*chain_of[k], strict=True):
            residual[j] += b
        in_service[chain_of[k]] -= 1
        while qhead < len(queue) and try_start(queue[qhead], tf):
            qhead += 1
    return chain_of, start, finish, peak


def jffc_reference(gca_chains, tc, tp, arrivals, sizes):
    """JFFC over (chain, capacity) pairs given fastest first: per job (chain, start, finish)."""
    caps = [c for _, c in gca_chains]
    times = [_time(p, tc, tp) for p, _ in gca_chains]
    z = [0] * len(caps)
    n = len(arrivals)
    chain_of, start, finish = [None] * n, np.zeros(n), np.zeros(n)
    busy: list[tuple[float, int]] = []
    queue: list[int] = []
    qhead = 0

    def begin(i: int, l: int, t: float):
        chain_of[i], start[i], finish[i] = gca_chains[l][0], t, t + sizes[i] * times[l]
        heapq.heappush(busy, (finish[i], i, l))

    def complete(tf: float, l: int):
        nonlocal qhead
        if qhead < len(queue):
            begin(queue[qhead], l, tf)
            qhead += 1
        else:
            z[l] -= 1

    for i in range(n):
        t = arrivals[i]
        while busy and busy[0][0] <= t:
            tf, _, l = heapq.heappop(busy)
            complete(tf, l)
        free = [l for l in range(len(caps)) if z[l] < caps[l]]
        if free:
            l = min(free, key=lambda x: (times[x], x))
            z[l] += 1
            begin(i, l, t)
        else:
            queue.append(i)
    while busy:
        tf, _, l = heapq.heappop(busy)
        complete(tf, l)
    return chain_of, start, finish


def _workload(rng, total_rate: float, n: int):
    lam = float(rng.uniform(0.6, 1.2)) * total_rate
    return np.cumsum(rng.exponential(1 / lam, size=n)), rng.exponential(1.0, size=n)


def test_jffs_over_all_chains_equals_jffc_over_gca_chains():
    rng = np.random.default_rng(5)
    queued_somewhere = False
    for _ in range(25):
        _, _, _, _, slots, tc, tp, chains = _random_setting(rng)
        gca_chains = gca_reference(chains, slots, tc, tp)
        rate = sum(c / _time(p, tc, tp) for p, c in gca_chains)
        arrivals, sizes = _workload(rng, rate, 300)
        a_chain, a_start, a_finish, peak = jffs_all(chains, slots, tc, tp, arrivals, sizes)
        b_chain, b_start, b_finish = jffc_reference(gca_chains, tc, tp, arrivals, sizes)
        assert a_chain == b_chain
        np.testing.assert_allclose(a_start, b_start, rtol=0, atol=1e-9)
        np.testing.assert_allclose(a_finish, b_finish, rtol=0, atol=1e-9)
        caps = dict(gca_chains)
        assert set(peak) <= set(caps) and all(peak[p] <= caps[p] for p in peak)
        queued_somewhere |= bool(np.any(a_start > arrivals + 1e-12))
    assert queued_somewhere, "the workloads must exercise the central queue"


def test_project_gca_and_jffc_reproduce_jffs_over_all_chains():
    gca_mod = pytest.importorskip("heuristics.gca")
    sim = pytest.importorskip("serveplan.chain.simulator")
    from serveplan.chain.instance import ChainInstance, Server
    from serveplan.chain.placement import Placement

    rng = np.random.default_rng(6)
    for _ in range(20):
        J, L, first, count, slots, tc, tp, chains = _random_setting(rng)
        # s_m = s_c = 1: M_j = m_j + slots_j + 1/2 gives exactly slots_j cache slots.
        inst = ChainInstance(
            servers=tuple(Server(f"s{j}", count[j] + slots[j] + 0.5, tc[j], tp[j]) for j in range(J)),
            num_blocks=L,
            block_memory_gb=1.0,
            cache_memory_gb=1.0,
            arrival_rate=1.0,
        )
        res = gca_mod.gca(inst, Placement(tuple(first), tuple(count)))
        ref = gca_reference(chains, slots, tc, tp)
        assert [(ch.servers, ch.blocks) for ch in res.chains] == [p for p, _ in ref]
        assert list(res.capacities) == [c for _, c in ref]
        # each GCA step removes at least its bottleneck link: at most |E^(0)| chains (links into real servers)
        links = {(p[t - 1] if t else -1, p[t], b[t]) for p, b in chains for t in range(len(p))}
        initial = [lk for lk in links if lk[2] <= slots[lk[1]]]
        assert 1 <= len(res.chains) <= len(initial)
        mu = 1.0 / np.array(res.service_times_s)
        arrivals, sizes = _workload(rng, float(mu @ np.array(res.capacities)), 300)
        out = sim.simulate(arrivals, sizes, 1.0 / mu, np.array(res.capacities), mu=mu, policy="jffc")
        a_chain, a_start, a_finish, _ = jffs_all(chains, slots, tc, tp, arrivals, sizes)
        got = [(res.chains[k].servers, res.chains[k].blocks) for k in out.chain]
        assert got == a_chain
        np.testing.assert_allclose(out.start_s, a_start, rtol=0, atol=1e-9)
        np.testing.assert_allclose(out.finish_s, a_finish, rtol=0, atol=1e-9)
        assert math.isclose(float(np.max(out.finish_s)), float(np.max(a_finish)), abs_tol=1e-9)
