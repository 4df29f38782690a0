"""Registry entries for the chain-serving baselines: ``petals``, ``bprr`` (``bprr:R``) and ``jffc_only``.

``petals`` (PETALS' swarm: block counts, lexicographic block selection in join order, rebalancing)
    Options (``budget.options``): ``cache_tokens`` (4096), ``max_length`` (2048), ``autograd_gb`` (2.147),
    ``low_perf_block_cap`` (None), ``selection`` ("lexicographic" or "sum"), ``rebalance`` (True),
    ``alloc_penalty_s``, ``mean_output_tokens`` (20). ``budget.seed`` draws the join order.
``bprr`` / ``bprr:R`` (CG-BP placement with concurrency target R)
    Options: ``R`` (default: the authors' estimate), ``retry_quantisation`` (False).
``jffc_only`` (whole model per server, JFFC over single-server chains).
``milp:bprr`` (BPRR's joint placement and routing MILP, :mod:`formulations.chain_bprr`; tiny instances)
    Options: ``R`` (concurrent requests, default 2). The solution's chains are the distinct routes, each with
    capacity = the number of requests routed on it; objective = their total service time.

PETALS and BPRR route each request at simulation time (``info["routing"]``); the ``simulate`` evaluator of
:mod:`serveplan.chain.experiments_serving` runs their routers.
"""

from __future__ import annotations

import time

from formulations.chain_bprr import solve_bprr_milp
from heuristics.bprr import solve_bprr
from heuristics.jffc_only import solve_jffc_only
from heuristics.petals import solve_petals
from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import ChainSolution
from serveplan.chain.verify import verify
from serveplan.errors import InputError
from serveplan.registry import Budget, MethodResult, register

register("chain", "petals", kind="baseline", summary="PETALS swarm placement (lexicographic selection, rebalancing)")(
    solve_petals
)
register(
    "chain",
    "bprr",
    kind="baseline",
    summary="BPRR: CG-BP placement with concurrency target R, WS-RR routing",
    param="R",
)(solve_bprr)
register("chain", "jffc_only", kind="baseline", summary="whole model per server, JFFC over single-server chains")(
    solve_jffc_only
)


@register("chain", "milp:bprr", kind="exact", summary="BPRR joint placement and routing MILP (R concurrent requests)")
def solve_bprr_milp_method(instance: ChainInstance, budget: Budget, param: str | None = None) -> MethodResult:
    """Solve BPRR's MILP for ``options.R`` requests; chains = distinct routes with their request counts."""
    t0 = time.perf_counter()
    try:
        R = int(budget.options.get("R", 2))
    except (TypeError, ValueError):
        raise InputError("must be an integer", field="options.R", value=budget.options.get("R")) from None
    out = solve_bprr_milp(instance, R, backend=budget.backend, time_limit_s=budget.time_limit_s, threads=budget.threads)
    res = out.solve
    if out.placement is None:
        return MethodResult(
            "milp:bprr", str(res.status), None, None, wall_s=time.perf_counter() - t0, solve=res.to_dict()
        )
    counts: dict = {}
    for route in out.routes:
        counts[route] = counts.get(route, 0) + 1
    solution = ChainSolution(out.placement, tuple(counts), tuple(counts.values()))
    report = verify(instance, solution)
    violations = [v for v in report.violations if not v.startswith("rate")]
    return MethodResult(
        method="milp:bprr",
        status=str(res.status),
        solution=solution,
        objective=out.objective,
        bound=res.bound,
        gap=res.gap,
        verified=not violations,
        violations=violations,
        wall_s=time.perf_counter() - t0,
        solve=res.to_dict(),
        info={"R": R, "verify_status": report.status},
    )
