"""Registry entries for the server-chain heuristics: ``gbp_cr+gca``, ``gbp_cr`` and ``random``.

Every method takes ``(instance, budget, param)``; ``param`` (the part after a colon, e.g. ``gbp_cr+gca:7``) fixes
the cache-reservation parameter c. Options come from ``budget.options`` (strings from the CLI are accepted):

``gbp_cr+gca`` (the paper's pipeline: GBP-CR placement, GCA chains and capacities)
    ``c`` (int; default: tuned), ``criterion`` ("lower" default, "upper", "surrogate": how c is tuned),
    ``c_max`` (cap on the c range), ``last_server`` ("shift"/"truncate"), ``stop_rule`` ("rate"/"max_chains"),
    ``allocation`` ("full" default: every GCA chain at its full capacity, what JFFC dispatches over;
    "trimmed": only the job servers needed for lambda / rho_bar, fastest first), ``require_target`` (bool).
``gbp_cr`` (disjoint chains, each with capacity c)
    ``c`` (default: argmin c K(c)), ``c_max``, ``last_server``, ``stop_rule``.
``random`` (seeded random feasible placement with GBP-CR's chain rules; ``budget.seed``)
    ``c`` (default: GBP-CR's surrogate-tuned c, so the comparison is at equal c), ``samples`` (keep the best
    c K(c) of this many draws, default 1; the paper's comparator draws 100), ``gca`` (bool: allocate with GCA
    instead of disjoint chains), ``tries``, ``last_server``, ``stop_rule``.

The objective is sum_k c_k of the returned solution (the paper's surrogate: lambda times an upper bound on mean
service time). ``info`` carries c, K(c), the total rate, and Theorem 3.7's response-time bounds.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from heuristics.c_tuning import infeasibility_reason, tune_c
from heuristics.gbp_cr import GbpCrResult, gbp_cr
from heuristics.gca import GcaResult, gca
from heuristics.random_placement import random_placement
from serveplan.chain.bounds import solution_bound_metrics
from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import Chain, ChainSolution
from serveplan.chain.verify import verify
from serveplan.errors import InputError
from serveplan.registry import Budget, MethodResult, register

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _opt_int(options: dict[str, Any], key: str, param: str | None = None) -> int | None:
    raw = param if (key == "c" and param not in (None, "")) else options.get(key)
    if raw is None:
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise InputError("must be an integer", field=f"options.{key}", value=raw) from None
    if value < 1:
        raise InputError("must be >= 1", field=f"options.{key}", value=raw)
    return value


def _opt_choice(options: dict[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
    value = str(options.get(key, default))
    if value not in choices:
        raise InputError(f"must be one of {', '.join(choices)}", field=f"options.{key}", value=value)
    return value


def _opt_bool(options: dict[str, Any], key: str, default: bool) -> bool:
    raw = options.get(key, default)
    if isinstance(raw, bool):
        return raw
    if str(raw).lower() in _TRUE:
        return True
    if str(raw).lower() in _FALSE:
        return False
    raise InputError("must be true or false", field=f"options.{key}", value=raw)


def _flags(options: dict[str, Any]) -> dict[str, str]:
    return {
        "last_server": _opt_choice(options, "last_server", ("shift", "truncate"), "shift"),
        "stop_rule": _opt_choice(options, "stop_rule", ("rate", "max_chains"), "rate"),
    }


def _check_instance(instance: Any) -> ChainInstance:
    if not isinstance(instance, ChainInstance):
        raise InputError("a chain method needs a ChainInstance", value=type(instance).__name__)
    return instance


def _prepare(instance: Any, budget: Budget, param: str | None) -> tuple[ChainInstance, dict[str, str], int | None]:
    """Every method's first step: the checked instance, the chain-rule flags, and c (``param``, else options)."""
    instance = _check_instance(instance)
    return instance, _flags(budget.options), _opt_int(budget.options, "c", param)


def _finish(
    name: str, instance: ChainInstance, solution: ChainSolution | None, t0: float, info: dict[str, Any]
) -> MethodResult:
    """Verify, attach bounds, and package a MethodResult (infeasible when there is no solution)."""
    if solution is None:
        return MethodResult(name, "infeasible", None, None, wall_s=time.perf_counter() - t0, info=info)
    report = verify(instance, solution)
    info = {**info, **solution_bound_metrics(instance, solution)}
    info["verify_status"] = report.status
    return MethodResult(
        name,
        "feasible",
        solution,
        float(solution.total_capacity),
        verified=report.ok,
        violations=list(report.violations),
        wall_s=time.perf_counter() - t0,
        info=info,
    )


def disjoint_solution(run: GbpCrResult) -> ChainSolution:
    """GBP-CR's disjoint chains, each with capacity c (the simplified problem's allocation)."""
    return ChainSolution(run.placement, run.chains, (run.c,) * len(run.chains))


def gca_solution(instance: ChainInstance, run: GbpCrResult, alloc: GcaResult, *, trimmed: bool) -> ChainSolution:
    """GCA's chains over GBP-CR's placement; ``trimmed`` keeps only the job servers the rate target needs."""
    chains: tuple[Chain, ...] = alloc.chains
    caps: tuple[int, ...] = alloc.capacities
    if trimmed:
        order = np.argsort(np.asarray(alloc.service_times_s), kind="stable")
        keep_chains, keep_caps, acc = [], [], 0.0
        for k in order:
            t, c = alloc.service_times_s[k], alloc.capacities[k]
            take = min(c, max(1, math.ceil((instance.required_rate - acc) * t - 1e-9)))
            keep_chains.append(alloc.chains[k])
            keep_caps.append(take)
            acc += take / t
            if acc >= instance.required_rate * (1 - 1e-12):
                break
        chains, caps = tuple(keep_chains), tuple(keep_caps)
    return ChainSolution(run.placement, chains, caps)


