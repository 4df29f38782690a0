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
    every elementary path over the useful segments is a column, one MILP; exact, for small instances.
``colgen``
    column generation on the LP relaxation with exact pricing (a Pareto label search over the block DAG,
    minimising 1 + W_p - pi / T_p), an incumbent from the MILP over the generated columns, then exact closing by
    reduced costs: the final duals give a Lagrangian bound z_LD with sum_p c_p >= z_LD + sum_p rc_p c_p for every
    solution, so a solution of value <= z_LD + delta uses only paths with rc_p <= delta. Those paths are
    enumerated (depth-first with completion bounds) for growing delta and the MILP over them is solved; each
    solved MILP raises the proven lower bound to floor(z_LD + delta) + 1. The result is ``optimal`` only when
    the incumbent meets that bound; otherwise it is the incumbent with its proven bound and gap (for example
    when the threshold enumeration exceeds ``max_paths`` or the time runs out).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyomo.environ as pyo
import scipy.optimize as so
import scipy.sparse as sp

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
    linking: str = "cumulative",
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

    m = pyo.ConcreteModel(name="bpca_paths")
    m.bpca_paths = list(paths)
    m.bpca_segments = list(segments)
    m.P = pyo.RangeSet(0, len(paths) - 1) if paths else pyo.Set(initialize=[])
    by_server = add_placement(m, segments, slots, relax)
    servers = sorted(by_server)
    if relax:
        m.c = pyo.Var(m.P, domain=pyo.NonNegativeReals)
    else:
        bounds = {p: path_capacity_bound(path, slots) for p, path in enumerate(paths)}
        m.c = pyo.Var(m.P, domain=pyo.NonNegativeIntegers, bounds=lambda _, p: (0, bounds[p]))
    add_one_option(m, by_server)

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

    # Linking: a path carries jobs on segment (j, b, e) only if j hosts [a, e] with a <= b. For each server j,
    # last block e and threshold B, the jobs on j's segments ending at e and starting at b <= B fit in the slots
    # of the options (j, a, e - a + 1) with a <= B: valid (options with a > B disable every such segment) and
    # implying both the per-segment linking and the per-server slot budget (see docs/formulations_chain.md).
    through: dict[int, list[int]] = {i: [] for i in range(len(segments))}
    for p, path in enumerate(paths):
        for s in path.segments:
            through[seg_index[s]].append(p)
    keys = link_keys(segments, cumulative=linking == "cumulative")
    m.bpca_link_keys = keys
    starts: dict[tuple[int, int], list[Segment]] = {}
    for s in segments:
        starts.setdefault((s.server, s.last), []).append(s)

    def link_rule(mm: pyo.ConcreteModel, k: int) -> Any:
        j, e, B = keys[k]
        lo = 1 if linking == "cumulative" else B
        terms = [(s.num_blocks, p) for s in starts[(j, e)] if lo <= s.first <= B for p in through[seg_index[s]]]
        if not terms:
            return pyo.Constraint.Skip
        return sum(w * mm.c[p] for w, p in terms) <= linked_slots(mm, slots, j, e, B)

    m.link = pyo.Constraint(pyo.RangeSet(0, len(keys) - 1) if keys else [], rule=link_rule)
    if linking == "segment":
        # Per-segment rows do not bound a server's total: add its slot budget.
        load: dict[int, dict[int, int]] = {j: {} for j in servers}
        for p, path in enumerate(paths):
            for s in path.segments:
                load[s.server][p] = load[s.server].get(p, 0) + s.num_blocks
        m.mem = pyo.Constraint(
            [j for j in servers if load[j]],
            rule=lambda mm, j: (
                sum(w * mm.c[p] for p, w in load[j].items()) <= sum(int(slots[j, o[2]]) * mm.y[o] for o in by_server[j])
            ),
        )
    elif linking != "cumulative":
        raise InputError("unknown linking", field="linking", value=linking, hint="'cumulative' or 'segment'")
    if phase_one:
        m.obj = pyo.Objective(expr=m.s, sense=pyo.minimize)
    else:
        m.obj = pyo.Objective(expr=sum(m.c[p] for p in m.P) if paths else 0 * m.no_chain, sense=pyo.minimize)
    m.bpca_num_blocks = L
    return m


