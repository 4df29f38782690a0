"""``serveplan simulate alpaserve`` and ``serveplan solve alpaserve``.

``serveplan simulate alpaserve --instance FILE --placement FILE [--workload FILE|SPEC|train|test] [--json]
[--requests-out FILE]``
    Verifies the placement, simulates it on the workload (default: the instance's test workload) and
    prints SLO attainment (overall, per model), latency mean/P90/P99 and requests per group.
    ``--workload`` takes a ``.npz``/``.csv`` file, a spec such as
    ``gamma:rate=20,cv=4,duration=200,seed=1`` (see :mod:`serveplan.workloads.spec`), or the
    words ``train``/``test``.
``serveplan solve alpaserve --instance FILE --method NAME [--save PLACEMENT.json] [--json]``
    Runs a registered placement method and scores its placement with the simulator on the test workload.

Exit status: 0 on success with a verified placement, 1 when the placement fails verification or the
method found none, 2 on bad input (one-line error).

Placement JSON (docs/alpaserve.md "Placement files")::

    {"groups": [{"pp": 2, "op": 1, "models": [0, 1, 2]}, {"pp": 1, "op": 1, "models": [3]}]}

or, time-varying (Clockwork++), ``{"start_times_s": [0, 60], "placements": [{"groups": ...}, ...]}``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from serveplan.alpaserve.cluster import Placement, TimeVaryingPlacement, load_placement, save_placement
from serveplan.alpaserve.instance import AlpaInstance
from serveplan.alpaserve.simulator import SimResult, Simulator
from serveplan.alpaserve.verify import verify
from serveplan.commands.options import add_budget_arguments, add_option_argument, budget_from_args
from serveplan.errors import InputError
from serveplan.workloads.spec import workload_from_spec
from serveplan.workloads.workload import Workload


def _sim_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fixed-overhead", type=float, default=0.011, metavar="S", help="per-request overhead (0.011)")
    p.add_argument("--stage-penalty", type=float, default=0.009, help="stage latency x (1 + this x stages) (0.009)")
    p.add_argument("--dispatch", choices=["earliest", "fewest_inflight"], default="earliest", help="replica choice")
    p.add_argument("--max-batch-size", type=int, default=1, metavar="B", help="dynamic batching bound (1 = off)")
    p.add_argument(
        "--warmup", type=float, default=0.0, metavar="S", help="trim S seconds at both ends from latency stats"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def register_simulate(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``alpaserve`` parser under ``serveplan simulate``."""
    p = subparsers.add_parser(
        "alpaserve",
        help="AlpaServe: simulate a model-parallel placement on a request trace",
        description="Simulate an AlpaServe placement (groups, pipeline stages, FCFS, SLO rejection).",
    )
    p.add_argument("--instance", required=True, metavar="FILE", help="instance JSON file")
    p.add_argument("--placement", required=True, metavar="FILE", help="placement JSON file")
    p.add_argument(
        "--workload",
        default="test",
        metavar="FILE|SPEC",
        help="workload .npz/.csv file, a spec like gamma:rate=20,cv=4,duration=200,seed=1, or train/test (default)",
    )
    p.add_argument(
        "--requests-out",
        metavar="FILE",
        help="write per-request arrival_s, model_id, finish_s (NaN = not served), good to a .npz or .csv file",
    )
    _sim_arguments(p)
    p.set_defaults(func=run_simulate)


