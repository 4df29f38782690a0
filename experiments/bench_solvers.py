"""Solver benchmarks: the same MILPs through every backend, a process each, same limits and threads.

A suite (``experiments/bench_suites/<name>.toml``) lists instance families x sizes x seeds and the exact
method whose MILP to take from each (obtained with :func:`experiments.lp_io.capture_lp`, so it is the
model that method solves). Extra MPS/LP files join as instances. Every (instance, backend) pair is
solved by :func:`serveplan.solvers.subprocess_runner.solve_lp_in_subprocess` under the suite's time
limit (hard kill at 1.5 x limit + 5 s) and thread budget.

Outputs: ``runs.csv`` (one row per instance and backend: status, objective, bound, final gap, wall
time, time to optimality), ``gap_curves.csv`` and ``gap_over_time.{png,pdf}`` (gap at each checkpoint,
obtained by **re-solving** from scratch with the checkpoint as time limit: backend-neutral, no
callbacks; once a backend proves optimality at a checkpoint, later checkpoints are 0 without a
re-solve), and ``performance_profile.{png,pdf}`` (Dolan and Moré 2002: the fraction of instances a
backend solves to optimality within tau times the fastest backend's time).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.config import (
    Key,
    check_table,
    nonempty_str,
    positive_int,
    positive_number,
    problem_name,
    read_toml,
    seed_list,
    str_list,
    text_str,
    toml_table,
)
from experiments.lp_io import capture_lp, read_lp
from serveplan.errors import InputError
from serveplan.paths import REPO_ROOT
from serveplan.solvers import LinearProblem

SUITES_DIR = REPO_ROOT / "experiments" / "bench_suites"


def _checkpoints(v: Any) -> tuple[float, ...]:
    if not isinstance(v, list) or not all(isinstance(x, int | float) and not isinstance(x, bool) and x > 0 for x in v):
        raise ValueError("expected a list of positive numbers (seconds)")
    return tuple(sorted(float(x) for x in v))


def _sizes(v: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(v, list) or not v or not all(isinstance(x, dict) for x in v):
        raise ValueError("expected a non-empty list of parameter tables, e.g. [{J = 4}, {J = 6}]")
    return tuple(dict(x) for x in v)


SUITE_KEYS = {
    "name": Key(nonempty_str, True),
    "description": Key(text_str),
    "time_limit_s": Key(positive_number),
    "threads": Key(positive_int),
    "backends": Key(str_list),
    "seeds": Key(seed_list),
    "gap_checkpoints_s": Key(_checkpoints),
}
INSTANCE_KEYS = {
    "problem": Key(problem_name, True),
    "family": Key(nonempty_str, True),
    "method": Key(nonempty_str, True),
    "params": Key(toml_table),
    "options": Key(toml_table),
    "sizes": Key(_sizes),
}


@dataclass(frozen=True)
class BenchSuite:
    """A validated solver-benchmark suite."""

    name: str
    description: str
    source: str
    time_limit_s: float
    threads: int
    backends: tuple[str, ...]
    seeds: tuple[int, ...]
    gap_checkpoints_s: tuple[float, ...]
    instances: tuple[dict[str, Any], ...]


def suite_path(name: str) -> Path:
    """A suite by name (``experiments/bench_suites/<name>.toml``) or by path."""
    p = Path(name)
    if p.suffix == ".toml" and p.exists():
        return p
    candidate = SUITES_DIR / f"{name}.toml"
    if candidate.exists():
        return candidate
    import difflib

    known = sorted(f.stem for f in SUITES_DIR.glob("*.toml"))
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"known suites: {', '.join(known) or 'none'}"
    raise InputError("unknown benchmark suite", field="--suite", value=name, hint=hint)


def load_suite(name: str) -> BenchSuite:
    """Read and validate a suite (unknown keys rejected with suggestions, like experiment configs)."""
    path = suite_path(name)
    source = str(path)
    data = read_toml(path)
    top = check_table(data, {"suite": Key(toml_table, True), "instances": Key(lambda v: v)}, "", source)
    suite = check_table(top["suite"], SUITE_KEYS, "suite", source)
    raw = top.get("instances", [])
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise InputError("expected [[instances]] tables", source=source, field="instances")
    instances = []
    for i, entry in enumerate(raw):
        inst = check_table(entry, INSTANCE_KEYS, f"instances[{i}]", source)
        instances.append(inst)
    return BenchSuite(
        name=suite["name"],
        description=suite.get("description", ""),
        source=source,
        time_limit_s=suite.get("time_limit_s", 60.0),
        threads=suite.get("threads", 1),
        backends=suite.get("backends", ("highs",)),
        seeds=suite.get("seeds", (0,)),
        gap_checkpoints_s=suite.get("gap_checkpoints_s", ()),
        instances=tuple(instances),
    )


@dataclass
class BenchInstance:
    """One MILP of the benchmark and where it came from."""

    name: str
    lp: LinearProblem | None
    origin: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def build_instances(suite: BenchSuite, mps_files: list[str] | None = None) -> list[BenchInstance]:
    """Every MILP of the suite (family x size x seed, captured from the method) plus the given files."""
    from serveplan.registry import get_family

    out: list[BenchInstance] = []
    for spec in suite.instances:
        family = get_family(spec["problem"], spec["family"])
        for size in spec.get("sizes", ({},)):
            params = dict(spec.get("params", {})) | size
            for seed in suite.seeds:
                label = ",".join(f"{k}={v}" for k, v in size.items())
                name = f"{spec['problem']}/{spec['family']}[{label}]/{spec['method']}/s{seed}"
                origin = {"problem": spec["problem"], "family": spec["family"], "method": spec["method"],
                          "params": params, "seed": seed}  # fmt: skip
                try:
                    instance = family.fn(params, seed)
                    lp = capture_lp(spec["problem"], spec["method"], instance, spec.get("options"))
                    out.append(BenchInstance(name, lp, origin))
                except InputError as exc:
                    out.append(BenchInstance(name, None, origin, f"{exc}"))
    for f in mps_files or []:
        out.append(BenchInstance(Path(f).name, read_lp(f), {"file": str(f)}))
    return out


def _time_to_opt(status: str, wall_s: float) -> float:
    return wall_s if status == "optimal" else math.inf


def run_suite(
    suite: BenchSuite,
    *,
    backends: list[str] | None = None,
    time_limit_s: float | None = None,
    threads: int | None = None,
    mps_files: list[str] | None = None,
    out_dir: Path,
    log=print,
) -> pd.DataFrame:
    """Solve every instance with every backend; write runs.csv, gap curves and the profile plots.

    Returns
    -------
    DataFrame
        One row per (instance, backend).
    """
    from serveplan.solvers import available_backends
    from serveplan.solvers.subprocess_runner import solve_lp_in_subprocess

    limit = time_limit_s or suite.time_limit_s
    nthreads = threads or suite.threads
    wanted = list(backends or suite.backends)
    have = set(available_backends())
    for b in wanted:
        if b not in have:
            log(f"skipping backend {b}: not available here (serveplan solvers says how to install it)")
    wanted = [b for b in wanted if b in have]
    if not wanted:
        raise InputError("no available backend to benchmark", field="--backends")
    instances = build_instances(suite, mps_files)
    checkpoints = [t for t in suite.gap_checkpoints_s if t < limit]
    rows, curves = [], []
    for inst in instances:
        if inst.lp is None:
            log(f"skipping {inst.name}: {inst.error}")
            continue
        inst_rows: list[dict[str, Any]] = []
        for backend in wanted:
            res, x = solve_lp_in_subprocess(inst.lp, backend, time_limit_s=limit, threads=nthreads)
            status = str(res.status)
            row = {
                "instance": inst.name,
                "backend": backend,
                "solver_version": res.solver_version,
                "status": status,
                "objective": res.objective,
                "bound": res.bound,
                "gap": res.gap,
                "wall_s": res.wall_s,
                "time_to_opt_s": _time_to_opt(status, res.wall_s),
                "time_limit_s": limit,
                "threads": nthreads,
                "num_vars": inst.lp.num_cols,
                "num_constraints": inst.lp.num_rows,
                "num_integer": int(inst.lp.integer.sum()),
                "message": "" if status != "error" else res.message.splitlines()[0] if res.message else "",
                "origin": json.dumps(inst.origin, sort_keys=True, default=str),
                "max_violation": inst.lp.max_violation(x) if x is not None else None,
            }
            rows.append(row)
            inst_rows.append(row)
            log(f"{inst.name:<48} {backend:<14} {status:<20} {res.wall_s:8.2f} s  gap {_fmt_gap(res.gap)}")
            solved_at = res.wall_s if status == "optimal" else math.inf
            for t in checkpoints:
                if t >= solved_at:
                    curves.append({"instance": inst.name, "backend": backend, "time_s": t, "gap": 0.0})
                    continue
                r, _ = solve_lp_in_subprocess(inst.lp, backend, time_limit_s=t, threads=nthreads)
                if str(r.status) == "optimal":
                    solved_at = min(solved_at, r.wall_s)
                curves.append({"instance": inst.name, "backend": backend, "time_s": t, "gap": _curve_gap(r)})
            curves.append({"instance": inst.name, "backend": backend, "time_s": limit, "gap": _curve_gap(res)})
        for warning in check_claims(inst_rows, inst.lp.maximize):
            log(f"WARNING {inst.name}: {warning}")
        wrong = {r["backend"] for r in inst_rows if r["status"] == "wrong_optimum"}
        for c in curves:
            if c["instance"] == inst.name and c["backend"] in wrong:
                c["gap"] = 1.0
    table = pd.DataFrame(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "runs.csv", index=False)
    curve_frame = pd.DataFrame(curves)
    curve_frame.to_csv(out_dir / "gap_curves.csv", index=False)
    if not table.empty:
        plot_performance_profile(table, out_dir)
        plot_gap_over_time(curve_frame, out_dir)
    return table


def check_claims(rows: list[dict[str, Any]], maximize: bool, tol: float = 1e-6) -> list[str]:
    """Mark claimed optima that another backend's incumbent beats (status ``wrong_optimum``).

    The evidence is an incumbent that satisfies every row, bound and integrality within ``tol``
    (checked on the vector the backend returned) and is strictly better than the claimed optimum.
    Such a claim is not counted as solved (time to optimality inf). Returns one message per claim.
    """
    witnesses = [
        r for r in rows
        if r["objective"] is not None and r.get("max_violation") is not None and r["max_violation"] <= tol
    ]  # fmt: skip
    if not witnesses:
        return []
    best = (max if maximize else min)(witnesses, key=lambda r: r["objective"])
    messages = []
    for r in rows:
        if r["status"] != "optimal" or r["objective"] is None:
            continue
        slack = tol * max(1.0, abs(best["objective"]))
        beaten = best["objective"] > r["objective"] + slack if maximize else best["objective"] < r["objective"] - slack
        if beaten:
            r["status"] = "wrong_optimum"
            r["time_to_opt_s"] = math.inf
            r["gap"] = None  # unknown: the claimed bound is wrong too
            r["message"] = (
                f"claimed optimum {r['objective']:.6g}; {best['backend']} found a feasible {best['objective']:.6g}"
            )
            messages.append(f"{r['backend']} {r['message']}")
    return messages


def _fmt_gap(gap: float | None) -> str:
    return "-" if gap is None else f"{gap:.2e}"


def _curve_gap(res) -> float:
    """Gap for the curves: 0 when optimal, 1 (100 %) without an incumbent or bound."""
    if str(res.status) == "optimal":
        return 0.0
    if res.gap is None or not math.isfinite(res.gap):
        return 1.0
    return min(float(res.gap), 1.0)


def performance_profile(table: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Dolan-Moré profile of time to optimality.

    Returns
    -------
    taus : ndarray
        Ratios at which the profile is evaluated (1 and every observed ratio).
    rho : dict of backend -> ndarray
        Fraction of instances the backend solves within ``tau`` times the best backend's time.
    """
    pivot = table.pivot_table(index="instance", columns="backend", values="time_to_opt_s", aggfunc="min")
    best = pivot.min(axis=1).replace(0.0, 1e-9)
    ratios = pivot.divide(best, axis=0)
    finite = ratios.to_numpy()[np.isfinite(ratios.to_numpy())]
    taus = np.unique(np.concatenate([[1.0], finite, [max(finite.max(initial=1.0) * 2, 2.0)]]))
    n = len(pivot)
    rho = {b: np.array([(ratios[b] <= t).sum() / n for t in taus]) for b in pivot.columns}
    return taus, rho


