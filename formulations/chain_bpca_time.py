"""Compact time-expanded MILP for joint block placement and cache allocation (BPCA), model B.

The path-based model (:mod:`formulations.chain_bpca`, model A) needs one column per chain, exponentially many. This
model puts a chain's cumulative service time into the state instead (``docs/formulations_chain.md``, section
4b; proofs in ``proofs/bpca_time_expanded.md``):

* nodes (e, k): "blocks 1..e processed, elapsed time k * step" for a time grid of step ``step_s``;
* one arc per useful segment (j, b, e) (:func:`formulations.chain_paths.useful_segments`) and grid time k, from
  (b - 1, k) to (e, k + u), where u is the segment's time tau^c_j + tau^p_j (e - b + 1) in grid steps, rounded
  *up* or *down*; its integer flow x is the number of job slots using that segment, each costing e - b + 1 cache
  slots on server j;
* flow conservation at every node except the source (0, 0) and the sinks (L, k), whose inflow f_k counts the job
  slots of chains with grid time k; the rate row sum_k f_k / (t_k R) >= 1 is linear (t_k a constant of the node);
* placement binaries y[j, a, m] and the cumulative linking rows of model A with the per-segment load
  sum_k x[(j, b, e), k] in place of the path capacities, so a segment carries flow only if j hosts [a, e] with
  a <= b, within j's slots;
* objective: the flow out of the source, sum_k f_k = sum of the chains' capacities.

Every integer flow decomposes into source-sink paths (:func:`decompose_flow`), one chain each, whose grid time is
the sink's time. Rounded **up**, every chain's true time is at most its grid time, so every solution is a feasible
BPCA solution (an upper bound). Rounded **down** (the rate coefficient of a sink is 1 / max(t_k, T_min), T_min the
least true time of any chain), every BPCA solution is a solution of the model, so its optimum is a lower bound.
When every segment time lies on the grid, both coincide and the model is exact. Size: O(|segments| K) arcs for K
grid times (pseudo-polynomial), independent of the number of chains.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import pyomo.environ as pyo

from formulations.chain_bpca import add_one_option, add_placement, decode_placement, link_keys, linked_slots
from formulations.chain_paths import Segment, option_slots, segment_time_s, useful_segments
from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import Chain, ChainSolution
from serveplan.errors import InputError
from serveplan.solvers import SolveResult, Status, solve

ROUNDINGS = ("up", "down")
DEFAULT_STEPS = 100
# Relative tolerance when rounding a time onto the grid: 0.7 / 0.1 is 6.999999999999999 in floating point.
_GRID_TOL = 1e-9


@dataclass(frozen=True)
class Arc:
    """Segment ``segment`` started at grid time ``start`` (node (first - 1, start)), ending at grid time ``end``."""

    segment: Segment
    start: int
    end: int


def chain_time_range_s(instance: ChainInstance, segments: list[Segment]) -> tuple[float, float]:
    """(least, largest) true time of a source-sink path over ``segments`` in the block DAG (servers may repeat).

    Every chain of every placement built from these segments has a time in this range. (inf, -inf) if no path
    reaches block L. O(|segments|).
    """
    L = instance.num_blocks
    lo = [math.inf] * (L + 1)
    hi = [-math.inf] * (L + 1)
    lo[0] = hi[0] = 0.0
    for s in sorted(segments, key=lambda s: s.first):
        t = segment_time_s(instance, s)
        if math.isfinite(lo[s.first - 1]):
            lo[s.last] = min(lo[s.last], lo[s.first - 1] + t)
            hi[s.last] = max(hi[s.last], hi[s.first - 1] + t)
    return lo[L], hi[L]


def grid_step_s(instance: ChainInstance, steps: int | None = None, step_s: float | None = None) -> float:
    """The grid step: ``step_s`` if given, else the largest chain time (:func:`chain_time_range_s`) / ``steps``.

    Raises
    ------
    InputError
        If ``steps`` < 1 or ``step_s`` <= 0 (or not finite).
    """
    if step_s is not None:
        if not (isinstance(step_s, int | float) and math.isfinite(step_s) and step_s > 0):
            raise InputError("the grid step must be a positive number of seconds", field="step_s", value=step_s)
        return float(step_s)
    steps = DEFAULT_STEPS if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError("the number of grid steps must be an integer >= 1", field="steps", value=steps)
    _, t_max = chain_time_range_s(instance, useful_segments(instance))
    if not math.isfinite(t_max) or t_max <= 0:
        return 1.0  # no chain at all: any step gives the same (infeasible) model
    return t_max / steps


def grid_units(time_s: float, step_s: float, rounding: str) -> int:
    """``time_s`` in grid steps, rounded up or down (times within 1e-9 relative of a grid point count as on it)."""
    u = time_s / step_s
    if rounding == "up":
        return math.ceil(u - _GRID_TOL * u)
    if rounding == "down":
        return math.floor(u + _GRID_TOL * u)
    raise InputError("unknown rounding", field="rounding", value=rounding, hint="'up' or 'down'")


def on_grid(instance: ChainInstance, step_s: float, segments: list[Segment] | None = None) -> bool:
    """Whether every useful segment's time lies on the grid (then the up and down models are the same)."""
    segments = useful_segments(instance) if segments is None else segments
    return all(
        grid_units(segment_time_s(instance, s), step_s, "up") == grid_units(segment_time_s(instance, s), step_s, "down")
        for s in segments
    )


