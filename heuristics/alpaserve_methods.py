"""Registry entries for the AlpaServe placement heuristics and baselines.

Every method takes ``(instance, budget, param)`` and returns a :class:`MethodResult` whose solution is a
:class:`Placement` (a :class:`TimeVaryingPlacement` for Clockwork++), checked by
:func:`serveplan.alpaserve.verify.verify`. ``objective`` is the simulated SLO attainment on the instance's
**train** workload (what the methods optimise); ``info["test_attainment"]`` is the same placement simulated on
the test workload. All methods are deterministic (``budget.seed`` is unused: nothing is drawn at random) and
ignore ``budget.time_limit_s``, except ``greedy`` and ``beam:K`` (O(R k |G| |M|) simulations), which stop at it
and return the best placement found (``info["stopped_at_time_limit"]``).

``search``            Algorithm 2 with model buckets (reference ``mp-search-sep``), then compared with ``search_flat``.
``search_flat``       Algorithm 2 without buckets (reference ``mp-search``).
``greedy``            Algorithm 1, beam width 1 (simulator-guided greedy), on the groups ``search_flat`` chooses.
``beam:K``            Algorithm 1, beam width K, on the same groups.
``sr``                Selective Replication: 1-GPU groups, fast greedy (reference ``sr-greedy``).
``clockwork++:W``     SR re-solved every W seconds on the window's real requests: an **oracle** (reference
                      ``sr-replace-W``); fitted to the test workload unless ``options["source"] = "train"``.
``round_robin``       Groups of pp=4, round-robin fill (reference ``mp-round-robin``, Fig. 14 ablation).
``greedy_group:K``    Groups of K GPUs (pp=K), fast greedy (reference ``mp-greedy-K``, Fig. 14 ablation).
``equal:PPxOP``       Dedicated (pp, op) groups, one model each (reference ``mp-equal-pp-op``, Fig. 12).

Options (``budget.options``): ``max_pp`` (8), ``max_op`` (4) for the searches and the groups of ``greedy``/``beam``;
``prune`` (true: best-first device-split search; false: every split, memoised) for ``search``; ``source``
("test"/"train") for ``clockwork++``; ``group_size`` (4) for ``round_robin``.
"""

from __future__ import annotations

import time
from typing import Any

from heuristics.alpaserve_ablations import equal_groups, greedy_fixed_groups, round_robin
from heuristics.alpaserve_greedy import SelectionContext, beam_selection, greedy_selection
from heuristics.alpaserve_search import PlacementSearch
from heuristics.clockwork import clockwork_pp
from heuristics.selective_replication import selective_replication
from serveplan.alpaserve.cluster import ParallelConfig, Placement, TimeVaryingPlacement
from serveplan.alpaserve.simulator import Simulator, simulate_train_test
from serveplan.alpaserve.verify import verify
from serveplan.errors import InputError
from serveplan.registry import Budget, MethodResult, register


def finish(
    name: str,
    instance,
    solution: Placement | TimeVaryingPlacement,
    t0: float,
    info: dict[str, Any] | None = None,
) -> MethodResult:
    """Verify, simulate on train (objective) and test (info), and package a heuristic's answer."""
    report = verify(instance, solution)
    train, test = simulate_train_test(instance, solution)
    info = dict(info or {})
    info.update(
        train_attainment=train.attainment,
        test_attainment=test.attainment,
        num_groups=len(solution.groups) if isinstance(solution, Placement) else None,
        placement=solution.to_dict(),
    )
    return MethodResult(
        method=name,
        status="feasible" if report.ok else "infeasible",
        solution=solution,
        objective=train.attainment,
        verified=report.ok,
        violations=list(report.violations),
        wall_s=time.perf_counter() - t0,
        info=info,
    )


def _positive_int(param: str | None, what: str, default: int | None = None) -> int:
    if param in (None, ""):
        if default is None:
            raise InputError(f"needs a parameter: {what}", field="method", value=param)
        return default
    try:
        v = int(param)
    except ValueError:
        raise InputError(f"{what} must be an integer", field="method", value=param) from None
    if v < 1:
        raise InputError(f"{what} must be >= 1", field="method", value=param)
    return v


def _int_option(budget: Budget, key: str, default: int) -> int:
    raw = budget.options.get(key, default)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise InputError("must be an integer", field=f"options.{key}", value=raw) from None


def _search(instance, budget: Budget, use_buckets: bool) -> tuple[PlacementSearch, Any]:
    prune = str(budget.options.get("prune", "true")).lower() in ("1", "true", "yes", "on")
    ps = PlacementSearch(
        instance,
        instance.train,
        max_pp=_int_option(budget, "max_pp", 8),
        max_op=_int_option(budget, "max_op", 4),
        prune_monotone=prune,
        threads=budget.threads or 1,
    )
    return ps, ps.run(use_buckets=use_buckets)


def _search_info(res) -> dict[str, Any]:
    return {
        "num_simulations": res.num_simulations,
        "buckets": res.buckets,
        "device_split": list(res.split),
        "num_splits": res.num_splits,
        **res.stats,
    }