def plot_performance_profile(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``performance_profile.{png,pdf,csv}``."""
    from paper_figures._common import plt, save_figure

    taus, rho = performance_profile(table)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for b, r in rho.items():
        ax.step(taus, r, where="post", label=b)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tau (time / best time)")
    ax.set_ylabel("fraction solved to optimality")
    ax.set_ylim(0, 1.05)
    ax.legend()
    ax.set_title("Performance profile (Dolan-Moré)", fontsize=9)
    data = pd.DataFrame({"tau": taus} | {b: r for b, r in rho.items()})
    return save_figure(fig, out_dir, "performance_profile", data)


def plot_gap_over_time(curves: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``gap_over_time.{png,pdf,csv}``: mean gap over instances at each checkpoint, per backend."""
    from paper_figures._common import plt, save_figure

    fig, ax = plt.subplots(figsize=(5, 3.5))
    data = curves.groupby(["backend", "time_s"], as_index=False)["gap"].mean() if not curves.empty else curves
    for b, sub in data.groupby("backend") if not data.empty else []:
        ax.plot(sub["time_s"], sub["gap"], marker="o", label=b)
    ax.set_xlabel("time limit (s)")
    ax.set_ylabel("mean relative gap (1 = none)")
    ax.set_title("Gap over time (re-solved at each limit)", fontsize=9)
    if not data.empty:
        ax.legend()
    return save_figure(fig, out_dir, "gap_over_time", data)


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per backend: instances, optima (proven; wrong), errors, shifted geometric mean time, mean final gap.

    Time: the solver's wall time for proven optima, the time limit otherwise (shift 1 s). Gap: 0 for
    proven optima, the final gap capped at 1 otherwise, 1 when unknown (no incumbent or bound, or a
    wrong optimum claim).
    """
    out = []
    for b, sub in table.groupby("backend", sort=False):
        solved = (sub["status"] == "optimal").to_numpy()
        t = np.where(solved, sub["wall_s"].to_numpy(float), sub["time_limit_s"].to_numpy(float))
        sgm = float(np.exp(np.mean(np.log(t + 1.0))) - 1.0)
        gaps = pd.to_numeric(sub["gap"], errors="coerce").fillna(1.0).clip(upper=1.0)
        gaps[sub["status"] == "wrong_optimum"] = 1.0
        gaps[sub["status"] == "optimal"] = 0.0
        out.append({"backend": b, "instances": len(sub), "optimal": int((sub["status"] == "optimal").sum()),
                    "wrong_optimum": int((sub["status"] == "wrong_optimum").sum()),
                    "errors": int((sub["status"] == "error").sum()), "sgm_time_s": round(sgm, 3),
                    "mean_gap": float(gaps.mean())})  # fmt: skip
    frame = pd.DataFrame(out)
    if not frame.empty:
        frame["time_ratio_vs_best"] = (frame["sgm_time_s"] + 1.0) / (frame["sgm_time_s"].min() + 1.0)
    return frame