def time_expanded_arcs(
    instance: ChainInstance, segments: list[Segment], step_s: float, rounding: str
) -> tuple[list[Arc], list[int]]:
    """The arcs on a path from the source (0, 0) to some sink (L, k), and the sorted sink times k.

    Nodes are generated forward from the source in block order (only reachable ones), then pruned backward to
    those that reach block L. O(|segments| K) for K grid times.
    """
    L = instance.num_blocks
    units = {s: grid_units(segment_time_s(instance, s), step_s, rounding) for s in segments}
    by_first: dict[int, list[Segment]] = {}
    for s in segments:
        by_first.setdefault(s.first, []).append(s)
    reached: list[set[int]] = [set() for _ in range(L + 1)]
    reached[0].add(0)
    arcs: list[Arc] = []
    for e in range(L):
        for k in sorted(reached[e]):
            for s in by_first.get(e + 1, []):
                arcs.append(Arc(s, k, k + units[s]))
                reached[s.last].add(k + units[s])
    alive: list[set[int]] = [set() for _ in range(L + 1)]
    alive[L] = set(reached[L])
    kept: list[Arc] = []
    # Arcs end at a larger block than they start, so one backward pass over the start block settles liveness.
    for arc in sorted(arcs, key=lambda a: -a.segment.first):
        if arc.end in alive[arc.segment.last]:
            kept.append(arc)
            alive[arc.segment.first - 1].add(arc.start)
    kept.sort(key=lambda a: (a.segment.first, a.start, a.segment.server, a.segment.last))
    return kept, sorted(alive[L])


