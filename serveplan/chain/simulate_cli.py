"""``serveplan simulate chain``: run a method on an instance file and simulate its solution.

Exposes :func:`register_simulate` for ``serveplan/chain/cli.py``. The simulation is the ``simulate`` evaluator
of :mod:`serveplan.chain.experiments_serving` (JFFC or another policy over the method's chains, or the
baseline's own per-request routing), so every evaluator parameter is available as a flag. Prints the response,
waiting and service statistics (``--json``: one JSON object) and can write the per-request records as CSV.
Exit status: 0 on success, 1 when the method found no solution, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import numpy as np

from serveplan.chain.instance import ChainInstance
from serveplan.commands.options import add_option_argument, parse_options
from serveplan.registry import Budget, run_method


def register_simulate(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``chain`` parser under ``serveplan simulate``."""
    p = subparsers.add_parser(
        "chain",
        help="simulate chain serving of a method's solution (JFFC or a baseline's routing)",
        description="Run a method on a chain instance (JSON) and simulate serving with its solution.",
    )
    p.add_argument("--instance", required=True, metavar="FILE", help="instance JSON file")
    p.add_argument("--method", default="gbp_cr+gca", help="method (see `serveplan methods chain`)")
    add_option_argument(p)
    p.add_argument("--policy", default="jffc", help="jffc, sa_jsq, jiq, jsq or sed (chain solutions)")
    p.add_argument("--arrivals", default="poisson", choices=("poisson", "trace"))
    p.add_argument("--trace", default="code", choices=("code", "conv"), help="Azure LLM 2023 trace")
    p.add_argument("--trace-requests", type=int, default=1000, metavar="N")
    p.add_argument("--sizes", default="exp", choices=("exp", "tokens"), help="Exp(1) sizes or token model")
    p.add_argument("--model", default="bloom_176b", help="model spec for the token model")
    p.add_argument("--num-requests", type=int, default=10_000, metavar="N", help="Poisson arrivals")
    p.add_argument("--load", type=float, default=None, help="set lambda = LOAD x total rate of the solution")
    p.add_argument("--lambda", dest="arrival_rate", type=float, default=None, help="override lambda (jobs/s)")
    p.add_argument("--warmup", type=float, default=None, help="fraction of requests dropped (default 0.1 Poisson)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--records", metavar="CSV", help="write per-request arrival, start, finish, chain")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    """Handler of ``serveplan simulate chain``."""
    import heuristics.chain_baselines_methods  # noqa: F401  (registers the baselines)
    from serveplan.chain.experiments_serving import simulate_solution, summarise_records

    instance = ChainInstance.load_json(args.instance)
    result = run_method("chain", args.method, instance, Budget(seed=args.seed, options=parse_options(args.option)))
    if result.solution is None:
        print(f"{args.method}: no solution ({result.status}); {result.info.get('reason', '')}", file=sys.stderr)
        return 1
    params: dict[str, Any] = {
        "policy": args.policy,
        "arrivals": args.arrivals,
        "trace": args.trace,
        "trace_requests": args.trace_requests,
        "sizes": args.sizes,
        "model": args.model,
        "num_requests": args.num_requests,
    }
    for key, value in (("load", args.load), ("lambda", args.arrival_rate), ("warmup", args.warmup)):
        if value is not None:
            params[key] = value
    res, extras = simulate_solution(instance, result, params, args.seed)
    metrics = summarise_records(res, extras)
    if args.records:
        rows = np.column_stack([res.arrival_s, res.start_s, res.finish_s, res.chain])
        np.savetxt(
            args.records,
            rows,
            delimiter=",",
            header="arrival_s,start_s,finish_s,chain",
            comments="",
            fmt=["%.9g", "%.9g", "%.9g", "%d"],
        )
    out = {
        "method": args.method,
        "policy": res.policy,
        **{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()},
    }
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(
            f"{args.method} / {res.policy}: {int(metrics['sim_requests'])} requests at lambda = "
            f"{metrics['sim_lambda']:.4g}/s"
        )
        for what in ("response", "waiting"):
            print(
                f"  {what:8s} mean {metrics[f'mean_{what}_s']:.4g} s  median {metrics[f'median_{what}_s']:.4g}"
                f"  P95 {metrics[f'p95_{what}_s']:.4g}  P99 {metrics[f'p99_{what}_s']:.4g}"
            )
        print(
            f"  service  mean {metrics['mean_service_s']:.4g} s  median {metrics['median_service_s']:.4g}"
            f"  P95 {metrics['p95_service_s']:.4g}"
        )
        if "lower_response_s" in metrics:
            print(
                f"  Theorem 3.7 bounds on mean response: [{metrics['lower_response_s']:.4g}, "
                f"{metrics['upper_response_s']:.4g}] s at load {metrics['load']:.3g}"
            )
    return 0
