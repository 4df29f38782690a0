"""Exact server-chain methods, registered by name (``serveplan methods chain``).

``milp:bpca``
    Joint block placement and cache allocation (BPCA), path-based MILP (:mod:`formulations.chain_bpca`).
    Options: ``mode`` = ``"enumerate"`` (default; exact, small instances) or ``"colgen"`` (column generation:
    proven LP lower bound, restricted-MILP upper bound; optimal only when they meet), ``max_paths``
    (enumeration limit, default 20000), ``seed_with_gca`` (colgen: seed columns with GBP-CR + GCA's chains at
    the tuned c, default True).
``milp:bpca-time[:STEPS]``
    BPCA with the compact time-expanded MILP (:mod:`formulations.chain_bpca_time`, model B). The grid has STEPS
    steps over the largest chain time (default 100; option ``steps``), or a step of ``step_s`` seconds (option,
    overrides). The up-rounded model gives the solution, the down-rounded one the bound; ``optimal`` only when they
    meet (always, up to the solver, when every segment time lies on the grid: then the model is exact). Option
    ``refine`` (default 0): up to that many step halvings while the bracket is open.
``milp:cache``
    Cache allocation for given chains, the multidimensional-knapsack ILP (:mod:`formulations.chain_cache`).
    Chains: ``options["placement"]`` (a Placement or its dict) with ``options["chains"]`` (list of Chain or
    dicts) or, without chains, every chain of that placement; by default GBP-CR's placement and GCA's chains
    at the c tuned by Theorem 3.7's lower bound (``options["c"]`` overrides c).
``milp:simplified``
    The simplified placement problem with reservation c (:mod:`formulations.chain_simplified`); c from
    ``options["c"]``, by default the tuned c. The objective reported is the solution's total capacity
    c * |K| (BPCA's objective); |K| is in ``info["num_chains"]``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from formulations import chain_bpca, chain_bpca_time, chain_cache, chain_simplified
from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import Chain, ChainSolution, Placement, chains_of_placement
from serveplan.chain.verify import verify
from serveplan.errors import InputError
from serveplan.registry import Budget, MethodResult, register
from serveplan.solvers import SolveResult, solve


def _verified(result: MethodResult, instance: ChainInstance) -> MethodResult:
    if result.solution is not None:
        report = verify(instance, result.solution)
        result.verified = report.ok
        result.violations = list(report.violations)
    return result


def _tuned(instance: ChainInstance, c: int | None) -> tuple[int | None, Placement, list[Chain], str]:
    """GBP-CR's placement and GCA's chains at ``c`` (default: c tuned by Theorem 3.7's lower bound)."""
    from heuristics.c_tuning import tune_c
    from heuristics.gbp_cr import gbp_cr
    from heuristics.gca import gca

    if c is None:
        tuning = tune_c(instance, "lower")
        if tuning.best_c is None:
            return None, Placement.unused(instance.num_servers), [], tuning.reason
        c = tuning.best_c
    run = gbp_cr(instance, int(c))
    if not run.feasible:
        return int(c), Placement.unused(instance.num_servers), [], run.reason
    return int(c), run.placement, list(gca(instance, run.placement).chains), ""


def _option(budget: Budget, key: str, default: Any) -> Any:
    return budget.options.get(key, default)


def _int_option(budget: Budget, key: str, default: int | None) -> int | None:
    """An integer option (the CLI passes strings)."""
    value = budget.options.get(key, default)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError("must be an integer", field=f"options.{key}", value=value) from None


def _bool_option(budget: Budget, key: str, default: bool) -> bool:
    value = budget.options.get(key, default)
    if isinstance(value, str):
        if value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if value.strip().lower() in ("0", "false", "no", "off"):
            return False
        raise InputError("must be true or false", field=f"options.{key}", value=value)
    return bool(value)


def _json_option(value: Any, key: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", field=f"options.{key}", value=value) from None
    return value


def _as_placement(value: Any) -> Placement:
    value = _json_option(value, "placement")
    if isinstance(value, Placement):
        return value
    if isinstance(value, dict) and "first_block" in value and "num_blocks" in value:
        return Placement(tuple(value["first_block"]), tuple(value["num_blocks"]))
    raise InputError("must be a Placement or {first_block, num_blocks}", field="options.placement", value=value)


def _as_chain(value: Any) -> Chain:
    if isinstance(value, Chain):
        return value
    if isinstance(value, dict) and "servers" in value and "blocks" in value:
        return Chain(tuple(value["servers"]), tuple(value["blocks"]))
    raise InputError("must be a Chain or {servers, blocks}", field="options.chains", value=value)


def _solve(model: Any, budget: Budget, presolve: bool | None = None) -> SolveResult:
    """Solve ``model`` within ``budget`` (backend, time limit, threads, gap, seed; presolve on/off/default)."""
    return solve(
        model,
        budget.backend,
        time_limit_s=budget.time_limit_s,
        threads=budget.threads,
        rel_gap=budget.rel_gap,
        seed=budget.seed,
        presolve=presolve,
    )


def _from_solve(name: str, res: SolveResult, solution: ChainSolution | None, start: float, info: dict) -> MethodResult:
    return MethodResult(
        method=name,
        status=str(res.status),
        solution=solution,
        objective=res.objective,
        bound=res.bound,
        gap=res.gap,
        wall_s=time.perf_counter() - start,
        solve=res.to_dict(),
        info=info,
    )


def _from_outcome(name: str, out: Any, start: float, info: dict) -> MethodResult:
    """A method result from a BPCA outcome (path or time-expanded model: status, solution, bound, gap, solve)."""
    return MethodResult(
        method=name,
        status=str(out.status),
        solution=out.solution,
        objective=out.objective,
        bound=out.bound,
        gap=out.gap,
        wall_s=time.perf_counter() - start,
        solve=out.solve.to_dict() if out.solve is not None else None,
        info=info,
    )


@register("chain", "milp:bpca", kind="exact", summary="BPCA exact path MILP (mode enumerate | colgen)")
def milp_bpca(instance: ChainInstance, budget: Budget, param: str | None) -> MethodResult:
    """Joint block placement and cache allocation, exactly (see module docstring for options)."""
    start = time.perf_counter()
    mode = str(_option(budget, "mode", param or "enumerate"))
    initial: list[Chain] = []
    if mode == "colgen" and _bool_option(budget, "seed_with_gca", True):
        _, _, initial, _ = _tuned(instance, _int_option(budget, "c", None))
    out = chain_bpca.solve_bpca(
        instance,
        mode=mode,
        backend=budget.backend,
        time_limit_s=budget.time_limit_s,
        threads=budget.threads,
        rel_gap=budget.rel_gap,
        max_paths=_int_option(budget, "max_paths", 20_000),
        initial_chains=initial,
        seed=budget.seed,
    )
    info = dict(out.info)
    info["restricted_milp"] = str(info["restricted_milp"]) if "restricted_milp" in info else None
    return _verified(_from_outcome("milp:bpca", out, start, info), instance)


@register(
    "chain",
    "milp:bpca-time",
    kind="exact",
    summary="BPCA compact time-expanded MILP (up/down-rounded grid: solution and bound)",
    param="steps",
)
def milp_bpca_time(instance: ChainInstance, budget: Budget, param: str | None) -> MethodResult:
    """BPCA by the time-expanded model: grid steps from the parameter or ``steps``, or ``step_s`` seconds."""
    start = time.perf_counter()
    steps = _int_option(budget, "steps", None)
    if steps is None and param is not None:
        try:
            steps = int(param)
        except ValueError:
            raise InputError("the number of grid steps must be an integer >= 1", field="steps", value=param) from None
    step_s = budget.options.get("step_s")
    if step_s is not None:
        try:
            step_s = float(step_s)
        except (TypeError, ValueError):
            raise InputError("must be a number of seconds", field="options.step_s", value=step_s) from None
    out = chain_bpca_time.solve_bpca_time(
        instance,
        steps=steps,
        step_s=step_s,
        refine=_int_option(budget, "refine", 0),
        backend=budget.backend,
        time_limit_s=budget.time_limit_s,
        threads=budget.threads,
        rel_gap=budget.rel_gap,
        seed=budget.seed,
    )
    return _verified(_from_outcome("milp:bpca-time", out, start, dict(out.info)), instance)


@register("chain", "milp:cache", kind="exact", summary="cache-allocation ILP (MKP form) for given chains")
def milp_cache(instance: ChainInstance, budget: Budget, param: str | None) -> MethodResult:
    """Optimal cache allocation over a given chain set (see module docstring for where the chains come from)."""
    start = time.perf_counter()
    info: dict[str, Any] = {}
    if "placement" in budget.options:
        placement = _as_placement(budget.options["placement"])
        if "chains" in budget.options:
            chains = [_as_chain(ch) for ch in _json_option(budget.options["chains"], "chains")]
            info["chains_from"] = "given"
        else:
            chains = chains_of_placement(instance, placement, _int_option(budget, "max_chains", 100_000))
            info["chains_from"] = "all chains of the placement"
    else:
        c, placement, chains, reason = _tuned(instance, _int_option(budget, "c", None))
        info.update(chains_from="GBP-CR + GCA", c=c)
        if reason:
            info["reason"] = reason
    info["num_chains"] = len(chains)
    model = chain_cache.build_model(instance, placement, chains)
    res = _solve(model, budget)
    solution = chain_cache.decode(instance, model) if res.status.has_solution else None
    return _verified(_from_solve("milp:cache", res, solution, start, info), instance)


@register(
    "chain",
    "milp:simplified",
    kind="exact",
    summary="simplified placement (reservation c), set-partitioning",
    param="c",
)
def milp_simplified(instance: ChainInstance, budget: Budget, param: str | None) -> MethodResult:
    """The simplified block-placement problem for one c, exactly (c from options, default the tuned c)."""
    start = time.perf_counter()
    c = _option(budget, "c", None)
    if c is None and param is not None:
        c = param
    if c is None:
        from heuristics.c_tuning import tune_c

        c = tune_c(instance, "lower").best_c
        if c is None:
            c = 1  # no c qualifies for the heuristics; c = 1 leaves the most room, the MILP decides feasibility
    try:
        c = int(c)
    except (TypeError, ValueError):
        raise InputError("the reservation parameter must be an integer >= 1", field="c", value=c) from None
    model = chain_simplified.build_model(instance, c, max_subsets=_int_option(budget, "max_subsets", 200_000))
    # HiGHS's presolve stalls on this wide set-partitioning model (about 80 s for 21 rows x 56k columns at the
    # paper's J = 20, without checking the time limit), while its branch and bound alone solves it in about 1 s.
    presolve = _option(budget, "presolve", None)
    if isinstance(presolve, str) and presolve.lower() in ("true", "on", "1", "false", "off", "0"):
        presolve = presolve.lower() in ("true", "on", "1")  # the CLI passes strings
    if presolve is None:
        presolve = False if budget.backend in ("highs", "highs-mathopt") else None
    elif not isinstance(presolve, bool):
        raise InputError("must be true or false", field="options.presolve", value=presolve)
    res = _solve(model, budget, presolve)
    solution = chain_simplified.decode(instance, model) if res.status.has_solution else None
    info = {"c": c, "num_candidates": len(model.simplified_subsets), "num_chains": None}
    result = _from_solve("milp:simplified", res, solution, start, info)
    if res.status.has_solution:
        info["num_chains"] = round(res.objective)
        result.objective = float(c * round(res.objective))
        result.bound = None if res.bound is None else float(c * res.bound)
    return _verified(result, instance)


__all__ = ["milp_bpca", "milp_bpca_time", "milp_cache", "milp_simplified"]
