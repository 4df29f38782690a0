"""``serveplan solve chain``: run one registered method on one chain instance file.

Prints the placement table, the chains with their service times T_k and capacities c_k, the verification
status, the objective (sum_k c_k), the bound and gap (exact methods), and Theorem 3.7's response-time bounds;
``--json`` prints the same as one JSON object. Exit status: 0 when the independent verifier accepts the solution
(whatever the method reported), 1 when the method found none (infeasible is a result; the reason is printed) or
verification failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from serveplan.chain.bounds import solution_bound_metrics
from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import ChainSolution, residual_slots, service_time_s
from serveplan.chain.simulate_cli import register_simulate
from serveplan.chain.verify import verify
from serveplan.commands.options import add_budget_arguments, add_option_argument, budget_from_args
from serveplan.registry import MethodResult, run_method

__all__ = ["register_simulate", "register_solve"]


def register_solve(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``chain`` parser under ``serveplan solve``."""
    p = subparsers.add_parser(
        "chain",
        help="server chain composition: block placement + cache allocation",
        description="Solve a server-chain instance (JSON, docs/schemas/chain_instance.schema.json) with one method.",
    )
    p.add_argument("--instance", required=True, metavar="FILE", help="instance JSON file")
    p.add_argument("--method", default="gbp_cr+gca", help="method name (see `serveplan methods chain`)")
    add_budget_arguments(p)
    add_option_argument(p, help="method option, repeatable (e.g. -o c=7 -o last_server=truncate)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--save", metavar="FILE", help="also write the solution and report as JSON to FILE")
    p.set_defaults(func=run_solve)


def _finite(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def report_dict(instance: ChainInstance, result: MethodResult) -> dict[str, Any]:
    """The JSON report of one solve."""
    out: dict[str, Any] = {
        "instance": instance.name,
        "method": result.method,
        "status": result.status,
        "objective": result.objective,
        "bound": result.bound,
        "gap": result.gap,
        "verified": result.verified,
        "violations": result.violations,
        "wall_s": result.wall_s,
        "info": {k: _finite(v) for k, v in result.info.items()},
    }
    sol = result.solution
    if isinstance(sol, ChainSolution):
        out["verify"] = verify(instance, sol).to_dict()
        out["bounds"] = {k: _finite(v) for k, v in solution_bound_metrics(instance, sol).items()}
        out["solution"] = sol.to_dict()
        out["solution"]["service_times_s"] = [service_time_s(instance, ch) for ch in sol.chains]
    if result.solve is not None:
        out["solve"] = result.solve
    return out


def _print_text(instance: ChainInstance, result: MethodResult) -> None:
    print(
        f"instance  {instance.name or '(unnamed)'}: J={instance.num_servers}, L={instance.num_blocks}, "
        f"lambda={instance.arrival_rate:g}/s, rho_bar={instance.target_load:g}, "
        f"target rate {instance.required_rate:.6g}/s"
    )
    print(f"method    {result.method}: {result.status} in {result.wall_s:.3f} s")
    sol = result.solution
    if not isinstance(sol, ChainSolution):
        reason = result.info.get("reason") or (result.solve or {}).get("message") or "no solution found"
        print(f"no solution: {reason}")
        return
    report = verify(instance, sol)
    slots = residual_slots(instance, sol.placement)
    print("\nplacement (blocks a..a+m-1; slots = cache slots left after blocks)")
    print(f"  {'#':>4} {'server':<24} {'mem_gb':>8} {'tau_c_s':>9} {'tau_p_s':>9} {'blocks':>9} {'slots':>6}")
    for j, s in enumerate(instance.servers):
        a, m = sol.placement.first_block[j], sol.placement.num_blocks[j]
        blocks = f"{a}..{a + m - 1}" if m else "-"
        print(
            f"  {j:>4} {s.name[:24]:<24} {s.memory_gb:>8.3g} {s.comm_time_s:>9.4g} {s.compute_time_s:>9.4g} "
            f"{blocks:>9} {int(slots[j]) if m else '':>6}"
        )
    print(f"\nchains ({len(sol.chains)}; servers:blocks processed)")
    print(f"  {'k':>4} {'T_k_s':>9} {'c_k':>5}  path")
    for k, (ch, c) in enumerate(zip(sol.chains, sol.capacities, strict=True)):
        path = " -> ".join(f"{j}:{b}" for j, b in zip(ch.servers, ch.blocks, strict=True))
        print(f"  {k:>4} {service_time_s(instance, ch):>9.4g} {c:>5}  {path}")
    print(f"\nverified  {report.status}" + ("" if report.ok else f" (failed: {', '.join(report.failed_checks)})"))
    for v in report.violations:
        print(f"  {v}")
    objective = f"{result.objective:g}" if result.objective is not None else "none reported"
    print(f"objective {objective} (method); sum c_k = {sol.total_capacity} job servers; total rate "
          f"{report.total_rate:.6g}/s vs target {report.required_rate:.6g}/s")  # fmt: skip
    if result.bound is not None:
        gap = f"{result.gap:.4g}" if result.gap is not None else "n/a"
        print(f"bound     {result.bound:g} (gap {gap})")
    else:
        print("bound     none (the method proves no bound on the optimum)")
    metrics = solution_bound_metrics(instance, sol)
    lo, hi = metrics["lower_response_s"], metrics["upper_response_s"]
    if math.isfinite(lo):
        print(f"response  Theorem 3.7 mean response time in [{lo:.6g}, {hi:.6g}] s")
    else:
        print("response  unstable under JFFC: lambda >= total service rate (Lemma 3.6)")
    extras = {k: result.info[k] for k in ("c", "K", "criterion") if k in result.info}
    if extras:
        print("info      " + ", ".join(f"{k}={v}" for k, v in extras.items()))


def run_solve(args: argparse.Namespace) -> int:
    """Handler of ``serveplan solve chain``."""
    instance = ChainInstance.load_json(args.instance)
    result = run_method("chain", args.method, instance, budget_from_args(args))
    report = report_dict(instance, result)
    if args.save:
        with open(args.save, "w") as fh:
            json.dump(report, fh, indent=2)
            fh.write("\n")
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_text(instance, result)
    # the exit status follows the independent verifier, whatever the method reported
    sol = result.solution
    return 0 if isinstance(sol, ChainSolution) and verify(instance, sol).ok else 1
