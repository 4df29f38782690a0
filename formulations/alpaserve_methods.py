"""Exact AlpaServe methods, registered by name (``serveplan methods alpaserve``).

Every method builds a pyomo model, solves it with ``budget.backend`` (time limit ``budget.time_limit_s``, default
60 s; ``budget.threads``; ``budget.rel_gap``), decodes the incumbent into a :class:`Placement`, verifies it and
simulates it. ``objective``/``bound``/``gap`` are the solver's, in the model's own units (named in
``info["objective_units"]``); ``info["train_attainment"]``/``info["test_attainment"]`` are the decoded placement's
simulated SLO attainment. docs/formulations_alpaserve.md states what each optimises.

``milp:trace``          Trace-exact MILP, simulator rules: optimum = best simulated good count (small traces).
``milp:trace_offline``  Trace-exact MILP, offline dispatch and drops: an upper bound on every placement's good count.
``milp:window``         Window (fluid) MILP: the scalable decision model (not a bound).
``milp:window_bound``   Window MILP with spill-over capacity: a relaxation (upper bound on the good count).
``ilp:capacity``        The reference ``mp-ilp`` (capacity per rate, pure-pipeline groups of 1/2/4/8 GPUs).
``ilp:sr_capacity``     The reference ``sr-ilp`` (capacity per rate, 1-GPU groups).

Options (``budget.options``): ``window_s``, ``max_windows``, ``utilisation``, ``space`` ("slots" or
"partitions" or "decompose": one MILP per Algorithm 2 partition, the best kept; default "slots" up to 16 GPUs,
"decompose" above), ``replica_bonus``, ``fill`` (window); ``max_requests``, ``num_slots``, ``eps_s`` (trace).

``milp:window`` (fluid mode) decodes the MILP's groups and hosted models, then fills the memory those groups
have left with the fast greedy (more replicas never lower the fluid objective; ``fill=false`` turns it off);
``info["unfilled_train_attainment"]`` is the attainment of the MILP's placement before the fill.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from formulations import alpaserve_capacity, alpaserve_trace, alpaserve_window
from heuristics.alpaserve_greedy import SelectionContext, WorkingPlacement, fast_greedy
from serveplan.alpaserve.cluster import Placement
from serveplan.alpaserve.simulator import Simulator, simulate_train_test
from serveplan.alpaserve.verify import verify
from serveplan.errors import InputError
from serveplan.registry import Budget, MethodResult, register
from serveplan.solvers import solve

DEFAULT_TIME_LIMIT_S = 60.0


def _opt(budget: Budget, key: str, cast: Callable[[Any], Any], default: Any) -> Any:
    raw = budget.options.get(key, default)
    if raw is None:
        return None
    try:
        return cast(raw)
    except (TypeError, ValueError):
        raise InputError(f"bad value for option {key}", field=f"options.{key}", value=raw) from None


def solve_and_decode(
    name: str,
    instance,
    model,
    budget: Budget,
    decode: Callable[[Any], Placement | tuple[Placement, int]],
    units: str,
    t0: float,
    extra: dict[str, Any] | None = None,
) -> MethodResult:
    """Solve ``model``, decode, verify and simulate; package as a :class:`MethodResult`."""
    build_s = time.perf_counter() - t0
    # The method's budget covers building the model too: the solver gets what is left (at least 1 s).
    limit = budget.time_limit_s if budget.time_limit_s is not None else DEFAULT_TIME_LIMIT_S
    res = solve(
        model,
        budget.backend,
        time_limit_s=max(1.0, limit - build_s),
        threads=budget.threads,
        rel_gap=budget.rel_gap,
        seed=budget.seed,
    )
    info: dict[str, Any] = {"objective_units": units, "build_s": build_s, **(extra or {})}
    out = MethodResult(
        method=name,
        status=res.status.value,
        solution=None,
        objective=res.objective,
        bound=res.bound,
        gap=res.gap,
        solve=res.to_dict(),
        info=info,
    )
    if res.status.has_solution:
        decoded = decode(model)
        info.update(extra or {})  # the decoder may have added to ``extra``
        if isinstance(decoded, tuple):
            placement, dropped = decoded
            info["repaired_replicas_dropped"] = dropped
        else:
            placement = decoded
        report = verify(instance, placement)
        out.solution = placement
        out.verified = report.ok
        out.violations = list(report.violations)
        train, test = simulate_train_test(instance, placement)
        info.update(
            train_attainment=train.attainment,
            test_attainment=test.attainment,
            train_good=int(train.model_good.sum()),
            placement=placement.to_dict(),
        )
    out.wall_s = time.perf_counter() - t0
    return out


def _trace(instance, budget: Budget, rules: str, name: str) -> MethodResult:
    t0 = time.perf_counter()
    model = alpaserve_trace.build_model(
        instance,
        rules=rules,
        num_slots=_opt(budget, "num_slots", int, None),
        eps_s=_opt(budget, "eps_s", float, 0.0),
        max_requests=_opt(budget, "max_requests", int, 400),
    )
    extra = {"rules": rules, "num_requests": instance.train.num_requests}
    return solve_and_decode(
        name, instance, model, budget, lambda m: alpaserve_trace.decode(instance, m), "requests within SLO", t0, extra
    )


@register(
    "alpaserve",
    "milp:trace",
    kind="exact",
    summary="Trace-exact MILP under the simulator's dispatch/drop rules (small traces)",
)
def _m_trace(instance, budget: Budget, param: str | None) -> MethodResult:
    return _trace(instance, budget, "simulator", "milp:trace")


@register(
    "alpaserve",
    "milp:trace_offline",
    kind="exact",
    summary="Trace MILP with clairvoyant dispatch and drops: upper bound on the good count",
)
def _m_trace_offline(instance, budget: Budget, param: str | None) -> MethodResult:
    return _trace(instance, budget, "offline", "milp:trace_offline")


def fill_memory(instance, placement: Placement) -> Placement:
    """Add replicas to the decoded groups with the fast greedy until no model fits (groups and configs kept)."""
    configs = [g.config for g in placement.groups]
    ctx = SelectionContext(instance, Simulator(instance, instance.train))
    start = WorkingPlacement.empty(configs)
    for gi, g in enumerate(placement.groups):
        for i in g.models:
            start.add(gi, i, ctx.weights(g.config)[i])
    return fast_greedy(ctx, configs, start).placement


def _fill_option(budget: Budget, mode: str) -> bool:
    """``options["fill"]``: fill the decoded groups' memory with the fast greedy (default: fluid mode only)."""
    return str(budget.options.get("fill", mode == "fluid")).lower() in ("1", "true", "yes", "on")


