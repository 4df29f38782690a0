"""BPRR (Sun, He, Ji, Parag, Performance 2025): CG-BP block placement and WS-RR routing.

The predecessor of the chain-serving paper, used there as a baseline (digest section 5.2). Re-implemented
from the algorithm descriptions, in the units of a :class:`~serveplan.chain.instance.ChainInstance`
(per-job times tau^c_j, tau^p_j instead of per-token times; the orderings are the same).

CG-BP (Conservative Greedy Block Placement, steps 1-2 of CG-BPRR)
    m_j = min(floor(M_j / (s_m + s_c R)), L): every server keeps cache for R concurrent requests on each
    hosted block. Servers are taken in increasing amortized time t~_j = (tau^c_j + tau^p_j m_j) / m_j and
    each one's window is chosen from per-block capacities Cb (requests) and scores Tb:

    * phase 1 (some block has Cb < R): among windows that contain a block with Cb < R, the one with the
      largest sum of Tb;
    * phase 2 (every Cb >= R): the window whose sorted Cb vector is lexicographically smallest;
    * update Tb[w] -= (max t~ - t~_j) * min((R - Cb[w])_+, s_j), Cb[w] += s_j, with
      s_j = floor((M_j - s_m m_j) / (s_c m_j)) the sessions j can hold on all its blocks.

    Infeasible if some block ends with Cb < R. Ties go to the smallest start.
R (``bprr:R``)
    The number of concurrent requests to survive; default the authors' choice
    R = ceil(min(lambda T^ + sqrt(lambda T^), R_max)), R_max = floor((sum M_j - s_m (L + J)) / (s_c (L + J))),
    T^ = the time of the fastest chain that GBP-like greedy covering (servers in increasing t~ at R = 1)
    forms: a crude estimate of the fastest chain.
WS-RR (waiting-penalized shortest-path routing), per request
    Shortest path over next-block positions; using server j from block p costs
    t^W_j(b) + tau^c_j + tau^p_j b with b = a_j + m_j - p, where t^W_j(b) is the time until b slots are free
    on j according to the estimated release times of the requests assigned to j (pop them in order of
    estimated release). The request is planned to start at now + max over its path of t^W and starts when
    its slots are actually free (with random job sizes the estimates drift: "surprise waiting").
    ``retry_quantisation`` (off; the chain paper's v4 code removes it) rounds the planned wait up to
    PETALS' cumulative backoff 1, 3, 7, ... s (capped steps of 60 s).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from serveplan.chain.instance import ChainInstance
from serveplan.chain.path_simulator import PlacedRouter, Route, ServerState, placement_only_result
from serveplan.chain.placement import Placement, residual_slots, slots_from_memory
from serveplan.errors import InputError
from serveplan.registry import Budget, MethodResult

_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class CgBpResult:
    """A CG-BP run.

    Attributes
    ----------
    placement : Placement
    R : int
    feasible : bool
        Every block reached capacity R.
    block_capacity : ndarray of int
        Cb, requests each block can hold.
    """

    placement: Placement
    R: int
    feasible: bool
    block_capacity: np.ndarray


def cg_bp_blocks(instance: ChainInstance, R: int) -> np.ndarray:
    """m_j = min(floor(M_j / (s_m + s_c R)), L)."""
    m = slots_from_memory(instance.memory_gb, instance.block_memory_gb + instance.cache_memory_gb * R)
    return np.clip(m, 0, instance.num_blocks)


def default_R(instance: ChainInstance) -> int:
    """The authors' R: ceil(min(lambda T^ + sqrt(lambda T^), R_max)), at least 1 (see module docstring)."""
    L, J = instance.num_blocks, instance.num_servers
    r_max = math.floor(
        (instance.memory_gb.sum() - instance.block_memory_gb * (L + J)) / (instance.cache_memory_gb * (L + J))
    )
    m = cg_bp_blocks(instance, 1)
    t = instance.comm_time_s + instance.compute_time_s * m
    used = m > 0
    order = np.argsort(np.where(used, t / np.maximum(m, 1), np.inf), kind="stable")
    covered, t_hat = 0, 0.0
    for j in order:
        if not used[j]:
            break
        covered += m[j]
        t_hat += instance.comm_time_s[j] + instance.compute_time_s[j] * min(m[j], L - covered + m[j])
        if covered >= L:
            break
    load = instance.arrival_rate * t_hat
    return max(1, math.ceil(min(load + math.sqrt(load), max(r_max, 1))))