def placement_options(segments: list[Segment], slots: Any) -> list[tuple[int, int, int]]:
    """The options (j, a, m) that can make one of ``segments`` usable, sorted.

    Option (j, a, m) serves segment (j, b, e) when its last block a + m - 1 is e, a <= b and slots[j, m] >= 0.
    """
    return sorted(
        {
            (s.server, a, s.last - a + 1)
            for s in segments
            for a in range(1, s.first + 1)
            if slots[s.server, s.last - a + 1] >= 0
        }
    )


def add_placement(
    m: pyo.ConcreteModel, segments: list[Segment], slots: Any, relax: bool
) -> dict[int, list[tuple[int, int, int]]]:
    """Add the placement variables shared by the BPCA models to ``m``; return each server's options.

    ``m.y[j, a, m]`` (binary, or in [0, 1] with ``relax``) over :func:`placement_options` says that j hosts
    blocks a..a+m-1. Sets ``m.bpca_options`` (for :func:`decode_placement`), ``m.O`` and ``m.y``;
    :func:`add_one_option` adds the row that allows one option per server.
    """
    options = placement_options(segments, slots)
    by_server: dict[int, list[tuple[int, int, int]]] = {}
    for o in options:
        by_server.setdefault(o[0], []).append(o)
    m.bpca_options = options
    m.O = pyo.Set(initialize=options, dimen=3)
    m.y = pyo.Var(m.O, domain=pyo.UnitInterval if relax else pyo.Binary)
    return by_server


def add_one_option(m: pyo.ConcreteModel, by_server: dict[int, list[tuple[int, int, int]]]) -> None:
    """One placement option per server at most (``m.one_option``)."""
    m.one_option = pyo.Constraint(sorted(by_server), rule=lambda mm, j: sum(mm.y[o] for o in by_server[j]) <= 1)


def linked_slots(m: pyo.ConcreteModel, slots: Any, j: int, e: int, B: int) -> Any:
    """Right-hand side of linking row (j, e, B): the slots of j's options (j, a, e - a + 1) with a <= B."""
    options = m.O
    return sum(
        int(slots[j, e - a + 1]) * m.y[(j, a, e - a + 1)] for a in range(1, B + 1) if (j, a, e - a + 1) in options
    )


def link_keys(segments: list[Segment], cumulative: bool = True) -> list[tuple[int, int, int]]:
    """Linking rows (j, e, B): one per server j, last block e and start B of some segment (j, B, e)."""
    del cumulative  # the same keys index both linking families
    return sorted({(s.server, s.last, s.first) for s in segments})


def decode_placement(instance: ChainInstance, model: pyo.ConcreteModel) -> Placement:
    """The block placement chosen by a solved model's y[j, a, m] (servers with no option set host nothing).

    Shared by every model whose placement variables are y over ``model.bpca_options``.
    """
    J = instance.num_servers
    first = [0] * J
    count = [0] * J
    for j, a, m in model.bpca_options:
        v = model.y[(j, a, m)].value
        if v is not None and v > 0.5:
            first[j], count[j] = a, m
    return Placement(tuple(first), tuple(count))


