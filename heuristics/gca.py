"""GCA: Greedy Cache Allocation (Sun, He, Hou 2026, Algorithm 2).

Given any block placement, GCA repeatedly takes the fastest chain of the routing graph, gives it the largest
capacity its servers' residual cache slots allow, c_k = min_{(i,j) in k} floor(M_j / m_ij), charges m_ij c_k
slots on each server, and prunes every in-link (i', j) whose m_i'j no longer fits in j's residual slots
(server_chain.md section 4.3; the authors' Python removes only the path's own links, which we do not follow).
Theorem "GCA sufficiency": dispatching by join-the-fastest-free-job-server needs only GCA's chains with at most
c_k jobs each.

Implementation. The routing graph is a DAG ordered by the last hosted block e_j = a_j + m_j - 1: an edge (i, j)
exists iff a_j - 1 <= e_i <= e_j - 1 and costs tau^c_j + tau^p_j (e_j - e_i). An in-link fits iff
m_ij = e_j - e_i <= R_j (the residual slots of j), so j's live in-links are exactly the predecessors with
e_i in the window [max(a_j - 1, e_j - R_j), e_j - 1]; residuals only shrink, so this window *is* the pruned edge
set of the paper, with no edge list kept. The fastest chain is a DP over servers in order of e_j, keeping for
every end block b the best distance of a server ending at b (dist_i - tau^p_j e_i separates into a per-b
minimum): O(sum_j m_j) per chain, numba-compiled. Each iteration narrows the bottleneck server's window by at
least one block, so there are at most sum_j m_j + 1 iterations (the paper's O(J^2) edge bound, tighter here):
O((sum_j m_j)^2) total instead of the paper's O(J^4).

Ties between equally fast chains go to the predecessor with the smallest end block, then the smallest server
index; the sink takes the first server (in end-block, index order) of minimal distance.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numba
import numpy as np

from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import Chain, Placement, residual_slots


@numba.njit(cache=True)
def _fastest_chain(nodes, first, last, residual, comm, compute, num_blocks):  # pragma: no cover - compiled
    """Fastest source-to-sink chain over live links; returns (servers in order, blocks) or empty arrays."""
    n = nodes.shape[0]
    inf = np.inf
    best_val = np.full(num_blocks + 1, inf)
    best_node = np.full(num_blocks + 1, -1, dtype=np.int64)
    best_val[0] = 0.0  # the dummy source "ends" at block 0
    dist = np.full(n, inf)
    pred = np.full(n, -1, dtype=np.int64)  # position in nodes; -1 = source
    for p in range(n):
        j = nodes[p]
        e = last[j]
        r = residual[j]
        if r <= 0:
            continue
        lo = max(first[j] - 1, e - r)
        tp = compute[j]
        bv = inf
        bb = -1
        for b in range(lo, e):
            v = best_val[b] - tp * b
            if v < bv:
                bv = v
                bb = b
        if bb < 0 or bv == inf:
            continue
        d = bv + comm[j] + tp * e
        dist[p] = d
        pred[p] = best_node[bb]
        if d < best_val[e]:
            best_val[e] = d
            best_node[e] = p
    end = -1
    dmin = inf
    for p in range(n):
        if last[nodes[p]] == num_blocks and dist[p] < dmin:
            dmin = dist[p]
            end = p
    if end < 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    length = 0
    p = end
    while p >= 0:
        length += 1
        p = pred[p]
    servers = np.empty(length, dtype=np.int64)
    blocks = np.empty(length, dtype=np.int64)
    p = end
    k = length - 1
    while p >= 0:
        j = nodes[p]
        q = pred[p]
        prev_end = 0 if q < 0 else last[nodes[q]]
        servers[k] = j
        blocks[k] = last[j] - prev_end
        k -= 1
        p = q
    return servers, blocks


@dataclass(frozen=True)
class GcaResult:
    """GCA's chains (fastest first) and capacities.

    Attributes
    ----------
    paths : tuple of (servers, blocks) int arrays
        Each chain's servers in order and the blocks m_ij each processes.
    capacities : tuple of int
    service_times_s : tuple of float
        T_k of each chain.
    residual_slots : numpy.ndarray
        Cache slots left on each server after the allocation.
    """

    paths: tuple[tuple[np.ndarray, np.ndarray], ...]
    capacities: tuple[int, ...]
    service_times_s: tuple[float, ...]
    residual_slots: np.ndarray

    @cached_property
    def chains(self) -> tuple[Chain, ...]:
        """The chains as :class:`Chain` objects (built on first use: tuning only needs rates)."""
        return tuple(Chain.trusted(tuple(s.tolist()), tuple(b.tolist())) for s, b in self.paths)

    @property
    def total_rate(self) -> float:
        """sum_k c_k / T_k (jobs per second)."""
        return float(sum(c / t for c, t in zip(self.capacities, self.service_times_s, strict=True)))

    def job_servers_needed(self, required_rate: float) -> int | None:
        """GCA's own score: job servers taken fastest first until sum mu_k c >= required rate (None if never)."""
        acc, used = 0.0, 0
        for c, t in zip(self.capacities, self.service_times_s, strict=True):
            if acc + c / t >= required_rate * (1 - 1e-12):
                return used + int(np.ceil((required_rate - acc) * t - 1e-9))
            acc += c / t
            used += c
        return None


def gca(instance: ChainInstance, placement: Placement, *, max_chains: int | None = None) -> GcaResult:
    """Run GCA on ``placement``.

    Parameters
    ----------
    instance : ChainInstance
    placement : Placement
        Any placement (not necessarily GBP-CR's); servers whose blocks do not fit get no chains.
    max_chains : int, optional
        Stop after this many chains (default: until the source is cut off from the sink).

    Returns
    -------
    GcaResult
        Chains in the order found (non-increasing rate), each with capacity >= 1.
    """
    first = np.asarray(placement.first_block, dtype=np.int64)
    count = np.asarray(placement.num_blocks, dtype=np.int64)
    last = first + count - 1
    residual = residual_slots(instance, placement).astype(np.int64)
    used = np.flatnonzero(count > 0)
    nodes = used[np.lexsort((used, last[used]))].astype(np.int64)
    comm = instance.comm_time_s
    compute = instance.compute_time_s
    L = instance.num_blocks
    paths: list[tuple[np.ndarray, np.ndarray]] = []
    caps: list[int] = []
    times: list[float] = []
    while max_chains is None or len(paths) < max_chains:
        servers, blocks = _fastest_chain(nodes, first, last, residual, comm, compute, L)
        if servers.size == 0:
            break
        ck = int((residual[servers] // blocks).min())
        residual[servers] -= blocks * ck
        paths.append((servers, blocks))
        caps.append(ck)
        times.append(float((comm[servers] + compute[servers] * blocks).sum()))
    return GcaResult(tuple(paths), tuple(caps), tuple(times), residual)
