"""GBP-CR: Greedy Block Placement with Cache Reservation (Sun, He, Hou 2026, Algorithm 1).

For a cache-reservation parameter c, every server hosts as many blocks as fit next to cache for c concurrent
jobs per block, m_j(c) = min(floor(M_j / (s_m + s_c c)), L), and servers are chained greedily in increasing order
of amortized time t~_j(c) = t_j(c) / m_j(c), t_j(c) = tau^c_j + tau^p_j m_j(c). Chains are disjoint and each
covers blocks 1..L; each completed chain of time T = sum t_j(c) adds 1/T to the scaled rate nu, and the
algorithm stops once nu >= lambda / (rho_bar c).

Guarantee (Theorem "GBP-CR optimality"): with equal memory M_j = M, GBP-CR solves the simplified block
placement problem (fewest disjoint chains reaching the scaled rate) optimally. Complexity O(J log J).

Two readings of the algorithm are flags (server_chain.md section 7, items 1-2):

``last_server``
    ``"shift"`` (paper, default): the server completing a chain is shifted left to [L - m_j(c) + 1, L]
    (it overlaps its predecessor; more routing edges for GCA). ``"truncate"`` (authors' MATLAB code): it
    hosts only the blocks still missing, freeing memory for cache.
``stop_rule``
    ``"rate"`` (paper, default): stop once the scaled rate is reached; later servers stay unused.
    ``"max_chains"`` (authors' code for unit tests): form as many complete chains as the servers allow.

In both readings a trailing incomplete chain leaves its servers unused, and K(c) is the number of chains the
rate needs (the paper's definition), infinite when even all chains do not reach it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import Chain, Placement, slots_from_memory

LAST_SERVER_RULES = ("shift", "truncate")
STOP_RULES = ("rate", "max_chains")


@dataclass(frozen=True)
class GbpCrResult:
    """A GBP-CR run for one c.

    Attributes
    ----------
    c : int
        The cache-reservation parameter.
    placement : Placement
    chains : tuple of Chain
        The disjoint chains built, in construction order (fastest first).
    chain_bound_times_s : tuple of float
        sum_{j in k} t_j(c) for each chain: the paper's upper bound on its service time.
    num_needed : int or None
        K(c): number of chains (in order) whose bound rates sum to lambda / (rho_bar c); None (infinite)
        when all chains together do not reach it.
    reason : str
        Why c is infeasible ("" when feasible).
    """

    c: int
    placement: Placement
    chains: tuple[Chain, ...]
    chain_bound_times_s: tuple[float, ...]
    num_needed: int | None
    reason: str = ""

    @property
    def feasible(self) -> bool:
        """The chains reach the scaled rate target."""
        return self.num_needed is not None

    @property
    def surrogate(self) -> float:
        """Surrogate c * K(c) (infinite when infeasible): the paper's surrogate number of job servers."""
        return math.inf if self.num_needed is None else float(self.c * self.num_needed)


@numba.njit(cache=True)
def _place(order, m, t, L, target, shift, stop_at_rate):  # pragma: no cover - compiled
    """Algorithm 1's loop.

    Returns (a, m, servers of completed chains in order, their m_ij, chain end offsets, chain bound times,
    K(c) or -1).
    """
    J = m.shape[0]
    first = np.zeros(J, dtype=np.int64)
    count = np.zeros(J, dtype=np.int64)
    seq = np.empty(J, dtype=np.int64)
    seq_blocks = np.empty(J, dtype=np.int64)
    ends = np.empty(J, dtype=np.int64)
    times = np.empty(J, dtype=np.float64)
    n_seq = 0
    n_chains = 0
    chain_start = 0
    a = 1
    T = 0.0
    nu = 0.0
    needed = -1
    for x in range(order.shape[0]):
        j = order[x]
        mj = m[j]
        if mj == 0:
            continue
        if shift:
            aj = min(a, L - mj + 1)  # the last server of a chain is shifted left to end at block L
            nj = mj
        else:
            aj = a
            nj = min(mj, L - a + 1)  # truncated to the blocks still missing
        first[j] = aj
        count[j] = nj
        seq[n_seq] = j
        seq_blocks[n_seq] = aj + nj - a  # j runs from the next block to its own last block
        n_seq += 1
        T += t[j]
        a = min(a + mj - 1, L) + 1
        if a > L:
            ends[n_chains] = n_seq
            times[n_chains] = T
            n_chains += 1
            nu += 1.0 / T
            chain_start = n_seq
            if needed < 0 and nu >= target * (1 - 1e-12):
                needed = n_chains
                if stop_at_rate:
                    break
            a = 1
            T = 0.0
    for x in range(chain_start, n_seq):  # a trailing incomplete chain is not a chain: its servers stay unused
        first[seq[x]] = 0
        count[seq[x]] = 0
    return first, count, seq[:chain_start], seq_blocks[:chain_start], ends[:n_chains], times[:n_chains], needed