def decode(instance: ChainInstance, model: pyo.ConcreteModel) -> ChainSolution:
    """Read the placement (from y) and the chains with c_p >= 1 (from c) back from a solved model."""
    chains, caps = [], []
    for p, path in enumerate(model.bpca_paths):
        v = model.c[p].value
        c = round(v) if v is not None else 0
        if c >= 1:
            chains.append(Chain(path.servers, path.blocks))
            caps.append(int(c))
    return ChainSolution(decode_placement(instance, model), tuple(chains), tuple(caps))


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
    seed: int = 0,
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
    seed : int
        Solver random seed for the MILPs.
    """
    if mode == "enumerate":
        model = build_model(instance, max_paths=max_paths)
        res = solve(model, backend, time_limit_s=time_limit_s, threads=threads, rel_gap=rel_gap, seed=seed)
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
            max_paths=max_paths,
            seed=seed,
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


class _MasterLP:
    """The LP relaxation of the path model over a set of columns, assembled directly as sparse matrices.

    Same rows as :func:`build_model` with ``relax=True`` and every useful segment (one option per server,
    rate, every linking row (j, e, B)), rebuilt per iteration only in its column part; solved by scipy's HiGHS
    for the duals. Column generation calls it many times, where building a pyomo model each round would
    dominate the run time (tests check that both give the same LP value).
    """

    def __init__(self, instance: ChainInstance, segments: list[Segment], keys: list[tuple[int, int, int]]) -> None:
        slots = option_slots(instance)
        self.instance = instance
        self.options = placement_options(segments, slots)
        self.keys = keys
        self.key_index = {k: i for i, k in enumerate(keys)}
        self.rows_of: dict[tuple[int, int], list[int]] = {}
        for j, e, B in keys:
            self.rows_of.setdefault((j, e), []).append(B)
        J, K, n_o = instance.num_servers, len(keys), len(self.options)
        rows, cols, vals = [], [], []
        for o_idx, (j, a, m) in enumerate(self.options):
            rows.append(j)
            cols.append(o_idx)
            vals.append(1.0)
            e = a + m - 1
            for B in self.rows_of.get((j, e), []):
                if a <= B:
                    rows.append(J + self.key_index[(j, e, B)])
                    cols.append(o_idx)
                    vals.append(-float(slots[j, m]))
        # rows: J one-option rows, K linking rows, then the (negated) rate row
        self.num_rows = J + K + 1
        self.y_block = sp.csc_array((vals, (rows, cols)), shape=(self.num_rows, n_o))
        self.b_ub = np.concatenate([np.ones(J), np.zeros(K), [-1.0]])
        self._columns: dict[tuple[Segment, ...], tuple[list[int], list[float]]] = {}

    def column(self, path: SegmentPath) -> tuple[list[int], list[float]]:
        """Row indices and coefficients of a path's c column (memoised: columns persist across rounds)."""
        cached = self._columns.get(path.segments)
        if cached is None:
            cached = self._columns[path.segments] = self._column(path)
        return cached

    def _column(self, path: SegmentPath) -> tuple[list[int], list[float]]:
        J, K = self.instance.num_servers, len(self.keys)
        rows = [J + K]
        vals = [-1.0 / (path.time_s * self.instance.required_rate)]
        for s in path.segments:
            for B in self.rows_of[(s.server, s.last)]:
                if s.first <= B:
                    rows.append(J + self.key_index[(s.server, s.last, B)])
                    vals.append(float(s.num_blocks))
        return rows, vals

    def solve(self, paths: list[SegmentPath], phase_one: bool) -> tuple[float, None, dict[str, float]] | None:
        """LP value and duals (named like :func:`build_model`'s rows, in the model's sign convention)."""
        rows, cols, vals = [], [], []
        for k, p in enumerate(paths):
            r, v = self.column(p)
            rows += r
            cols += [k] * len(r)
            vals += v
        n_p = len(paths)
        extra = 1 if phase_one else 0
        if phase_one:
            rows.append(self.num_rows - 1)
            cols.append(n_p)
            vals.append(-1.0)
        c_block = sp.csc_array((vals, (rows, cols)), shape=(self.num_rows, n_p + extra))
        A = sp.hstack([self.y_block, c_block]).tocsr()
        n_o = len(self.options)
        cost = np.concatenate([np.zeros(n_o), np.zeros(n_p) if phase_one else np.ones(n_p), np.ones(extra)])
        bounds = [(0.0, 1.0)] * n_o + [(0.0, None)] * (n_p + extra)
        res = so.linprog(cost, A_ub=A, b_ub=self.b_ub, bounds=bounds, method="highs")
        if res.status != 0:
            return None
        marg = np.asarray(res.ineqlin.marginals)
        J = self.instance.num_servers
        duals = {f"one_option[{j}]": float(marg[j]) for j in range(J)}
        duals.update({f"link[{k}]": float(marg[J + k]) for k in range(len(self.keys))})
        duals["rate"] = -float(marg[-1])
        return float(res.fun), None, duals


def _path_of_chain(instance: ChainInstance, chain: Chain) -> SegmentPath:
    segs = []
    b = 1
    for j, mij in zip(chain.servers, chain.blocks, strict=True):
        segs.append(Segment(j, b, b + mij - 1))
        b += mij
    return SegmentPath(tuple(segs), sum(segment_time_s(instance, s) for s in segs))


