"""BPRR's joint block placement and request routing MILP (Sun, He, Ji, Parag, Performance 2025).

Reconstructed from the BPRR paper's formulation (digest section 5.2) in the units of a
:class:`~serveplan.chain.instance.ChainInstance`: R concurrent requests are each routed from the source
(before block 1) through servers to the sink (after block L); the placement (a_j, m_j) and the routes are
chosen together to minimise the requests' total service time sum_r sum_{(i,j) on r} (tau^c_j + tau^p_j m_ij),
subject to every server's memory holding its blocks plus the cache of every request on it:
s_m m_j + s_c sum_r k_rj <= M_j, k_rj = blocks request r processes on j.

Variables and linearisation (a route's block counts m_ij = a_j + m_j - a_i - m_i are bilinear in f and the
placement; BPRR linearises them with big-M, as here):

* integers a_j in [1, L], m_j in [0, L] with a_j + m_j <= L + 1 (m_j = 0: unused);
* binary f[r, i, j] on the arcs source->j, i->j (i != j) and i->sink;
* continuous alpha = f a_j, gamma = f m_j, beta = f a_i, delta = f m_i on every arc, by the exact McCormick
  envelope of a binary times a bounded integer;
* arc feasibility (a_j <= a_i + m_i <= a_j + m_j - 1 when f = 1): alpha <= beta + delta and
  beta + delta <= alpha + gamma - f; source arcs need a_j = 1, sink arcs a_i + m_i = L + 1;
* flow conservation: one unit per request from source to sink. Block ends strictly increase along arcs,
  so no cycle can carry flow.

Size: O(R J^2) binaries. NP-hard (PARTITION, BPRR paper); meant for tiny instances (tests, the BPRR
comparison) and as a reference for CG-BPRR.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import pyomo.environ as pyo

from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import Chain, Placement
from serveplan.solvers import SolveResult, solve

SRC = "S"
DST = "D"


def build_model(instance: ChainInstance, num_requests: int) -> pyo.ConcreteModel:
    """The BPRR MILP for ``num_requests`` (R) concurrent requests."""
    J, L = instance.num_servers, instance.num_blocks
    tc, tp = instance.comm_time_s, instance.compute_time_s
    mem = instance.memory_gb
    sm, sc = instance.block_memory_gb, instance.cache_memory_gb
    servers = list(range(J))
    arcs = [(SRC, j) for j in servers] + [(i, j) for i in servers for j in servers if i != j]
    arcs += [(i, DST) for i in servers]
    reqs = list(range(num_requests))
    m = pyo.ConcreteModel("bprr")
    m.V = pyo.Set(initialize=servers)
    m.R = pyo.Set(initialize=reqs)
    m.A = pyo.Set(initialize=arcs, dimen=2)
    m.RA = pyo.Set(initialize=[(r, i, j) for r in reqs for (i, j) in arcs], dimen=3)
    m.a = pyo.Var(m.V, domain=pyo.Integers, bounds=(1, L))
    m.m = pyo.Var(m.V, domain=pyo.Integers, bounds=(0, L))
    m.f = pyo.Var(m.RA, domain=pyo.Binary)
    m.alpha = pyo.Var(m.RA, bounds=(0, L))  # f * a_j
    m.gamma = pyo.Var(m.RA, bounds=(0, L))  # f * m_j
    m.beta = pyo.Var(m.RA, bounds=(0, L))  # f * a_i
    m.delta = pyo.Var(m.RA, bounds=(0, L))  # f * m_i
    m.range_ok = pyo.Constraint(m.V, rule=lambda mdl, j: mdl.a[j] + mdl.m[j] <= L + 1)

    cons = pyo.ConstraintList()
    m.linearise = cons

    def envelope(x, y, f, lo, hi):
        cons.add(x <= hi * f)
        cons.add(x >= lo * f)
        cons.add(x <= y - lo * (1 - f))
        cons.add(x >= y - hi * (1 - f))

    for r, i, j in m.RA:
        f = m.f[r, i, j]
        if j != DST:
            envelope(m.alpha[r, i, j], m.a[j], f, 1, L)
            envelope(m.gamma[r, i, j], m.m[j], f, 0, L)
        else:
            cons.add(m.alpha[r, i, j] == 0)
            cons.add(m.gamma[r, i, j] == 0)
        if i != SRC:
            envelope(m.beta[r, i, j], m.a[i], f, 1, L)
            envelope(m.delta[r, i, j], m.m[i], f, 0, L)
        else:
            cons.add(m.beta[r, i, j] == 0)
            cons.add(m.delta[r, i, j] == 0)
        al, ga, be, de = m.alpha[r, i, j], m.gamma[r, i, j], m.beta[r, i, j], m.delta[r, i, j]
        if i == SRC:
            cons.add(al <= f)  # a_j <= 1
            cons.add(f <= al + ga - f)  # 1 <= a_j + m_j - 1
        elif j == DST:
            cons.add(be + de == (L + 1) * f)  # a_i + m_i = L + 1
        else:
            cons.add(al <= be + de)
            cons.add(be + de <= al + ga - f)

    def blocks_on(r: int, j: int):
        """k_rj: blocks request r processes on server j (sum over its in-arcs of m_ij)."""
        expr = m.alpha[r, SRC, j] + m.gamma[r, SRC, j] - m.f[r, SRC, j]
        for i in servers:
            if i != j:
                expr += m.alpha[r, i, j] + m.gamma[r, i, j] - m.beta[r, i, j] - m.delta[r, i, j]
        return expr

    def inflow(r: int, j: int):
        return m.f[r, SRC, j] + sum(m.f[r, i, j] for i in servers if i != j)

    def outflow(r: int, j: int):
        return m.f[r, j, DST] + sum(m.f[r, j, k] for k in servers if k != j)

    m.leave_source = pyo.Constraint(m.R, rule=lambda mdl, r: sum(mdl.f[r, SRC, j] for j in servers) == 1)
    m.reach_sink = pyo.Constraint(m.R, rule=lambda mdl, r: sum(mdl.f[r, i, DST] for i in servers) == 1)
    m.conserve = pyo.Constraint(m.R, m.V, rule=lambda mdl, r, j: inflow(r, j) == outflow(r, j))
    m.memory = pyo.Constraint(
        m.V, rule=lambda mdl, j: sm * mdl.m[j] + sc * sum(blocks_on(r, j) for r in reqs) <= float(mem[j])
    )
    m.obj = pyo.Objective(
        expr=sum(float(tc[j]) * inflow(r, j) + float(tp[j]) * blocks_on(r, j) for r in reqs for j in servers),
        sense=pyo.minimize,
    )
    return m


@dataclass
class BprrMilpOutcome:
    """Result of :func:`solve_bprr_milp`.

    Attributes
    ----------
    placement : Placement or None
    routes : list of Chain
        One route per request (servers and blocks processed).
    objective : float or None
        Total service time of the R requests (s).
    solve : SolveResult
    """

    placement: Placement | None
    routes: list[Chain]
    objective: float | None
    solve: SolveResult
    info: dict[str, Any] = field(default_factory=dict)


def decode(instance: ChainInstance, model: pyo.ConcreteModel) -> tuple[Placement, list[Chain]]:
    """Placement and per-request routes from a solved model."""
    J = instance.num_servers
    a, mm = [], []
    for j in range(J):
        mj = round(pyo.value(model.m[j]))
        a.append(round(pyo.value(model.a[j])) if mj > 0 else 0)
        mm.append(mj)
    placement = Placement(tuple(a), tuple(mm))
    routes = []
    for r in model.R:
        node, servers, blocks, nxt_block = SRC, [], [], 1
        for _ in range(J + 1):
            succ = [j for (rr, i, j) in model.RA if rr == r and i == node and pyo.value(model.f[r, i, j]) > 0.5]
            if not succ or succ[0] == DST:
                break
            j = succ[0]
            servers.append(j)
            blocks.append(a[j] + mm[j] - nxt_block)
            nxt_block = a[j] + mm[j]
            node = j
        routes.append(Chain(tuple(servers), tuple(blocks)))
    return placement, routes


def solve_bprr_milp(
    instance: ChainInstance,
    num_requests: int,
    *,
    backend: str = "highs",
    time_limit_s: float | None = 60.0,
    threads: int | None = None,
) -> BprrMilpOutcome:
    """Build and solve the BPRR MILP; decode the incumbent if there is one."""
    t0 = time.perf_counter()
    model = build_model(instance, num_requests)
    res = solve(model, backend=backend, time_limit_s=time_limit_s, threads=threads)
    if not res.status.has_solution:
        return BprrMilpOutcome(None, [], None, res, {"build_and_solve_s": time.perf_counter() - t0})
    placement, routes = decode(instance, model)
    return BprrMilpOutcome(placement, routes, res.objective, res, {"build_and_solve_s": time.perf_counter() - t0})


def brute_force_bprr(instance: ChainInstance, num_requests: int) -> float:
    """Optimal BPRR objective by enumerating placements and route multisets (tiny instances only).

    Independent of the MILP: placements are enumerated per server, routes are the source-to-sink paths of the
    routing graph (:func:`serveplan.chain.placement.chains_of_placement`), and memory is checked directly.
    """
    from serveplan.chain.placement import chains_of_placement

    L, J = instance.num_blocks, instance.num_servers
    options = [(0, 0)] + [(a, mm) for mm in range(1, L + 1) for a in range(1, L - mm + 2)]
    best = float("inf")
    for combo in itertools.product(options, repeat=J):
        placement = Placement(tuple(c[0] for c in combo), tuple(c[1] for c in combo))
        if any(instance.block_memory_gb * placement.num_blocks[j] > instance.memory_gb[j] + 1e-9 for j in range(J)):
            continue
        chains = chains_of_placement(instance, placement)
        if not chains:
            continue
        times = [
            sum(
                instance.comm_time_s[j] + instance.compute_time_s[j] * b
                for j, b in zip(c.servers, c.blocks, strict=True)
            )
            for c in chains
        ]
        for multiset in itertools.combinations_with_replacement(range(len(chains)), num_requests):
            load = [0.0] * J
            for k in multiset:
                for j, b in zip(chains[k].servers, chains[k].blocks, strict=True):
                    load[j] += b
            ok = all(
                instance.block_memory_gb * placement.num_blocks[j] + instance.cache_memory_gb * load[j]
                <= instance.memory_gb[j] + 1e-9
                for j in range(J)
            )
            if ok:
                best = min(best, sum(times[k] for k in multiset))
    return best
