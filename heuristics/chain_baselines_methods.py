"""Registry entries for the chain-serving baselines: ``petals``, ``bprr`` (``bprr:R``) and ``jffc_only``.

``petals`` (PETALS' swarm: block counts, lexicographic block selection in join order, rebalancing)
    Options (``budget.options``): ``cache_tokens`` (4096), ``max_length`` (2048), ``autograd_gb`` (2.147),
    ``low_perf_block_cap`` (None), ``selection`` ("lexicographic" or "sum"), ``rebalance`` (True),
    ``alloc_penalty_s``, ``mean_output_tokens`` (20). ``budget.seed`` draws the join order.
``bprr`` / ``bprr:R`` (CG-BP placement with concurrency target R)
    Options: ``R`` (default: the authors' estimate), ``retry_quantisation`` (False).
``jffc_only`` (whole model per server, JFFC over single-server chains).

PETALS and BPRR route each request at simulation time (``info["routing"]``); the ``simulate`` evaluator of
:mod:`serveplan.chain.experiments_serving` runs their routers.
"""

from __future__ import annotations

from heuristics.bprr import solve_bprr
from heuristics.jffc_only import solve_jffc_only
from heuristics.petals import solve_petals
from serveplan.registry import register

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