def _block_dag(
    instance: ChainInstance, segments: list[Segment], weight: dict[Segment, float]
) -> tuple[dict[Segment, float], dict[int, list[Segment]], np.ndarray, np.ndarray]:
    """The block DAG (node n = blocks 1..n done; one arc per segment) with each node's cheapest completion.

    Returns segment times, out-arcs per node, and per node the least remaining time and the least remaining
    weight to block L (each minimised separately, so together a lower bound on any completion). O(#segments).
    """
    L = instance.num_blocks
    times = {s: segment_time_s(instance, s) for s in segments}
    out_arcs: dict[int, list[Segment]] = {}
    for s in segments:
        out_arcs.setdefault(s.first - 1, []).append(s)
    min_t = np.full(L + 1, np.inf)
    min_w = np.full(L + 1, np.inf)
    min_t[L] = min_w[L] = 0.0
    for n in range(L - 1, -1, -1):
        for s in out_arcs.get(n, []):
            min_t[n] = min(min_t[n], times[s] + min_t[s.last])
            min_w[n] = min(min_w[n], weight[s] + min_w[s.last])
    return times, out_arcs, min_t, min_w


def _price(
    instance: ChainInstance,
    segments: list[Segment],
    weight: dict[Segment, float],
    pi: float,
    constant: float,
    max_labels: int,
    max_columns: int = 20,
    deadline: float | None = None,
) -> tuple[list[SegmentPath], bool, float]:
    """Paths minimising ``constant + W_p - pi / T_p`` over the block DAG, by Pareto labels (W, T).

    Returns the paths with a negative value (best first, at most ``max_columns``), whether the search was
    exact (no label cap or deadline hit), and the least value found (0 when none is negative; the exact minimum
    over all paths when the search was exact and it is negative). Paths may repeat a server; such columns are
    forced to 0 in every integer solution (a server has one last block) and only weaken the LP, so the bound
    stays valid.
    """
    L = instance.num_blocks
    # Labels that cannot go negative even with the cheapest completion are dropped.
    times, out_arcs, min_t, min_w = _block_dag(instance, segments, weight)
    eps = 1e-9
    labels: list[list[tuple[float, float, tuple[Segment, ...]]]] = [[] for _ in range(L + 1)]
    labels[0] = [(0.0, 0.0, ())]
    exact = True
    for n in range(L):
        if deadline is not None and time.perf_counter() > deadline:
            return [], False, 0.0
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
    return list(unique.values()), exact, (found[0][0] if found else 0.0)


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
    max_paths: int,
    seed: int,
) -> BpcaOutcome:
    start = time.perf_counter()
    segments = useful_segments(instance)
    seg_index = {s: i for i, s in enumerate(segments)}
    keys = link_keys(segments)
    row_starts: dict[tuple[int, int], list[int]] = {}
    for j, e, B in keys:
        row_starts.setdefault((j, e), []).append(B)
    master = _MasterLP(instance, segments, keys)
    columns: dict[tuple[Segment, ...], SegmentPath] = {}
    for ch in initial_chains:
        p = _path_of_chain(instance, ch)
        if all(s in seg_index for s in p.segments):
            columns.setdefault(p.segments, p)
    info: dict[str, Any] = {"mode": "colgen", "initial_columns": len(columns), "iterations": 0}
    exact_pricing = True
    early_bound = -math.inf
    lp_value: float | None = None
    converged = False

    def deadline_hit() -> bool:
        return time_limit_s is not None and time.perf_counter() - start > 0.5 * time_limit_s

    for phase_one in (True, False):
        iterations = 0
        while True:
            iterations += 1
            got = master.solve(list(columns.values()), phase_one)
            if got is None:
                raise InputError("column generation: the restricted LP failed to solve", field="mode", value="colgen")
            value, _, duals = got
            # Multipliers clamped to their signs, here and in the Lagrangian bound, so both use the same values.
            pi = max(duals.get("rate", 0.0), 0.0) / instance.required_rate
            alpha = {key: max(-duals.get(f"link[{k}]", 0.0), 0.0) for k, key in enumerate(keys)}
            # Rows that do not exist yet (no column through them) have dual 0, which is a valid dual of the LP
            # with the row added, because such a row is implied by y >= 0.
            # A segment (j, b, e) enters every row (j, e, B) with B >= b.
            weight = {
                s: s.num_blocks
                * sum(alpha[(s.server, s.last, B)] for B in row_starts[(s.server, s.last)] if s.first <= B)
                for s in segments
            }
            new, exact, best = _price(
                instance,
                segments,
                weight,
                pi,
                0.0 if phase_one else 1.0,
                max_labels,
                deadline=None if time_limit_s is None else start + 0.5 * time_limit_s,
            )
            new = [p for p in new if p.segments not in columns]
            if not exact:
                exact_pricing = False
            elif not phase_one:
                # Valid at every exactly priced round: sum c >= lagrange + rc_min sum c, so
                # sum c >= lagrange / (1 - rc_min) (rc_min <= 0), whether or not the LP has converged.
                lag = _lagrangian_bound(instance, master.options, duals, keys, alpha)
                early_bound = max(early_bound, lag / (1.0 - min(0.0, best)))
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

    info.update(columns=len(columns), lp_value=lp_value, exact_pricing=exact_pricing)

    def remaining() -> float | None:
        return None if time_limit_s is None else max(1.0, time_limit_s - (time.perf_counter() - start))

    # Upper bound: the MILP over the generated columns. Only elementary columns: the others are 0 in every
    # integer solution (a server has one last block).
    elementary = [p for p in columns.values() if p.is_elementary]
    model = build_model(instance, elementary)
    res = solve(model, backend, time_limit_s=remaining(), threads=threads, rel_gap=rel_gap, seed=seed)
    info["restricted_milp"] = str(res.status)
    incumbent = decode(instance, model) if res.status.has_solution else None
    upper = round(res.objective) if res.status.has_solution else math.inf
    if lp_value is None:
        # Pricing did not converge: the incumbent comes with the best bound of the exactly priced rounds, if any.
        lower = math.ceil(early_bound - 1e-6) if math.isfinite(early_bound) and early_bound > 0 else None
        info["early_bound"] = early_bound if math.isfinite(early_bound) else None
        if incumbent is not None and lower is not None and upper <= lower:
            return _outcome(Status.OPTIMAL, incumbent, upper, upper, res, info)
        status = Status.FEASIBLE if incumbent is not None else Status.NO_SOLUTION_IN_TIME
        return _outcome(status, incumbent, upper, lower, res, info)

    # Lagrangian bound from the final duals: for every BPCA solution x, sum c >= lagrange + sum_p rc_p c_p with
    # rc_p >= 0 (pricing converged). Columns with rc_p > delta cannot appear in a solution of value
    # <= lagrange + delta, so enumerating the paths with rc_p <= delta closes the problem exactly.
    eps = 1e-6
    lagrange = _lagrangian_bound(instance, master.options, duals, keys, alpha)
    info["lagrangian_bound"] = lagrange
    lower = math.ceil(lagrange - eps)
    # Thresholds grow one unit of objective at a time, starting from the one that would prove ceil(lagrange) + 1:
    # small thresholds keep the MILPs small, and each solved one raises the proven lower bound by one.
    delta = lower - lagrange + 2 * eps
    if math.isfinite(upper):
        delta = min(delta, upper - 1 - lagrange + 2 * eps)
    last = res
    while True:
        if math.isfinite(upper) and upper <= lower:
            return _outcome(Status.OPTIMAL, incumbent, upper, upper, last, info)
        deadline = None if time_limit_s is None else start + time_limit_s
        paths, complete = _paths_below(instance, segments, weight, pi, delta + eps, max_paths, deadline)
        info["threshold_paths"] = None if paths is None else len(paths)
        info["threshold"] = delta
        if paths is None:
            return _outcome(Status.FEASIBLE, incumbent, upper, lower, last, info)
        model = build_model(instance, paths)
        last = solve(model, backend, time_limit_s=remaining(), threads=threads, rel_gap=rel_gap, seed=seed)
        info["threshold_milp"] = str(last.status)
        if last.status.has_solution and round(last.objective) < upper:
            upper = round(last.objective)
            incumbent = decode(instance, model)
        # Every solution avoided by this MILP uses a column with rc_p > delta: its value exceeds lagrange + delta.
        avoided = math.floor(lagrange + delta - eps) + 1
        if last.status not in (Status.OPTIMAL, Status.INFEASIBLE) or (
            last.status == Status.OPTIMAL and rel_gap is not None and (last.gap or 0.0) > 1e-9
        ):
            # The optimum is the better of this MILP's (>= its bound) and the avoided solutions' (>= avoided).
            if last.bound is not None:
                lower = max(lower, min(math.ceil(last.bound - eps), avoided, upper))
            return _outcome(Status.FEASIBLE, incumbent, upper, lower, last, info)
        if complete:
            # Nothing was cut off: this MILP was the whole path model.
            if last.status == Status.INFEASIBLE and incumbent is None:
                return BpcaOutcome(Status.INFEASIBLE, None, None, None, None, last, info)
            return _outcome(Status.OPTIMAL, incumbent, upper, upper, last, info)
        lower = max(lower, min(upper, avoided))
        if math.isfinite(upper) and upper <= lower:
            return _outcome(Status.OPTIMAL, incumbent, upper, upper, last, info)
        delta = delta + 1.0
        if math.isfinite(upper):
            delta = min(delta, upper - 1 - lagrange + 2 * eps)
        if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
            return _outcome(
                Status.FEASIBLE if incumbent else Status.NO_SOLUTION_IN_TIME, incumbent, upper, lower, last, info
            )