def cg_bp(instance: ChainInstance, R: int) -> CgBpResult:
    """CG-BP placement for concurrency target R (module docstring). O(J L^2 log L)."""
    if R < 1:
        raise InputError("must be >= 1", field="R", value=R)
    L = instance.num_blocks
    m = cg_bp_blocks(instance, R)
    tc, tp = instance.comm_time_s, instance.compute_time_s
    used = np.flatnonzero(m > 0)
    t_amort = np.full(instance.num_servers, np.inf)
    t_amort[used] = (tc[used] + tp[used] * m[used]) / m[used]
    sessions = np.zeros(instance.num_servers, dtype=np.int64)
    sessions[used] = slots_from_memory(
        instance.memory_gb[used] - instance.block_memory_gb * m[used], instance.cache_memory_gb * m[used]
    )
    max_t = float(t_amort[used].max()) if len(used) else 0.0
    cb = np.zeros(L, dtype=np.int64)
    tb = np.full(L, R * (max_t + 1.0))
    a = [0] * instance.num_servers
    mm = [0] * instance.num_servers
    for j in sorted(used.tolist(), key=lambda j: (t_amort[j], j)):
        w = int(m[j])
        starts = range(L - w + 1)
        if np.any(cb < R):
            cands = [s for s in starts if np.any(cb[s : s + w] < R)]
            s_best = max(cands, key=lambda s: (float(tb[s : s + w].sum()), -s))
        else:
            s_best = min(starts, key=lambda s: (tuple(sorted(cb[s : s + w].tolist())), s))
        win = slice(s_best, s_best + w)
        tb[win] -= (max_t - t_amort[j]) * np.minimum(np.maximum(R - cb[win], 0), sessions[j])
        cb[win] += sessions[j]
        a[j] = s_best + 1
        mm[j] = w
    return CgBpResult(Placement(tuple(a), tuple(mm)), R, bool(np.all(cb >= R)), cb)


class WsRrRouter(PlacedRouter):
    """WS-RR: shortest path with waiting penalties from estimated releases (module docstring)."""

    def __init__(self, instance: ChainInstance, placement: Placement, *, retry_quantisation: bool = False) -> None:
        super().__init__(instance, placement)
        self.retry_quantisation = retry_quantisation

    @staticmethod
    def wait_s(now: float, need: int, state: ServerState, j: int) -> float:
        """t^W_j: time until ``need`` slots are free on j by the estimated releases (inf if never)."""
        cap = int(state.slot_capacity[j])
        if need > cap:
            return math.inf
        free = cap - int(state.assigned[j])
        if free >= need:
            return 0.0
        for slots, release in sorted(state.holders[j].values(), key=lambda x: x[1]):
            free += slots
            if free >= need:
                return max(release - now, 0.0)
        return math.inf

    @staticmethod
    def quantise(wait: float) -> float:
        """Round a wait up to PETALS' cumulative retry times 1, 3, 7, ... s (steps capped at 60 s)."""
        if wait <= 0:
            return 0.0
        total, step = 0.0, 1.0
        while total < wait:
            total += step
            step = min(2 * step, 60.0)
        return total

    def route(self, now: float, request: int, state: ServerState) -> Route | None:
        """Dynamic program over next-block positions; returns the path and its planned start."""

        def edge(j: int, p: int, b: int, cost_to_p: float) -> tuple[float, float] | None:
            b = int(b)
            w = self.wait_s(now, b, state, j)
            if not math.isfinite(w):
                return None
            return cost_to_p + w + self.comm[j] + self.compute[j] * b, w

        path = self.shortest_path(edge)
        if path is None:
            return None
        servers, blocks, waits = path
        wait = max(waits)
        if self.retry_quantisation:
            wait = self.quantise(wait)
        return Route(servers, blocks, now + wait)


def solve_bprr(instance: ChainInstance, budget: Budget, param: str | None = None) -> MethodResult:
    """The ``bprr`` method (``bprr:R`` fixes R): CG-BP placement; WS-RR routing happens at simulation time.

    The solution holds the placement and no chains (BPRR reserves no per-chain cache); ``verified`` means
    every constraint except the rate target holds. ``info["routing"] = "ws_rr"`` tells the ``simulate``
    evaluator to route per request over the residual cache slots floor((M_j - s_m m_j) / s_c).
    """
    t0 = time.perf_counter()
    if param is not None:
        try:
            R = int(param)
        except ValueError:
            raise InputError("R must be an integer", field="method", value=f"bprr:{param}") from None
    else:
        R = int(budget.options.get("R", default_R(instance)))
    res = cg_bp(instance, R)
    extra = []
    if not res.feasible:
        extra.append(f"cg_bp: some block holds fewer than R={R} requests (min {int(res.block_capacity.min())})")
    info = {
        "routing": "ws_rr",
        "R": R,
        "cg_bp_feasible": res.feasible,
        "slot_capacity": np.maximum(residual_slots(instance, res.placement), 0).tolist(),
        "retry_quantisation": str(budget.options.get("retry_quantisation", False)).lower() in _TRUE,
    }
    return placement_only_result("bprr", instance, res.placement, extra, t0, info)