@register(
    "chain",
    "gbp_cr+gca",
    kind="heuristic",
    param="c",
    summary="GBP-CR placement + GCA chains/capacities; c tuned by Theorem 3.7 lower bound (paper pipeline)",
)
def gbp_cr_gca_method(instance: Any, budget: Budget, param: str | None) -> MethodResult:
    """The paper's offline pipeline (section "End-to-end pipeline")."""
    t0 = time.perf_counter()
    instance, flags, c = _prepare(instance, budget, param)
    opts = budget.options
    criterion = _opt_choice(opts, "criterion", ("lower", "upper", "surrogate"), "lower")
    allocation = _opt_choice(opts, "allocation", ("full", "trimmed"), "full")
    require_target = _opt_bool(opts, "require_target", True)
    info: dict[str, Any] = {**flags, "allocation": allocation}
    if c is None:
        tuning = tune_c(instance, criterion, c_max=_opt_int(opts, "c_max"), require_target=require_target, **flags)
        info["criterion"] = criterion
        info["c_candidates"] = sum(1 for s in tuning.scores if s.eligible)
        if tuning.best_c is None:
            info["reason"] = tuning.reason
            return _finish("gbp_cr+gca", instance, None, t0, info)
        run = tuning.placement_run
        alloc = tuning.allocation if tuning.allocation is not None else gca(instance, run.placement)
    else:
        info["criterion"] = "fixed"
        run = gbp_cr(instance, c, **flags)
        if not run.feasible:
            info["reason"] = run.reason
            info["c"] = c
            return _finish("gbp_cr+gca", instance, None, t0, info)
        alloc = gca(instance, run.placement)
    info.update(c=run.c, K=run.num_needed, surrogate_job_servers=run.surrogate, gca_num_chains=len(alloc.chains))
    info["gca_job_servers_needed"] = alloc.job_servers_needed(instance.required_rate)
    solution = gca_solution(instance, run, alloc, trimmed=allocation == "trimmed")
    return _finish("gbp_cr+gca", instance, solution, t0, info)


@register(
    "chain",
    "gbp_cr",
    kind="heuristic",
    param="c",
    summary="GBP-CR disjoint chains with capacity c each; c = argmin c*K(c) (surrogate tuning)",
)
def gbp_cr_method(instance: Any, budget: Budget, param: str | None) -> MethodResult:
    """GBP-CR alone: the simplified block-placement problem's allocation."""
    t0 = time.perf_counter()
    instance, flags, c = _prepare(instance, budget, param)
    opts = budget.options
    info: dict[str, Any] = dict(flags)
    if c is None:
        tuning = tune_c(instance, "surrogate", c_max=_opt_int(opts, "c_max"), **flags)
        if tuning.best_c is None:
            info["reason"] = tuning.reason
            return _finish("gbp_cr", instance, None, t0, info)
        run = tuning.placement_run
        info["criterion"] = "surrogate"
    else:
        run = gbp_cr(instance, c, **flags)
        info["criterion"] = "fixed"
        if not run.feasible:
            info.update(reason=run.reason, c=c)
            return _finish("gbp_cr", instance, None, t0, info)
    info.update(c=run.c, K=run.num_needed, surrogate_job_servers=run.surrogate)
    return _finish("gbp_cr", instance, disjoint_solution(run), t0, info)


@register(
    "chain",
    "random",
    kind="baseline",
    param="c",
    summary="random feasible placement (random server order, GBP-CR chain rules), seeded by budget.seed",
)
def random_method(instance: Any, budget: Budget, param: str | None) -> MethodResult:
    """A random feasible placement: the comparator of the GBP-CR unit test."""
    t0 = time.perf_counter()
    instance, flags, c = _prepare(instance, budget, param)
    opts = budget.options
    info: dict[str, Any] = {**flags, "seed": budget.seed}
    if c is None:
        tuning = tune_c(instance, "surrogate", c_max=_opt_int(opts, "c_max"), **flags)
        if tuning.best_c is None:
            info["reason"] = tuning.reason
            return _finish("random", instance, None, t0, info)
        c = tuning.best_c
    tries = _opt_int(opts, "tries") or 100
    samples = _opt_int(opts, "samples") or 1
    rng = np.random.default_rng(budget.seed)
    run = None
    for _ in range(samples):  # best (smallest c K(c)) of `samples` random feasible placements
        draw = random_placement(instance, c, rng, max_tries=tries, **flags)
        if draw is not None and (run is None or draw.surrogate < run.surrogate):
            run = draw
    info.update(c=c, samples=samples)
    if run is None:
        base = gbp_cr(instance, c, **flags)
        info["reason"] = (
            f"no random server order out of {tries} reaches the rate target at c={c}"
            if base.feasible
            else (base.reason or infeasibility_reason(instance, [base]))
        )
        return _finish("random", instance, None, t0, info)
    info.update(K=run.num_needed, surrogate_job_servers=run.surrogate)
    solution = disjoint_solution(run)
    if _opt_bool(opts, "gca", False):
        alloc = gca(instance, run.placement)
        # GCA's greedy fastest-first allocation can end below the rate target that the placement's own
        # disjoint chains reach; the random comparator then keeps the disjoint chains and says so.
        if alloc.total_rate >= instance.required_rate * (1 - 1e-12):
            solution = gca_solution(instance, run, alloc, trimmed=False)
        else:
            info["gca_below_target"] = True
            info["gca_rate"] = alloc.total_rate
    return _finish("random", instance, solution, t0, info)
