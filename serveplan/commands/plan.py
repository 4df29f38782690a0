"""``serveplan plan chain|alpaserve SETUP``: a recommended placement for your own cluster, models and load."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``plan`` subcommand."""
    p = sub.add_parser(
        "plan",
        help="recommend a placement for your cluster, models and workload (compared with baselines)",
        description="SETUP is a plan TOML (see docs/harness.md, examples/plan_chain/ and examples/plan_alpaserve/) "
        "or an instance JSON of the problem.",
    )
    p.add_argument("problem", choices=("chain", "alpaserve"))
    p.add_argument("setup", type=Path, help="plan TOML or instance JSON")
    p.add_argument("--methods", nargs="+", metavar="M", help="candidate methods (default: the problem's)")
    p.add_argument("--baselines", nargs="*", metavar="M", help="baselines to compare with (default: the problem's)")
    p.add_argument("--time-limit", type=float, default=30.0, metavar="S", help="per-method limit (default 30 s)")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="solver threads (default 1)")
    p.add_argument("--backend", default="highs", help="MILP backend for exact methods (default highs)")
    p.add_argument("--seed", type=int, default=0, help="seed of methods and simulation (default 0)")
    p.add_argument("--out", type=Path, help="folder for plan.json and the plot (default: <results>/plan/<problem>)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Read the setup, run the methods, print the recommendation and the comparison, save plot and JSON."""
    from experiments.plan import READERS, describe_solution, make_plan, plot_plan
    from serveplan.paths import results_dir

    instance = READERS[args.problem](args.setup)
    outcome = make_plan(
        args.problem,
        instance,
        methods=args.methods,
        baselines=args.baselines,
        time_limit_s=args.time_limit,
        threads=args.threads,
        backend=args.backend,
        seed=args.seed,
    )
    t = outcome.table
    cols = [c for c in ("method", "role", "status", "verified", outcome.metric) if c in t]
    extra = {"chain": ["p95_response_s", "upper_response_s", "load"],
             "alpaserve": ["latency_p99_s", "model_attainment_min", "num_gpus_used"]}[args.problem]  # fmt: skip
    cols += [c for c in extra if c in t] + [c for c in ("method_wall_s", "message") if c in t]
    print(f"setup: {args.setup}")
    print(t[cols].to_string(index=False, max_colwidth=60))
    print()
    if outcome.recommended is None:
        print("no candidate produced a verified solution; see the messages above")
    else:
        best = t[t["method"] == outcome.recommended].iloc[0]
        print(f"recommended: {outcome.recommended} ({outcome.metric} = {best[outcome.metric]:.4g})")
        for line in describe_solution(args.problem, instance, outcome.results[outcome.recommended].solution):
            print(f"  {line}")
    out = args.out or results_dir() / "plan" / args.problem
    paths = plot_plan(outcome, out)
    sol = outcome.results.get(outcome.recommended) if outcome.recommended else None
    payload = {
        "setup": str(args.setup),
        "recommended": outcome.recommended,
        "metric": outcome.metric,
        "solution": sol.solution.to_dict() if sol is not None and hasattr(sol.solution, "to_dict") else None,
        "comparison": json.loads(t.to_json(orient="records")),
    }
    (out / "plan.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(f"\nsaved: {out / 'plan.json'}, {paths[0]}")
    return 0 if outcome.recommended else 1
