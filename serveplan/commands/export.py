"""``serveplan export``: write the MILP an exact method would solve, as MPS or LP, for external solvers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from serveplan.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand."""
    p = sub.add_parser(
        "export",
        help="write a method's MILP as MPS or LP (for Gurobi, CPLEX, SCIP, ... outside serveplan)",
        description="The model is exactly the one the method hands to its solver under the given options.",
    )
    p.add_argument("--problem", choices=("chain", "alpaserve"), help="default: the problem that has --method")
    p.add_argument("--method", required=True, help="an exact method, e.g. milp:bpca (see `serveplan methods`)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--instance", metavar="FILE", help="instance file of the problem")
    src.add_argument("--family", help="or build one from a registered instance family")
    p.add_argument("--params", default="{}", help="family parameters as JSON, e.g. '{\"J\": 6}'")
    p.add_argument("--seed", type=int, default=0, help="family seed (default 0)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="method option (repeatable)")
    p.add_argument("--format", choices=("mps", "lp"), help="file format (default: from --out's suffix)")
    p.add_argument("--out", type=Path, help="output file (default: <instance>_<method>.<format> here)")
    p.set_defaults(func=run)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values parsed as JSON where they parse (numbers, booleans), else strings."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError("expected KEY=VALUE", field="--option", value=pair)
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def problem_of_method(method: str) -> str:
    """The one problem that has a method called ``method`` (else an error asking for ``--problem``)."""
    from serveplan.errors import UnknownNameError
    from serveplan.registry import PROBLEMS, get_method

    found = []
    for problem in PROBLEMS:
        try:
            get_method(problem, method)
            found.append(problem)
        except UnknownNameError:
            continue
    if len(found) != 1:
        why = "several problems have" if found else "no problem has"
        raise InputError(f"{why} this method", field="--method", value=method, hint="give --problem chain|alpaserve")
    return found[0]


def run(args: argparse.Namespace) -> int:
    """Capture the method's MILP and write it."""
    from experiments.lp_io import capture_lp, load_instance, write_lp
    from serveplan.registry import get_family

    if args.problem is None:
        args.problem = problem_of_method(args.method)
    if args.instance:
        instance = load_instance(args.problem, args.instance)
    else:
        try:
            params = json.loads(args.params)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON: {exc}", field="--params", value=args.params) from None
        instance = get_family(args.problem, args.family).fn(params, args.seed)
    stem = Path(args.instance).stem if args.instance else f"{args.family}_s{args.seed}"
    out: Path = args.out or Path(f"{stem}_{args.method.replace(':', '_')}.{args.format or 'mps'}")
    fmt = args.format or out.suffix.lstrip(".")
    if fmt not in ("mps", "lp"):
        raise InputError("cannot tell the format", field="--out", value=str(out), hint="use --format mps|lp")
    if out.suffix != f".{fmt}":
        out = out.with_name(out.name + f".{fmt}")
    lp = capture_lp(args.problem, args.method, instance, parse_options(args.option))
    write_lp(lp, out)
    print(f"{out}: {lp.num_cols} variables ({int(lp.integer.sum())} integer), {lp.num_rows} constraints, "
          f"{'maximise' if lp.maximize else 'minimise'}")  # fmt: skip
    return 0