def register_solve(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``alpaserve`` parser under ``serveplan solve``."""
    p = subparsers.add_parser(
        "alpaserve",
        help="AlpaServe: place models on device groups with model parallelism",
        description="Run one registered AlpaServe placement method; score the placement on the test workload.",
    )
    p.add_argument("--instance", required=True, metavar="FILE", help="instance JSON file")
    p.add_argument("--method", required=True, help="method name (see `serveplan methods alpaserve`)")
    add_budget_arguments(p)
    add_option_argument(p)
    p.add_argument("--save", metavar="FILE", help="write the placement JSON to FILE")
    _sim_arguments(p)
    p.set_defaults(func=run_solve)


def resolve_workload(text: str, instance: AlpaInstance) -> Workload:
    """``train``/``test``, an existing ``.npz``/``.csv`` file, or a workload spec."""
    if text in ("test", "train"):
        return instance.test if text == "test" else instance.train
    path = Path(text)
    if path.suffix in (".npz", ".csv") or path.exists():
        return Workload.load(path, num_models=instance.num_models)
    return workload_from_spec(text, instance.num_models)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "fixed_overhead_s": args.fixed_overhead,
        "stage_penalty": args.stage_penalty,
        "dispatch": args.dispatch,
        "max_batch_size": args.max_batch_size,
        "warmup_s": args.warmup,
    }


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def report(
    instance: AlpaInstance,
    placement: Placement | TimeVaryingPlacement,
    workload: Workload,
    res: SimResult,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """JSON-ready report of one simulation (with verification and notes on models that cannot score)."""
    opts = options or {}
    rep = verify(instance, placement)
    out = {
        "instance": instance.name,
        "workload": repr(workload),
        "verified": rep.ok,
        "violations": rep.violations,
        "num_gpus_used": placement.num_gpus,
        "num_gpus": instance.cluster.num_gpus,
        **res.summary(),
        "notes": instance.diagnose(
            fixed_overhead_s=opts.get("fixed_overhead_s", 0.011), stage_penalty=opts.get("stage_penalty", 0.009)
        ),
        "models": [m.name for m in instance.models],
        "slo_s": list(instance.slo_s),
        "latency_source": instance.latency_sources(placement),
    }
    return _clean(out)


def _print(out: dict[str, Any]) -> None:
    print(f"instance   {out['instance'] or '(unnamed)'}; workload {out['workload']}")
    print(f"placement  {out['num_gpus_used']} of {out['num_gpus']} GPUs; verified: {out['verified']}")
    for v in out["violations"]:
        print(f"  violation: {v}")
    print(f"latency    from {', '.join(out['latency_source']) or 'n/a'} profiles")
    for note in out.get("notes", []):
        print(f"  note: {note}")

    def fmt(x: Any, unit: str = "") -> str:
        return "n/a" if x is None else f"{x:.4g}{unit}"

    print(
        f"attainment {fmt(out['attainment'])} of {out['num_requests']} requests "
        f"(min per model {fmt(out['model_attainment_min'])})"
    )
    print(
        f"latency    mean {fmt(out['latency_mean_s'], ' s')}, P90 {fmt(out['latency_p90_s'], ' s')}, "
        f"P99 {fmt(out['latency_p99_s'], ' s')}"
    )
    print("per model  " + ", ".join(f"{i}:{fmt(a)}" for i, a in enumerate(out["model_attainment"])))
    print("per group  " + ", ".join(f"{i}:{n}" for i, n in enumerate(out["group_requests"])) + " requests")


def write_requests(path: str | Path, workload: Workload, res: SimResult) -> Path:
    """Per-request output as ``.npz`` or ``.csv`` (columns ``arrival_s,model_id,finish_s,good``)."""
    path = Path(path)
    if path.suffix == ".npz":
        np.savez_compressed(
            path, arrival_s=workload.arrival_s, model_id=workload.model_id, finish_s=res.finish_s, good=res.good
        )
    elif path.suffix == ".csv":
        cols = np.column_stack([workload.arrival_s, workload.model_id, res.finish_s, res.good])
        np.savetxt(
            path,
            cols,
            fmt=["%.9f", "%d", "%.9f", "%d"],
            delimiter=",",
            header="arrival_s,model_id,finish_s,good",
            comments="",
        )
    else:
        raise InputError("request output is .npz or .csv", field="--requests-out", value=str(path))
    return path


def run_simulate(args: argparse.Namespace) -> int:
    """Handler of ``serveplan simulate alpaserve``."""
    instance = AlpaInstance.load(args.instance)
    placement = load_placement(args.placement)
    workload = resolve_workload(args.workload, instance)
    res = Simulator(instance, workload, **_options(args)).run(placement)
    out = report(instance, placement, workload, res, _options(args))
    if args.requests_out:
        write_requests(args.requests_out, workload, res)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        _print(out)
    return 0 if out["verified"] else 1


def run_solve(args: argparse.Namespace) -> int:
    """Handler of ``serveplan solve alpaserve``."""
    from serveplan.registry import run_method

    instance = AlpaInstance.load(args.instance)
    result = run_method("alpaserve", args.method, instance, budget_from_args(args))
    out: dict[str, Any] = {
        "method": result.method,
        "status": result.status,
        "objective": result.objective,
        "bound": result.bound,
        "gap": result.gap,
        "wall_s": result.wall_s,
    }
    placement = result.solution
    if isinstance(placement, Placement | TimeVaryingPlacement):
        res = Simulator(instance, instance.test, **_options(args)).run(placement)
        out.update(report(instance, placement, instance.test, res, _options(args)))
        out["placement"] = placement.to_dict()
        if args.save:
            save_placement(placement, args.save)
    else:
        out.update({"verified": False, "violations": result.violations or ["no placement found"]})
    out = _clean(out)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"method     {out['method']}: {out['status']} in {out['wall_s']:.3f} s")
        if "attainment" in out:
            _print(out)
            pl = out["placement"]
            if "placements" in pl:
                print(f"placements {len(pl['placements'])}, switching at {pl['start_times_s']} s")
            else:
                print("groups     " + "; ".join(f"{g['pp']}x{g['op']}:{g['models']}" for g in pl["groups"]))
        else:
            print("no placement: " + "; ".join(out["violations"]))
    return 0 if out.get("verified") else 1