def max_blocks(instance: ChainInstance, c: int) -> np.ndarray:
    """m_j(c) = min(floor(M_j / (s_m + s_c c)), L) for every server (int array)."""
    per_block = instance.block_memory_gb + instance.cache_memory_gb * c
    m = slots_from_memory(instance.memory_gb, per_block)
    return np.minimum(m, instance.num_blocks)


def max_reservation(instance: ChainInstance) -> int:
    """c_max = floor((max_j M_j - s_m) / s_c): the largest c for which some server hosts a block."""
    return int(slots_from_memory(instance.memory_gb.max() - instance.block_memory_gb, instance.cache_memory_gb))


def gbp_cr(
    instance: ChainInstance,
    c: int,
    *,
    last_server: str = "shift",
    stop_rule: str = "rate",
    order: np.ndarray | None = None,
) -> GbpCrResult:
    """Run GBP-CR with cache reservation ``c``.

    Parameters
    ----------
    instance : ChainInstance
    c : int
        Cache-reservation parameter, >= 1.
    last_server : {"shift", "truncate"}, default "shift"
    stop_rule : {"rate", "max_chains"}, default "rate"
    order : array of int, optional
        Visit servers in this order instead of increasing t~_j(c) (random placements use a permutation).

    Returns
    -------
    GbpCrResult
        Infeasible c (sum_j m_j(c) < L, or the rate is never reached) is a result with ``num_needed=None``.
    """
    if last_server not in LAST_SERVER_RULES:
        raise ValueError(f"last_server must be one of {LAST_SERVER_RULES}, got {last_server!r}")
    if stop_rule not in STOP_RULES:
        raise ValueError(f"stop_rule must be one of {STOP_RULES}, got {stop_rule!r}")
    if c < 1:
        raise ValueError(f"c must be >= 1, got {c}")
    J, L = instance.num_servers, instance.num_blocks
    m = max_blocks(instance, c)
    t = instance.comm_time_s + instance.compute_time_s * m
    target = instance.required_rate / c
    if int(m.sum()) < L:
        reason = (
            f"with c={c} the servers host at most {int(m.sum())} blocks in total, fewer than L={L} "
            f"(m_j(c) = floor(M_j / (s_m + s_c c)))"
        )
        return GbpCrResult(c, Placement.unused(J), (), (), None, reason)
    if order is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            amortized = np.where(m > 0, t / np.maximum(m, 1), np.inf)
        # stable sort: ties keep server index order, so results are reproducible
        order = np.argsort(amortized, kind="stable")
    first, count, seq, seq_blocks, ends, times, needed_k = _place(
        np.asarray(order, dtype=np.int64), m.astype(np.int64), t, L, target, last_server == "shift",
        stop_rule == "rate",
    )  # fmt: skip
    starts = np.concatenate((np.zeros(1, dtype=np.int64), ends))[: ends.size]
    chains = tuple(
        Chain.trusted(tuple(seq[s:e].tolist()), tuple(seq_blocks[s:e].tolist()))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
    )
    needed = None if needed_k < 0 else int(needed_k)
    placement = Placement(tuple(first.tolist()), tuple(count.tolist()))
    reason = ""
    if needed is None:
        reason = (
            f"with c={c} the {len(chains)} disjoint chain(s) GBP-CR can form reach a scaled rate of "
            f"{float(np.sum(1.0 / times)):.6g}/s, below lambda/(rho_bar c) = {target:.6g}/s"
        )
    return GbpCrResult(c, placement, chains, tuple(times.tolist()), needed, reason)
