"""Request-level simulation of per-request path routing with per-server cache accounting.

The baselines of Sun, He, Hou 2026 (PETALS and BPRR, digest section 5) do not compose chains ahead of time:
each arriving request picks its own path through the placed blocks, using what it knows about the servers'
cache, and then waits until every server on the path can actually allocate its cache. This module holds the
event loop both share; the routing rule is a :class:`Router` (``heuristics.petals.PetalsRouter``,
``heuristics.bprr.WsRrRouter``).

Model
-----
* Server j has ``slot_capacity[j]`` cache slots; a request that processes b blocks on j holds b slots there
  from its start to its completion (static per-request cache allocation, as in PETALS and the paper).
* A request's path is a list of (server, blocks) pairs covering 1..L; its service time is
  ``features[i] @ sum_j (comm_coef[j] + b_j * block_coef[j])`` (with one feature, the job size r_i, this is
  r_i * T_path, T_path = sum tau^c_j + tau^p_j b_j, the paper's model).
* On arrival the router chooses the path and an earliest start time (``not_before``; WS-RR plans a wait,
  PETALS starts at once). The request then waits until ``not_before`` has passed and all its servers have
  enough free slots ("surprise waiting" when the router's belief was wrong). Waiting requests are scanned
  in arrival order at every event and each one that fits starts (no head-of-line blocking: PETALS servers
  serve allocation requests independently).
* No re-routing, no preemption, no time-out.

The loop is Python with ``heapq``; the scan of waiting requests at each event is vectorised with numpy
(O(pending * J) per event), which keeps overloaded baselines (thousands waiting) fast enough for the
paper's run lengths (hundreds to a few thousand requests).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import ChainSolution, Placement
from serveplan.chain.simulator import SimulationResult
from serveplan.chain.verify import verify
from serveplan.errors import InputError
from serveplan.registry import MethodResult


@dataclass(frozen=True)
class Route:
    """A routing decision: the path and the earliest start time.

    Attributes
    ----------
    servers : tuple of int
        Servers in processing order.
    blocks : tuple of int
        Blocks each server processes (they sum to L).
    not_before_s : float
        Earliest start time (the router's planned start).
    """

    servers: tuple[int, ...]
    blocks: tuple[int, ...]
    not_before_s: float


@dataclass
class ServerState:
    """What the routers may read: slot capacities and the requests holding or awaiting slots.

    Attributes
    ----------
    slot_capacity : ndarray of int
        Cache slots per server.
    used : ndarray of int
        Slots held by requests in service.
    assigned : ndarray of int
        Slots of requests routed to the server and not finished (in service or waiting).
    holders : list of dict
        Per server, request id -> (slots, estimated release time) of every assigned request.
    """

    slot_capacity: np.ndarray
    used: np.ndarray
    assigned: np.ndarray
    holders: list[dict[int, tuple[int, float]]] = field(default_factory=list)


class Router(Protocol):
    """A per-request routing rule."""

    def route(self, now: float, request: int, state: ServerState) -> Route | None:
        """The path for ``request`` arriving at ``now`` (None: no path exists)."""

    def estimated_service_s(self, route: Route) -> float:
        """The mean service time the router expects on ``route`` (sets estimated release times)."""


class PlacedRouter:
    """What every router over a fixed placement knows: the servers' windows and per-job times.

    Subclasses implement ``route``; this base supplies the placement view and the mean service time of a
    path (T_path = sum over its servers of tau^c_j + tau^p_j b_j).
    """

    def __init__(self, instance: ChainInstance, placement: Placement) -> None:
        self.L = instance.num_blocks
        self.comm = instance.comm_time_s
        self.compute = instance.compute_time_s
        self.a = np.asarray(placement.first_block)
        self.m = np.asarray(placement.num_blocks)
        self.used_servers = [j for j in range(len(self.m)) if self.m[j] > 0]
        # entries[p]: (server, position after its last block) for every used server whose window holds p,
        # in server order (the DP's tie-break)
        self._entries: list[list[tuple[int, int]]] = [[] for _ in range(self.L + 2)]
        for j in self.used_servers:
            a, m = int(self.a[j]), int(self.m[j])
            for p in range(max(a, 1), min(a + m - 1, self.L) + 1):
                self._entries[p].append((j, a + m))

    def estimated_service_s(self, route: Route) -> float:
        """Mean service time T_path of the route."""
        return float(sum(self.comm[j] + self.compute[j] * b for j, b in zip(route.servers, route.blocks, strict=True)))

    def shortest_path(
        self, edge: Callable[[int, int, int, float], tuple[float, Any] | None]
    ) -> tuple[tuple[int, ...], tuple[int, ...], list[Any]] | None:
        """Dynamic program over next-block positions 1..L+1 (edges only move forward).

        Server j may be entered at any position p of its window [a_j, a_j + m_j - 1] and always runs to its
        last block, reaching position a_j + m_j. ``edge(j, p, b, cost_to_p)`` prices that step
        (b = a_j + m_j - p blocks): it returns the path's cost after the step and a tag kept with it, or None
        when j cannot be used. A strictly smaller cost replaces a position's best (ties keep the first found,
        servers in index order). O(L J) edge calls.

        Returns
        -------
        tuple or None
            Servers, block counts and tags in processing order; None when no path reaches L + 1.
        """
        L = self.L
        best = np.full(L + 2, np.inf)
        prev: list[tuple[int, int, Any] | None] = [None] * (L + 2)
        best[1] = 0.0
        for p in range(1, L + 1):
            if not np.isfinite(best[p]):
                continue
            cost_to_p = best[p]
            for j, q in self._entries[p]:
                step = edge(j, p, q - p, cost_to_p)
                if step is None:
                    continue
                cost, tag = step
                if cost < best[q]:
                    best[q] = cost
                    prev[q] = (j, p, tag)
        if not np.isfinite(best[L + 1]):
            return None
        servers, blocks, steps = trace_path(prev, L)
        return servers, blocks, [tag for _, _, tag in steps]


def trace_path(prev: Sequence[tuple[Any, ...] | None], L: int) -> tuple[tuple[int, ...], tuple[int, ...], list[tuple]]:
    """Walk a next-block shortest-path DP back from position L + 1 to 1.

    ``prev[q]`` is the step that reached next-block position q: a tuple ``(server, from_position, ...)``.
    Returns the servers and their block counts in processing order, and the steps themselves (same order).
    O(path length).
    """
    steps = []
    q = L + 1
    while q != 1:
        step = prev[q]
        assert step is not None
        steps.append((q, step))
        q = step[1]
    steps.reverse()
    servers = tuple(step[0] for _, step in steps)
    blocks = tuple(q - step[1] for q, step in steps)
    return servers, blocks, [step for _, step in steps]


def placement_only_result(
    method: str,
    instance: ChainInstance,
    placement: Placement,
    extra_violations: list[str],
    t0: float,
    info: dict[str, Any],
) -> MethodResult:
    """Package a routing baseline's placement as a MethodResult (routing happens at simulation time).

    The solution holds the placement and no chains (the baseline reserves no per-chain cache). It is
    verified against every constraint except the rate target; ``extra_violations`` (the baseline's own
    checks) follow verify's. Feasible when the placement covers every block; ``verified`` also needs no
    violation.
    """
    solution = ChainSolution(placement, (), ())
    report = verify(instance, solution)
    violations = [v for v in report.violations if not v.startswith("rate")]
    violations.extend(extra_violations)
    covered = report.checks.get("coverage", False)
    return MethodResult(
        method=method,
        status="feasible" if covered else "infeasible",
        solution=solution if covered else None,
        objective=None,
        verified=covered and not violations,
        violations=violations,
        wall_s=time.perf_counter() - t0,
        info=info,
    )


def path_coef(comm_coef: np.ndarray, block_coef: np.ndarray, route: Route) -> np.ndarray:
    """Service coefficients of a path: sum over its servers of comm_coef[j] + b_j * block_coef[j]."""
    idx = np.asarray(route.servers)
    return (comm_coef[idx] + np.asarray(route.blocks, dtype=float)[:, None] * block_coef[idx]).sum(axis=0)


def simulate_paths(
    arrival_s: np.ndarray,
    features: np.ndarray,
    comm_coef: np.ndarray,
    block_coef: np.ndarray,
    slot_capacity: np.ndarray,
    router: Router,
    *,
    policy: str = "path",
) -> SimulationResult:
    """Simulate per-request path routing with cache waiting.

    Parameters
    ----------
    arrival_s : array of float, shape (n,)
        Non-decreasing arrival times (s).
    features : array of float, shape (n,) or (n, d)
        Per-request service features (Exp(1) sizes, or token features).
    comm_coef, block_coef : array of float, shape (J,) or (J, d)
        Per-server coefficients of the communication term and of one block's compute term.
    slot_capacity : array of int, shape (J,)
        Cache slots per server.
    router : Router
        Chooses each request's path.
    policy : str
        Label stored in the result.

    Returns
    -------
    SimulationResult
        ``chain`` holds an index into ``info["paths"]`` (the distinct paths used, as (servers, blocks)).
        Requests for which the router finds no path get NaN start and finish and chain -1.
    """
    arrival = np.asarray(arrival_s, dtype=float)
    feats = np.asarray(features, dtype=float)
    feats = feats[:, None] if feats.ndim == 1 else feats
    comm = np.asarray(comm_coef, dtype=float)
    comm = comm[:, None] if comm.ndim == 1 else comm
    blk = np.asarray(block_coef, dtype=float)
    blk = blk[:, None] if blk.ndim == 1 else blk
    cap = np.asarray(slot_capacity, dtype=np.int64)
    if feats.shape[0] != len(arrival) or comm.shape != blk.shape or comm.shape[0] != len(cap):
        raise InputError("inconsistent shapes", field="features", value=(feats.shape, comm.shape, blk.shape))
    if len(arrival) and np.any(np.diff(arrival) < 0):
        raise InputError("arrival times must be non-decreasing", field="arrival_s")
    n = len(arrival)
    J = len(cap)
    state = ServerState(cap.copy(), np.zeros(J, dtype=np.int64), np.zeros(J, dtype=np.int64), [{} for _ in range(J)])
    start = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    chain = np.full(n, -1, dtype=np.int64)
    path_ids: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
    routes: list[Route | None] = [None] * n
    pending: list[int] = []
    events: list[tuple[float, int, int]] = []  # (time, kind, request): kind 0 = completion, 1 = planned start
    i = 0

    need = np.zeros((n, J), dtype=np.int64)  # slots each request needs on each server
    not_before = np.full(n, np.inf)

    def begin(q: int, now: float) -> None:
        r = routes[q]
        assert r is not None
        state.used += need[q]
        start[q] = now
        finish[q] = now + float(feats[q] @ path_coef(comm, blk, r))
        est = now + router.estimated_service_s(r)
        for j, b in zip(r.servers, r.blocks, strict=True):
            state.holders[j][q] = (b, est)
        heapq.heappush(events, (finish[q], 0, q))

    def try_start(now: float) -> None:
        # Scan waiting requests in arrival order; start each that fits. Vectorised over the waiting set: after a
        # start, requests before it still do not fit (free slots only shrank), so the scan resumes after it.
        if not pending:
            return
        if len(pending) <= 16:  # few waiting: a plain loop beats numpy's per-call overhead
            still = []
            for q in pending:
                r = routes[q]
                assert r is not None
                if not_before[q] <= now and all(
                    state.used[j] + b <= cap[j] for j, b in zip(r.servers, r.blocks, strict=True)
                ):
                    begin(q, now)
                else:
                    still.append(q)
            pending[:] = still
            return
        idx = np.asarray(pending, dtype=np.int64)
        started = np.zeros(len(idx), dtype=bool)
        lo = 0
        while lo < len(idx):
            rest = idx[lo:]
            fits = (not_before[rest] <= now) & np.all(need[rest] <= cap - state.used, axis=1)
            hits = np.flatnonzero(fits)
            if hits.size == 0:
                break
            p0 = lo + int(hits[0])
            begin(int(idx[p0]), now)
            started[p0] = True
            lo = p0 + 1
        if started.any():
            pending[:] = idx[~started].tolist()

    while i < n or events:
        if events and (i >= n or events[0][0] <= arrival[i]):
            t, kind, q = heapq.heappop(events)
            if kind == 0:
                r = routes[q]
                assert r is not None
                for j, b in zip(r.servers, r.blocks, strict=True):
                    state.used[j] -= b
                    state.assigned[j] -= b
                    del state.holders[j][q]
            try_start(t)
            continue
        t = arrival[i]
        r = router.route(t, i, state)
        if r is not None:
            routes[i] = r
            key = (r.servers, r.blocks)
            chain[i] = path_ids.setdefault(key, len(path_ids))
            est_start = max(t, r.not_before_s)
            est = est_start + router.estimated_service_s(r)
            for j, b in zip(r.servers, r.blocks, strict=True):
                if b > cap[j]:
                    raise InputError("a route needs more slots than the server has", field="route", value=(j, b))
                state.assigned[j] += b
                state.holders[j][i] = (b, est)
            need[i, list(r.servers)] = r.blocks
            not_before[i] = r.not_before_s
            pending.append(i)
            if r.not_before_s > t:
                heapq.heappush(events, (r.not_before_s, 1, i))
            try_start(t)
        i += 1
    paths = [list(map(list, key)) for key in path_ids]
    return SimulationResult(arrival, start, finish, chain, policy, {"paths": paths})
