"""Exact path-based MILP for joint block placement and cache allocation (BPCA).

BPCA (Sun, He, Hou 2026, problem (7a-e), digest section 2.2) chooses a contiguous block range for every
server and a number of concurrent jobs c_k for every chain of the resulting routing graph, minimising
sum_k c_k subject to the service-rate target sum_k c_k / T_k >= lambda / rho_bar and the per-server cache
slots M~_j = floor((M_j - s_m m_j) / s_c). The paper gives no MILP. This one is linear and exactly
equivalent (proof in ``docs/formulations_chain.md``):

* binary y[j, a, m]: server j hosts blocks a..a+m-1; one option at most per server; only options with
  slots[j, m] = floor((M_j - s_m m) / s_c) >= 0 exist, so the floor is precomputed per (j, m);
* integer c[p] for every segment path p (:mod:`formulations.chain_paths`), whose service time T_p is a
  constant, so the rate row sum_p c_p / T_p >= lambda / rho_bar is linear;
* segment linking, one row per segment sigma = (j, b, e):
  ``sum_{p through sigma} (e-b+1) c_p <= sum_{a <= b} slots[j, e-a+1] y[j, a, e-a+1]``
  (a path may carry jobs only if j hosts [a, e] with a <= b, e being j's last block);
* server memory: ``sum_p w_jp c_p <= sum_{a, m} slots[j, m] y[j, a, m]``.

Two ways to solve it (:func:`solve_bpca`):

``enumerate``
    every elementary path over the useful segments is a column; exact, for small instances.
``colgen``
    column generation on the LP relaxation with exact pricing (a Pareto label search over the block DAG,
    minimising 1 + W_p - pi / T_p), then the MILP over the generated columns. The LP value, rounded up, is a
    proven lower bound; the restricted MILP's solution is a feasible upper bound. The result is called
    optimal only when the two meet; otherwise it is a heuristic solution with a proven gap.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyomo.environ as pyo
import scipy.optimize as so

from formulations.chain_paths import (
    Segment,
    SegmentPath,
    enumerate_paths,
    option_slots,
    path_capacity_bound,
    segment_time_s,
    useful_segments,
)
from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import Chain, ChainSolution, Placement
from serveplan.errors import InputError
from serveplan.solvers import SolveResult, Status, compile_pyomo, solve


def build_model(
    instance: ChainInstance,
    paths: list[SegmentPath] | None = None,
    *,
    segments: list[Segment] | None = None,
    relax: bool = False,
    phase_one: bool = False,
    max_paths: int = 20_000,
) -> pyo.ConcreteModel:
    """The path-based BPCA model over ``paths`` (default: every elementary path, by enumeration).

    Parameters
    ----------
    instance : ChainInstance
    paths : list of SegmentPath, optional
        Columns; default :func:`formulations.chain_paths.enumerate_paths` (exact model).
    segments : list of Segment, optional
        Segments that get a linking row and placement options (default: those used by ``paths``). Column
        generation passes every useful segment so that the duals of all linking rows exist.
    relax : bool, default False
        LP relaxation (y and c continuous).
    phase_one : bool, default False
        Add an artificial rate variable ``s`` and minimise it instead (column generation's phase I).
    max_paths : int, default 20000
        Enumeration limit when ``paths`` is None.

    Returns
    -------
    pyomo.ConcreteModel
        With attributes ``bpca_paths``, ``bpca_options`` and ``bpca_segments`` for :func:`decode`.
    """
    if paths is None:
        paths = enumerate_paths(instance, max_paths=max_paths)
    slots = option_slots(instance)
    L = instance.num_blocks
    required = instance.required_rate
    if segments is None:
        segments = sorted({s for p in paths for s in p.segments}, key=lambda s: (s.server, s.first, s.last))
    seg_index = {s: i for i, s in enumerate(segments)}
    # Options that can make some segment usable: (j, a, m) with last block e = a + m - 1 and a <= b.
    options = sorted(
        {
            (s.server, a, s.last - a + 1)
            for s in segments
            for a in range(1, s.first + 1)
            if slots[s.server, s.last - a + 1] >= 0
        }
    )
    servers = sorted({j for j, _, _ in options})

    m = pyo.ConcreteModel(name="bpca_paths")
    m.bpca_paths = list(paths)
    m.bpca_options = options
    m.bpca_segments = list(segments)
    m.P = pyo.RangeSet(0, len(paths) - 1) if paths else pyo.Set(initialize=[])
    m.O = pyo.Set(initialize=options, dimen=3)
    y_domain = pyo.UnitInterval if relax else pyo.Binary
    m.y = pyo.Var(m.O, domain=y_domain)
    if relax:
        m.c = pyo.Var(m.P, domain=pyo.NonNegativeReals)
    else:
        bounds = {p: path_capacity_bound(path, slots) for p, path in enumerate(paths)}
        m.c = pyo.Var(m.P, domain=pyo.NonNegativeIntegers, bounds=lambda _, p: (0, bounds[p]))

    # One placement option per server at most.
    by_server: dict[int, list[tuple[int, int, int]]] = {j: [] for j in servers}
    for o in options:
        by_server[o[0]].append(o)
    m.one_option = pyo.Constraint(servers, rule=lambda mm, j: sum(mm.y[o] for o in by_server[j]) <= 1)

    # Service-rate target, scaled by lambda/rho_bar so that its right-hand side is 1.
    rate_expr = sum(m.c[p] * (1.0 / (path.time_s * required)) for p, path in enumerate(paths))
    if phase_one:
        m.s = pyo.Var(domain=pyo.NonNegativeReals)
        rate_expr = rate_expr + m.s
    elif not paths:
        # No chain can carry a job: keep the model well formed; the solver proves it infeasible.
        m.no_chain = pyo.Var(bounds=(0, 0))
        rate_expr = rate_expr + m.no_chain
    m.rate = pyo.Constraint(expr=rate_expr >= 1.0)

    # Segment linking: a path carries jobs only on segments whose server hosts [a, e], a <= b.
    through: dict[int, list[int]] = {i: [] for i in range(len(segments))}
    load: dict[int, dict[int, int]] = {j: {} for j in servers}
    for p, path in enumerate(paths):
        for s in path.segments:
            through[seg_index[s]].append(p)
            load[s.server][p] = load[s.server].get(p, 0) + s.num_blocks

    option_set = set(options)

    def link_rule(mm: pyo.ConcreteModel, i: int) -> Any:
        if not through[i]:
            return pyo.Constraint.Skip
        s = segments[i]
        lhs = sum(s.num_blocks * mm.c[p] for p in through[i])
        rhs = sum(
            int(slots[s.server, s.last - a + 1]) * mm.y[(s.server, a, s.last - a + 1)]
            for a in range(1, s.first + 1)
            if (s.server, a, s.last - a + 1) in option_set
        )
        return lhs <= rhs

    m.link = pyo.Constraint(pyo.RangeSet(0, len(segments) - 1) if segments else [], rule=link_rule)

    def mem_rule(mm: pyo.ConcreteModel, j: int) -> Any:
        if not load[j]:
            return pyo.Constraint.Skip
        lhs = sum(w * mm.c[p] for p, w in load[j].items())
        return lhs <= sum(int(slots[j, o[2]]) * mm.y[o] for o in by_server[j])

    m.mem = pyo.Constraint(servers, rule=mem_rule)
    if phase_one:
        m.obj = pyo.Objective(expr=m.s, sense=pyo.minimize)
    else:
        m.obj = pyo.Objective(expr=sum(m.c[p] for p in m.P) if paths else 0 * m.no_chain, sense=pyo.minimize)
    m.bpca_num_blocks = L
    return m


def decode(instance: ChainInstance, model: pyo.ConcreteModel) -> ChainSolution:
    """Read the placement (from y) and the chains with c_p >= 1 (from c) back from a solved model."""
    J = instance.num_servers
    first = [0] * J
    count = [0] * J
    for j, a, m in model.bpca_options:
        v = model.y[(j, a, m)].value
        if v is not None and v > 0.5:
            first[j], count[j] = a, m
    chains, caps = [], []
    for p, path in enumerate(model.bpca_paths):
        v = model.c[p].value
        c = round(v) if v is not None else 0
        if c >= 1:
            chains.append(Chain(path.servers, path.blocks))
            caps.append(int(c))
    return ChainSolution(Placement(tuple(first), tuple(count)), tuple(chains), tuple(caps))


# ---------------------------------------------------------------------------------------------------------
# Solving: enumeration or column generation.


@dataclass
class BpcaOutcome:
    """What :func:`solve_bpca` found.

    Attributes
    ----------
    status : Status
        The solver's status (enumerate mode), or for column generation: ``optimal`` only when the
        restricted MILP's objective meets the proven lower bound, ``feasible`` with an incumbent otherwise,
        ``infeasible`` when phase I proves the LP relaxation (hence BPCA) infeasible.
    solution : ChainSolution or None
    objective : float or None
    bound : float or None
        Proven lower bound on the BPCA optimum (solver bound, or ceil of the column-generation LP value).
    gap : float or None
    solve : SolveResult or None
        The last MILP solve.
    info : dict
        Mode, number of columns, column-generation iterations, LP value, and whether pricing was exact.
    """

    status: Status
    solution: ChainSolution | None
    objective: float | None
    bound: float | None
    gap: float | None
    solve: SolveResult | None
    info: dict[str, Any] = field(default_factory=dict)


def solve_bpca(
    instance: ChainInstance,
    *,
    mode: str = "enumerate",
    backend: str = "highs",
    time_limit_s: float | None = None,
    threads: int | None = None,
    rel_gap: float | None = None,
    max_paths: int = 20_000,
    initial_chains: list[Chain] | None = None,
    max_iterations: int = 200,
    max_labels: int = 20_000,
) -> BpcaOutcome:
    """Solve BPCA with the path MILP (``mode="enumerate"``) or by column generation (``mode="colgen"``).

    Parameters
    ----------
    instance : ChainInstance
    mode : {"enumerate", "colgen"}
    backend, time_limit_s, threads, rel_gap
        Passed to :func:`serveplan.solvers.solve` for the MILP.
    max_paths : int
        Enumeration limit (enumerate mode).
    initial_chains : list of Chain, optional
        Seed columns for column generation (e.g. GBP-CR + GCA's chains); they are converted to segment paths.
    max_iterations : int
        Column-generation rounds per phase; stopping early leaves the LP bound unproven (bound None).
    max_labels : int
        Label cap per block node in pricing; hitting it makes that pricing round inexact (bound None).
    """
    if mode == "enumerate":
        model = build_model(instance, max_paths=max_paths)
        res = solve(model, backend, time_limit_s=time_limit_s, threads=threads, rel_gap=rel_gap)
        sol = decode(instance, model) if res.status.has_solution else None
        info = {"mode": mode, "num_paths": len(model.bpca_paths), "num_options": len(model.bpca_options)}
        return BpcaOutcome(res.status, sol, res.objective, res.bound, res.gap, res, info)
    if mode == "colgen":
        return _column_generation(
            instance,
            backend=backend,
            time_limit_s=time_limit_s,
            threads=threads,
            rel_gap=rel_gap,
            initial_chains=initial_chains or [],
            max_iterations=max_iterations,
            max_labels=max_labels,
        )
    raise InputError("unknown BPCA mode", field="mode", value=mode, hint="choose 'enumerate' or 'colgen'")


def _solve_lp_duals(model: pyo.ConcreteModel) -> tuple[float, np.ndarray, dict[str, float]] | None:
    """Solve a continuous pyomo model with scipy's HiGHS; return (value, x, row duals by name) or None.

    Duals are returned as shadow prices of the rows in the model's own sense (>= rows: >= 0; <= rows: <= 0 for
    a minimisation).
    """
    lp, _ = compile_pyomo(model)
    A = lp.A.tocsr()
    ub_rows = np.flatnonzero(np.isfinite(lp.row_ub))
    lb_rows = np.flatnonzero(np.isfinite(lp.row_lb))
    import scipy.sparse as sp

    A_ub = sp.vstack([A[ub_rows], -A[lb_rows]]).tocsr()
    b_ub = np.concatenate([lp.row_ub[ub_rows], -lp.row_lb[lb_rows]])
    bounds = list(zip(lp.col_lb, np.where(np.isinf(lp.col_ub), None, lp.col_ub), strict=True))
    res = so.linprog(lp.c, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if res.status != 0:
        return None
    marg = np.asarray(res.ineqlin.marginals)
    duals: dict[str, float] = {}
    for k, r in enumerate(ub_rows):
        duals[lp.row_names[r]] = duals.get(lp.row_names[r], 0.0) + float(marg[k])
    for k, r in enumerate(lb_rows):
        duals[lp.row_names[r]] = duals.get(lp.row_names[r], 0.0) - float(marg[len(ub_rows) + k])
    return float(res.fun) + lp.c_offset, np.asarray(res.x), duals


def _path_of_chain(instance: ChainInstance, chain: Chain) -> SegmentPath:
    segs = []
    b = 1
    for j, mij in zip(chain.servers, chain.blocks, strict=True):
        segs.append(Segment(j, b, b + mij - 1))
        b += mij
    return SegmentPath(tuple(segs), sum(segment_time_s(instance, s) for s in segs))


def _price(
    instance: ChainInstance,
    segments: list[Segment],
    weight: dict[Segment, float],
    pi: float,
    constant: float,
    max_labels: int,
    max_columns: int = 20,
) -> tuple[list[SegmentPath], bool]:
    """Paths minimising ``constant + W_p - pi / T_p`` over the block DAG, by Pareto labels (W, T).

    Returns the paths with a negative value (best first, at most ``max_columns``) and whether the search was
    exact (no label cap hit). Paths may repeat a server; such columns are forced to 0 in every integer solution
    (a server has one last block) and only weaken the LP, so the bound stays valid.
    """
    L = instance.num_blocks
    times = {s: segment_time_s(instance, s) for s in segments}
    out_arcs: dict[int, list[Segment]] = {}
    for s in segments:
        out_arcs.setdefault(s.first - 1, []).append(s)
    # Cheapest completions (time and weight separately) for pruning: labels that cannot go negative are dropped.
    min_t = np.full(L + 1, np.inf)
    min_w = np.full(L + 1, np.inf)
    min_t[L] = min_w[L] = 0.0
    for n in range(L - 1, -1, -1):
        for s in out_arcs.get(n, []):
            min_t[n] = min(min_t[n], times[s] + min_t[s.last])
            min_w[n] = min(min_w[n], weight[s] + min_w[s.last])
    eps = 1e-9
    labels: list[list[tuple[float, float, tuple[Segment, ...]]]] = [[] for _ in range(L + 1)]
    labels[0] = [(0.0, 0.0, ())]
    exact = True
    for n in range(L):
        # Pareto filter at node n: sort by T, keep strictly decreasing W.
        cur = sorted(labels[n], key=lambda x: (x[1], x[0]))
        kept = []
        best_w = math.inf
        for w, t, segs in cur:
            if w < best_w - 1e-12:
                kept.append((w, t, segs))
                best_w = w
        if len(kept) > max_labels:
            kept = kept[:max_labels]
            exact = False
        for w, t, segs in kept:
            for s in out_arcs.get(n, []):
                nw, nt = w + weight[s], t + times[s]
                if constant + nw + min_w[s.last] - pi / (nt + min_t[s.last]) >= -eps:
                    continue
                labels[s.last].append((nw, nt, (*segs, s)))
    found = []
    for w, t, segs in labels[L]:
        value = constant + w - pi / t
        if value < -eps:
            found.append((value, SegmentPath(segs, t)))
    found.sort(key=lambda x: x[0])
    unique: dict[tuple[Segment, ...], SegmentPath] = {}
    for _, p in found:
        unique.setdefault(p.segments, p)
        if len(unique) >= max_columns:
            break
    return list(unique.values()), exact


def _column_generation(
    instance: ChainInstance,
    *,
    backend: str,
    time_limit_s: float | None,
    threads: int | None,
    rel_gap: float | None,
    initial_chains: list[Chain],
    max_iterations: int,
    max_labels: int,
) -> BpcaOutcome:
    start = time.perf_counter()
    segments = useful_segments(instance)
    seg_index = {s: i for i, s in enumerate(segments)}
    required = instance.required_rate
    columns: dict[tuple[Segment, ...], SegmentPath] = {}
    for ch in initial_chains:
        p = _path_of_chain(instance, ch)
        if all(s in seg_index for s in p.segments):
            columns.setdefault(p.segments, p)
    info: dict[str, Any] = {"mode": "colgen", "initial_columns": len(columns), "iterations": 0}
    exact_pricing = True
    lp_value: float | None = None
    converged = False

    def deadline_hit() -> bool:
        return time_limit_s is not None and time.perf_counter() - start > 0.5 * time_limit_s

    for phase_one in (True, False):
        iterations = 0
        while True:
            iterations += 1
            model = build_model(instance, list(columns.values()), segments=segments, relax=True, phase_one=phase_one)
            got = _solve_lp_duals(model)
            if got is None:
                raise InputError("column generation: the restricted LP failed to solve", field="mode", value="colgen")
            value, _, duals = got
            pi = duals.get("rate", 0.0) / required
            beta = {j: -duals.get(f"mem[{j}]", 0.0) for j in range(instance.num_servers)}
            alpha = {s: -duals.get(f"link[{i}]", 0.0) for i, s in enumerate(segments)}
            # Rows that do not exist yet (no column through them) have dual 0, which is a valid dual of the LP
            # with the row added, because such a row is implied by y >= 0.
            weight = {s: s.num_blocks * (max(alpha[s], 0.0) + max(beta[s.server], 0.0)) for s in segments}
            new, exact = _price(instance, segments, weight, pi, 0.0 if phase_one else 1.0, max_labels)
            new = [p for p in new if p.segments not in columns]
            if not exact:
                exact_pricing = False
            if not new:
                converged = exact
                break
            for p in new:
                columns[p.segments] = p
            if iterations >= max_iterations or deadline_hit():
                converged = False
                break
        info["iterations"] += iterations
        if phase_one:
            if converged and value > 1e-7:
                info.update(columns=len(columns), lp_value=None, exact_pricing=exact_pricing)
                return BpcaOutcome(Status.INFEASIBLE, None, None, None, None, None, info)
            if value > 1e-7:
                # Phase I stopped early with the rate unreachable by the current columns: nothing proven.
                info.update(columns=len(columns), lp_value=None, exact_pricing=exact_pricing)
                return BpcaOutcome(Status.NO_SOLUTION_IN_TIME, None, None, None, None, None, info)
        else:
            lp_value = value if converged else None

    bound = math.ceil(lp_value - 1e-6) if lp_value is not None else None
    remaining = None if time_limit_s is None else max(1.0, time_limit_s - (time.perf_counter() - start))
    # The restricted MILP keeps only elementary columns: the others are 0 in every integer solution.
    elementary = [p for p in columns.values() if p.is_elementary]
    model = build_model(instance, elementary)
    res = solve(model, backend, time_limit_s=remaining, threads=threads, rel_gap=rel_gap)
    info.update(columns=len(columns), lp_value=lp_value, exact_pricing=exact_pricing, restricted_milp=res.status)
    if not res.status.has_solution:
        return BpcaOutcome(Status.NO_SOLUTION_IN_TIME, None, None, bound, None, res, info)
    sol = decode(instance, model)
    objective = float(res.objective)
    proven = bound is not None and round(objective) <= bound
    status = Status.OPTIMAL if proven else Status.FEASIBLE
    gap = None if bound is None else max(0.0, objective - bound) / max(abs(objective), 1e-9)
    return BpcaOutcome(status, sol, objective, None if bound is None else float(bound), gap, res, info)