@register("alpaserve", "search", kind="heuristic", summary="AlpaServe Algorithm 2 with model buckets (mp-search-sep)")
def _m_search(instance, budget: Budget, param: str | None) -> MethodResult:
    t0 = time.perf_counter()
    _, res = _search(instance, budget, True)
    return finish("search", instance, res.placement, t0, _search_info(res))


@register("alpaserve", "search_flat", kind="heuristic", summary="AlpaServe Algorithm 2 without buckets (mp-search)")
def _m_search_flat(instance, budget: Budget, param: str | None) -> MethodResult:
    t0 = time.perf_counter()
    _, res = _search(instance, budget, False)
    return finish("search_flat", instance, res.placement, t0, _search_info(res))


def _selection(instance, budget: Budget, beam_width: int | None, name: str) -> MethodResult:
    t0 = time.perf_counter()
    ps, res = _search(instance, budget, False)
    configs = [g.config for g in res.placement.groups]
    ctx = SelectionContext(instance, Simulator(instance, instance.train), threads=budget.threads or 1)
    deadline = None if budget.time_limit_s is None else t0 + budget.time_limit_s
    if beam_width is None:
        sel = greedy_selection(ctx, configs, deadline)
    else:
        sel = beam_selection(ctx, configs, beam_width, deadline)
    info = {
        "group_configs": [str(c) for c in configs],
        "num_simulations": ps.num_simulations + sel.num_simulations,
        "stopped_at_time_limit": ctx.timed_out,
    }
    return finish(name, instance, sel.placement, t0, info)


@register(
    "alpaserve",
    "greedy",
    kind="heuristic",
    summary="Algorithm 1 (simulator-guided greedy, beam 1) on the groups search_flat picks",
)
def _m_greedy(instance, budget: Budget, param: str | None) -> MethodResult:
    return _selection(instance, budget, None, "greedy")


@register(
    "alpaserve",
    "beam",
    kind="heuristic",
    summary="Algorithm 1 with beam width K on the groups search_flat picks",
    param="K",
)
def _m_beam(instance, budget: Budget, param: str | None) -> MethodResult:
    k = _positive_int(param, "beam width K", 3)
    return _selection(instance, budget, k, f"beam:{k}")


@register("alpaserve", "sr", kind="baseline", summary="Selective Replication: 1-GPU groups, fast greedy (sr-greedy)")
def _m_sr(instance, budget: Budget, param: str | None) -> MethodResult:
    t0 = time.perf_counter()
    sel = selective_replication(instance)
    return finish("sr", instance, sel.placement, t0, {"num_simulations": sel.num_simulations})


@register(
    "alpaserve",
    "clockwork++",
    kind="baseline",
    summary="ORACLE: SR re-solved per W-second window on that window's real requests (sr-replace-W)",
    param="WINDOW_S",
)
def _m_clockwork(instance, budget: Budget, param: str | None) -> MethodResult:
    t0 = time.perf_counter()
    try:
        window_s = float(param) if param not in (None, "") else 60.0
    except ValueError:
        raise InputError("window must be a number of seconds", field="method", value=param) from None
    if not window_s > 0:
        raise InputError("window must be > 0 seconds", field="method", value=param)
    source = str(budget.options.get("source", "test"))
    if source not in ("test", "train"):
        raise InputError("must be 'test' or 'train'", field="options.source", value=source)
    tvp = clockwork_pp(instance, window_s, instance.test if source == "test" else instance.train)
    info = {"oracle": True, "fitted_to": source, "window_s": window_s, "num_windows": len(tvp.placements)}
    return finish(f"clockwork++:{param or '60'}", instance, tvp, t0, info)


@register("alpaserve", "round_robin", kind="baseline", summary="Groups of pp=4, round-robin fill (mp-round-robin)")
def _m_round_robin(instance, budget: Budget, param: str | None) -> MethodResult:
    t0 = time.perf_counter()
    size = _int_option(budget, "group_size", 4)
    return finish("round_robin", instance, round_robin(instance, group_size=size), t0, {"group_size": size})


@register(
    "alpaserve",
    "greedy_group",
    kind="baseline",
    summary="Groups of K GPUs (pp=K), fast greedy (mp-greedy-K)",
    param="K",
)
def _m_greedy_group(instance, budget: Budget, param: str | None) -> MethodResult:
    t0 = time.perf_counter()
    k = _positive_int(param, "group size K", 4)
    sel = greedy_fixed_groups(instance, k)
    return finish(f"greedy_group:{k}", instance, sel.placement, t0, {"num_simulations": sel.num_simulations})


@register(
    "alpaserve",
    "equal",
    kind="baseline",
    summary="Dedicated (pp, op) groups, one model each (mp-equal-pp-op), e.g. equal:8x2",
    param="PPxOP",
)
def _m_equal(instance, budget: Budget, param: str | None) -> MethodResult:
    t0 = time.perf_counter()
    try:
        pp_s, op_s = (param or "").lower().split("x")
        config = ParallelConfig(int(pp_s), int(op_s))
    except (ValueError, InputError):
        raise InputError("expected PPxOP, e.g. equal:8x2", field="method", value=param) from None
    return finish(f"equal:{param}", instance, equal_groups(instance, config), t0, {"config": str(config)})