def _outcome(
    status: Status, incumbent: ChainSolution | None, upper: float, lower: float | None, res: SolveResult, info: dict
) -> BpcaOutcome:
    if incumbent is None:
        status = Status.NO_SOLUTION_IN_TIME if status != Status.INFEASIBLE else status
        return BpcaOutcome(status, None, None, None if lower is None else float(lower), None, res, info)
    gap = None if lower is None else max(0.0, upper - lower) / max(abs(upper), 1e-9)
    return BpcaOutcome(status, incumbent, float(upper), None if lower is None else float(lower), gap, res, info)


def _lagrangian_bound(
    instance: ChainInstance,
    options: list[tuple[int, int, int]],
    duals: dict[str, float],
    keys: list[tuple[int, int, int]],
    alpha: dict[tuple[int, int, int], float],
) -> float:
    """Pi - sum_j gamma_j + sum_o min(0, rc_o): the Lagrangian dual value at the (sign-clamped) multipliers.

    Valid for any multipliers pi, alpha, gamma >= 0 (weak duality), so float round-off in the LP cannot make it
    an over-estimate beyond the clamping.
    """
    slots = option_slots(instance)
    pi_raw = max(duals.get("rate", 0.0), 0.0)
    gamma = {j: max(-duals.get(f"one_option[{j}]", 0.0), 0.0) for j in range(instance.num_servers)}
    rows_of: dict[tuple[int, int], list[int]] = {}
    for j, e, B in keys:
        rows_of.setdefault((j, e), []).append(B)
    value = pi_raw - sum(gamma.values())
    for j, a, m in options:
        e = a + m - 1
        rc = gamma[j] - sum(alpha[(j, e, B)] * int(slots[j, m]) for B in rows_of.get((j, e), []) if a <= B)
        value += min(0.0, rc)
    return value