def _window_options(budget: Budget) -> dict[str, Any]:
    return {
        "window_s": _opt(budget, "window_s", float, None),
        "max_windows": _opt(budget, "max_windows", int, 12),
        "utilisation": _opt(budget, "utilisation", float, 1.0),
        "replica_bonus": _opt(budget, "replica_bonus", float, 0.0),
    }


def _window(instance, budget: Budget, mode: str, name: str) -> MethodResult:
    t0 = time.perf_counter()
    space = str(budget.options.get("space", "slots" if instance.cluster.num_gpus <= 16 else "decompose"))
    if space == "decompose":
        return _window_decomposed(instance, budget, mode, name, t0)
    model = alpaserve_window.build_model(instance, mode=mode, space=space, **_window_options(budget))
    fill = _fill_option(budget, mode)
    extra: dict[str, Any] = {"mode": mode, "window_s": model.window_s, "num_windows": len(model.windows), "fill": fill}
    units = "fluid requests served" if mode == "fluid" else "fluid requests served (upper bound)"

    def decode(m):
        placement = alpaserve_window.decode(instance, m)
        if not fill:
            return placement
        extra["unfilled_train_attainment"] = Simulator(instance, instance.train).run(placement).attainment
        extra["unfilled_placement"] = placement.to_dict()
        return fill_memory(instance, placement)

    return solve_and_decode(name, instance, model, budget, decode, units, t0, extra)