def build_model(
    instance: ChainInstance,
    step_s: float,
    rounding: str = "up",
    *,
    segments: list[Segment] | None = None,
    relax: bool = False,
) -> pyo.ConcreteModel:
    """The time-expanded BPCA model on a grid of ``step_s`` seconds, segment times rounded ``up`` or ``down``.

    Parameters
    ----------
    instance : ChainInstance
    step_s : float
        Grid step, seconds (see :func:`grid_step_s`).
    rounding : {"up", "down"}
        ``up``: every solution is BPCA-feasible (upper bound); ``down``: a relaxation (lower bound).
    segments : list of Segment, optional
        Default: every useful segment (which keeps the model exact on a grid-aligned instance).
    relax : bool, default False
        LP relaxation (y and x continuous).

    Returns
    -------
    pyomo.ConcreteModel
        With attributes ``bpca_arcs``, ``bpca_sinks`` (sink grid times), ``bpca_options``, ``bpca_step_s`` and
        ``bpca_rounding`` for :func:`decode`.
    """
    if rounding not in ROUNDINGS:
        raise InputError("unknown rounding", field="rounding", value=rounding, hint="'up' or 'down'")
    segments = useful_segments(instance) if segments is None else segments
    slots = option_slots(instance)
    L = instance.num_blocks
    required = instance.required_rate
    arcs, sinks = time_expanded_arcs(instance, segments, step_s, rounding)
    used = sorted({a.segment for a in arcs}, key=lambda s: (s.server, s.first, s.last))

    m = pyo.ConcreteModel(name=f"bpca_time_{rounding}")
    m.bpca_arcs = arcs
    m.bpca_sinks = sinks
    m.bpca_step_s = float(step_s)
    m.bpca_rounding = rounding
    m.bpca_num_blocks = L
    m.A = pyo.RangeSet(0, len(arcs) - 1) if arcs else pyo.Set(initialize=[])
    m.K = pyo.Set(initialize=sinks)
    by_server = add_placement(m, used, slots, relax)
    # A segment never carries more job slots than its best option leaves, floor(S_j(e-b+1) / (e-b+1)).
    cap = [int(slots[a.segment.server, a.segment.num_blocks] // a.segment.num_blocks) for a in arcs]
    flow_domain = pyo.NonNegativeReals if relax else pyo.NonNegativeIntegers
    m.x = pyo.Var(m.A, domain=flow_domain, bounds=lambda _, i: (0, cap[i]))
    m.f = pyo.Var(m.K, domain=flow_domain)

    # Flow conservation at every node except the source (0, 0); the sinks' outflow is f_k.
    into: dict[tuple[int, int], list[int]] = {}
    out_of: dict[tuple[int, int], list[int]] = {}
    for i, a in enumerate(arcs):
        into.setdefault((a.segment.last, a.end), []).append(i)
        out_of.setdefault((a.segment.first - 1, a.start), []).append(i)
    inner = sorted(n for n in into if n[0] < L)

    def conserve(mm: pyo.ConcreteModel, e: int, k: int) -> Any:
        return sum(mm.x[i] for i in into[(e, k)]) == sum(mm.x[i] for i in out_of.get((e, k), []))

    m.conserve = pyo.Constraint(pyo.Set(initialize=inner, dimen=2), rule=conserve)
    m.sink = pyo.Constraint(m.K, rule=lambda mm, k: mm.f[k] == sum(mm.x[i] for i in into[(L, k)]))

    # Rate: a chain with grid time t_k contributes 1 / t_k per job slot. Rounded down, t_k is below the true time of
    # every chain reaching (L, k), and so is T_min (the least chain time): 1 / max(t_k, T_min) still over-estimates.
    t_min, _ = chain_time_range_s(instance, segments)
    grid_time = {k: k * step_s for k in sinks}
    if rounding == "down":
        grid_time = {k: max(t, t_min) for k, t in grid_time.items()}
    rate_expr = sum(m.f[k] * (1.0 / (grid_time[k] * required)) for k in sinks)
    if not sinks:
        # No chain can carry a job: keep the model well formed; the solver proves it infeasible.
        m.no_chain = pyo.Var(bounds=(0, 0))
        rate_expr = rate_expr + m.no_chain
    m.rate = pyo.Constraint(expr=rate_expr >= 1.0)
    add_one_option(m, by_server)

    # Cumulative linking rows of model A (docs/formulations_chain.md, rows (3)) over the segment loads.
    arcs_of: dict[Segment, list[int]] = {}
    for i, a in enumerate(arcs):
        arcs_of.setdefault(a.segment, []).append(i)
    starts: dict[tuple[int, int], list[Segment]] = {}
    for s in used:
        starts.setdefault((s.server, s.last), []).append(s)
    keys = link_keys(used)

    def link_rule(mm: pyo.ConcreteModel, r: int) -> Any:
        j, e, B = keys[r]
        lhs = sum(s.num_blocks * mm.x[i] for s in starts[(j, e)] if s.first <= B for i in arcs_of[s])
        return lhs <= linked_slots(mm, slots, j, e, B)

    m.link = pyo.Constraint(pyo.RangeSet(0, len(keys) - 1) if keys else [], rule=link_rule)
    objective = sum(m.f[k] for k in sinks) if sinks else 0 * m.no_chain
    m.obj = pyo.Objective(expr=objective, sense=pyo.minimize)
    return m


def decompose_flow(arcs: list[Arc], flows: list[int], num_blocks: int) -> list[tuple[tuple[Segment, ...], int, int]]:
    """Decompose an integer flow on the time-expanded DAG into source-sink paths.

    Returns (segments, grid time of the sink, flow) per path, with paths of equal segments merged. Repeatedly
    follows arcs with remaining flow from the source (0, 0) to a sink and subtracts the path's bottleneck; with
    conservation every walk reaches a sink and at most one path per arc is produced (each removes the flow of at
    least one arc). O(|arcs| * L). A walk that gets stuck (conservation violated by the input) is dropped.
    """
    remaining = [int(f) for f in flows]
    out_of: dict[tuple[int, int], list[int]] = {}
    for i, a in enumerate(arcs):
        if remaining[i] > 0:
            out_of.setdefault((a.segment.first - 1, a.start), []).append(i)
    merged: dict[tuple[Segment, ...], list[int]] = {}
    source = (0, 0)
    while True:
        path: list[int] = []
        node = source
        while node[0] < num_blocks:
            nxt = next((i for i in out_of.get(node, []) if remaining[i] > 0), None)
            if nxt is None:
                break
            path.append(nxt)
            node = (arcs[nxt].segment.last, arcs[nxt].end)
        if not path:
            break
        amount = min(remaining[i] for i in path)
        for i in path:
            remaining[i] -= amount
        if node[0] == num_blocks:
            segs = tuple(arcs[i].segment for i in path)
            entry = merged.setdefault(segs, [node[1], 0])
            entry[1] += amount
    return [(segs, k, c) for segs, (k, c) in merged.items()]


def decode(instance: ChainInstance, model: pyo.ConcreteModel) -> ChainSolution:
    """The placement (from y) and the chains of the flow decomposition, with their flows as capacities."""
    flows = [round(model.x[i].value or 0.0) for i in range(len(model.bpca_arcs))]
    chains, caps = [], []
    for segs, _, c in decompose_flow(model.bpca_arcs, flows, instance.num_blocks):
        chains.append(Chain(tuple(s.server for s in segs), tuple(s.num_blocks for s in segs)))
        caps.append(int(c))
    return ChainSolution(decode_placement(instance, model), tuple(chains), tuple(caps))


# ---------------------------------------------------------------------------------------------------------
# Solving: the up-rounded model for a solution, the down-rounded one for a bound.


@dataclass
class TimeExpandedOutcome:
    """What :func:`solve_bpca_time` found.

    Attributes
    ----------
    status : Status
        ``optimal`` only when the up-rounded solution's value meets the proven bound (always the case when the
        grid is exact and the solver proves optimality); ``feasible`` with a solution and a bound short of it;
        ``infeasible`` when the down-rounded relaxation (or the exact model) is infeasible, which proves BPCA
        infeasible; ``no_solution_in_time`` when no solution was found: the time ran out, or the up-rounded model
        is infeasible on this grid (``info["reason"]`` says which; refine the grid).
    solution : ChainSolution or None
        Decoded from the up-rounded (or exact) model; with refinement, the best over all grids.
    objective : float or None
    bound : float or None
        Proven lower bound on the BPCA optimum: ceil of the down-rounded model's solver bound (the best over all
        grids).
    gap : float or None
    solve : SolveResult or None
        The up-rounded (or exact) model's solve.
    info : dict
        Last grid (``step_s``, ``exact_grid``) and per model (``up``, ``down``): status, objective, bound, wall_s,
        arcs, grid times; ``rounds`` lists the same for every grid tried (more than one with ``refine``).
    """

    status: Status
    solution: ChainSolution | None
    objective: float | None
    bound: float | None
    gap: float | None
    solve: SolveResult | None
    info: dict[str, Any] = field(default_factory=dict)


def _summary(model: pyo.ConcreteModel, res: SolveResult) -> dict[str, Any]:
    sinks = model.bpca_sinks
    return {
        "status": str(res.status),
        "objective": res.objective,
        "bound": res.bound,
        "wall_s": res.wall_s,
        "arcs": len(model.bpca_arcs),
        "sink_times": len(sinks),
        "horizon_steps": max(sinks) if sinks else 0,
    }


def solve_bpca_time(
    instance: ChainInstance,
    *,
    steps: int | None = None,
    step_s: float | None = None,
    refine: int = 0,
    backend: str = "highs",
    time_limit_s: float | None = None,
    threads: int | None = None,
    rel_gap: float | None = None,
    seed: int = 0,
) -> TimeExpandedOutcome:
    """Solve BPCA with the time-expanded model: up-rounded for a solution, down-rounded for a bound.

    On a grid where every segment time lies (:func:`on_grid`) the two models are one exact model, solved once.
    Otherwise the up-rounded model gets half of the remaining time and the down-rounded one the rest. While the
    bracket is open, up to ``refine`` further rounds halve the step (which never loosens it,
    ``proofs/bpca_time_expanded.md`` (iv)); the best solution and the best bound over all rounds are reported.

    Parameters
    ----------
    instance : ChainInstance
    steps : int, optional
        Number of grid steps over the largest chain time (default 100); ignored when ``step_s`` is given.
    step_s : float, optional
        Grid step in seconds.
    refine : int, default 0
        Maximum number of step halvings after the first grid.
    backend, time_limit_s, threads, rel_gap, seed
        Passed to :func:`serveplan.solvers.solve`.
    """
    start = time.perf_counter()
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise InputError("the number of refinements must be an integer >= 0", field="refine", value=refine)
    segments = useful_segments(instance)
    step = grid_step_s(instance, steps, step_s)
    info: dict[str, Any] = {"segments": len(segments), "rounds": []}

    def remaining(share: float) -> float | None:
        if time_limit_s is None:
            return None
        return max(1.0, share * (time_limit_s - (time.perf_counter() - start)))

    def run(rounding: str, limit: float | None, grid: float, entry: dict[str, Any]) -> tuple[Any, SolveResult]:
        model = build_model(instance, grid, rounding, segments=segments)
        res = solve(model, backend, time_limit_s=limit, threads=threads, rel_gap=rel_gap, seed=seed)
        entry[rounding] = _summary(model, res)
        return model, res

    best_solution: ChainSolution | None = None
    best_res: SolveResult | None = None
    upper: int | None = None
    lower: float | None = None
    last_res: SolveResult | None = None
    up_infeasible = False
    for round_ in range(refine + 1):
        exact = on_grid(instance, step, segments)
        entry: dict[str, Any] = {"step_s": step, "exact_grid": exact}
        info["rounds"].append(entry)

        up_model, up = run("up", remaining(1.0 if exact else 0.5), step, entry)
        last_res = up
        up_infeasible = up.status == Status.INFEASIBLE
        if up.status.has_solution and (upper is None or round(up.objective) < upper):
            upper = round(up.objective)
            best_solution, best_res = decode(instance, up_model), up
        if exact:
            entry["down"] = entry["up"]
            down_bound, down_status = up.bound, up.status
        else:
            _, down = run("down", remaining(1.0), step, entry)
            down_bound, down_status = down.bound, down.status
        if down_status == Status.INFEASIBLE and best_solution is None:
            info.update(entry)
            return TimeExpandedOutcome(Status.INFEASIBLE, None, None, None, None, up, info)
        if down_status != Status.INFEASIBLE and down_bound is not None and math.isfinite(down_bound):
            lower = max(lower if lower is not None else -math.inf, float(math.ceil(down_bound - 1e-6)))
        closed = upper is not None and lower is not None and upper <= lower
        out_of_time = time_limit_s is not None and time.perf_counter() - start >= time_limit_s
        if closed or exact or out_of_time or round_ == refine:
            break
        step = step / 2
    # The top-level keys describe the last grid; "rounds" lists every grid tried.
    info.update({k: v for k, v in info["rounds"][-1].items()})
    if best_solution is None:
        info["reason"] = (
            "the up-rounded model is infeasible on this grid: refine it (more steps, a smaller step_s, or refine)"
            if up_infeasible
            else f"the up-rounded model ended {last_res.status if last_res else 'unsolved'} without a solution"
        )
        return TimeExpandedOutcome(Status.NO_SOLUTION_IN_TIME, None, None, lower, None, last_res, info)
    status = Status.OPTIMAL if lower is not None and upper <= lower else Status.FEASIBLE
    gap = None if lower is None else max(0.0, upper - lower) / max(abs(upper), 1e-9)
    return TimeExpandedOutcome(status, best_solution, float(upper), lower, gap, best_res, info)