def _paths_below(
    instance: ChainInstance,
    segments: list[Segment],
    weight: dict[Segment, float],
    pi: float,
    threshold: float,
    max_paths: int,
    deadline: float | None = None,
) -> tuple[list[SegmentPath] | None, bool]:
    """Every elementary path with reduced cost 1 + W_p - pi / T_p <= threshold.

    None instead of the list if there are more than ``max_paths`` or the search passes ``deadline``
    (a :func:`time.perf_counter` value).

    The flag says whether the threshold cut nothing off (then the list holds every elementary path).

    Depth-first over the block DAG; a partial path is cut when even its cheapest completion (least remaining
    weight and least remaining time, each a lower bound) exceeds the threshold.
    """
    L = instance.num_blocks
    times, out_arcs, min_t, min_w = _block_dag(instance, segments, weight)
    found: list[SegmentPath] = []
    cut = [False]
    visited = [0]
    stack: list[Segment] = []
    used: set[int] = set()

    def walk(n: int, w: float, t: float) -> bool:
        for s in out_arcs.get(n, []):
            if s.server in used:
                continue
            visited[0] += 1
            if deadline is not None and visited[0] % 4096 == 0 and time.perf_counter() > deadline:
                return False
            nw, nt = w + weight[s], t + times[s]
            if 1.0 + nw + min_w[s.last] - pi / (nt + min_t[s.last]) > threshold:
                cut[0] = True
                continue
            stack.append(s)
            used.add(s.server)
            if s.last == L:
                found.append(SegmentPath(tuple(stack), nt))
                if len(found) > max_paths:
                    return False
            elif not walk(s.last, nw, nt):
                return False
            stack.pop()
            used.discard(s.server)
        return True

    ok = walk(0, 0.0, 0.0)
    return (found if ok else None), not cut[0]