def _window_decomposed(instance, budget: Budget, mode: str, name: str, t0: float) -> MethodResult:
    """``space="decompose"``: one MILP per Algorithm 2 partition; the best is the partitions-space optimum.

    Each partition gets an equal share of the time limit. The reported bound is the largest per-partition bound,
    each capped by the total demand (a valid bound on the partitions-space optimum); status ``optimal`` when
    every partition was solved to optimality or the best objective reaches that bound.
    """
    n = alpaserve_window.num_partitions(instance)
    total = budget.time_limit_s if budget.time_limit_s is not None else DEFAULT_TIME_LIMIT_S
    best_obj, best_model, bounds, statuses, parts = None, None, [], [], []
    for p in range(n):
        left = total - (time.perf_counter() - t0)
        share = max(left / (n - p), 0.5)
        model = alpaserve_window.build_model(
            instance, mode=mode, space="partitions", only_partition=p, **_window_options(budget)
        )
        res = solve(model, budget.backend, time_limit_s=share, threads=budget.threads, rel_gap=budget.rel_gap)
        # every partition's optimum is at most the total demand (sum_gc v <= D per model and window)
        cap = float(model.demand.sum()) + _opt(budget, "replica_bonus", float, 0.0) * len(model.YI)
        statuses.append(res.status.value)
        bounds.append(min(res.bound, cap) if res.bound is not None else cap)
        parts.append({"partition": p, "status": res.status.value, "objective": res.objective, "bound": res.bound})
        if res.status.has_solution and (best_obj is None or res.objective > best_obj):
            best_obj, best_model = res.objective, model
    bound = max(bounds) if bounds else None
    proven = all(st == "optimal" for st in statuses) or (
        best_obj is not None and bound is not None and best_obj >= bound - 1e-6 * max(1.0, abs(bound))
    )
    out = MethodResult(
        method=name,
        status="optimal" if proven else ("feasible" if best_model else "no_solution_in_time"),
        solution=None,
        objective=best_obj,
        bound=bound,
        gap=None if best_obj is None or bound is None else abs(bound - best_obj) / max(abs(best_obj), 1e-9),
        info={"objective_units": "fluid requests served", "space": "decompose", "partitions": parts},
    )
    if best_model is not None:
        placement = alpaserve_window.decode(instance, best_model)
        fill = _fill_option(budget, mode)
        if fill:
            out.info["unfilled_train_attainment"] = Simulator(instance, instance.train).run(placement).attainment
            placement = fill_memory(instance, placement)
        report = verify(instance, placement)
        out.solution, out.verified, out.violations = placement, report.ok, list(report.violations)
        train, test = simulate_train_test(instance, placement)
        out.info.update(
            train_attainment=train.attainment, test_attainment=test.attainment, placement=placement.to_dict()
        )
    out.wall_s = time.perf_counter() - t0
    return out


@register("alpaserve", "milp:window", kind="exact", summary="Window (fluid) MILP: scalable decision model")
def _m_window(instance, budget: Budget, param: str | None) -> MethodResult:
    return _window(instance, budget, "fluid", "milp:window")


@register(
    "alpaserve", "milp:window_bound", kind="exact", summary="Window MILP relaxation: upper bound on the good count"
)
def _m_window_bound(instance, budget: Budget, param: str | None) -> MethodResult:
    return _window(instance, budget, "bound", "milp:window_bound")


def _capacity(instance, budget: Budget, name: str, build: Callable, decode: Callable) -> MethodResult:
    """The reference capacity ILPs: build, solve and decode with the model's own builder and decoder."""
    t0 = time.perf_counter()
    model = build(instance)
    return solve_and_decode(
        name, instance, model, budget, lambda m: decode(instance, m), "min capacity/rate + 1e-4 sum", t0
    )


@register("alpaserve", "ilp:capacity", kind="baseline", summary="Reference mp-ilp: capacity per rate, pipelines")
def _m_capacity(instance, budget: Budget, param: str | None) -> MethodResult:
    return _capacity(instance, budget, "ilp:capacity", alpaserve_capacity.build_mp_model, alpaserve_capacity.decode_mp)


@register("alpaserve", "ilp:sr_capacity", kind="baseline", summary="Reference sr-ilp: capacity per rate, 1-GPU groups")
def _m_sr_capacity(instance, budget: Budget, param: str | None) -> MethodResult:
    return _capacity(
        instance, budget, "ilp:sr_capacity", alpaserve_capacity.build_sr_model, alpaserve_capacity.decode_sr
    )
