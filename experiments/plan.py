"""Plans for a user's own setup: read their files, run the candidate methods and baselines, recommend one.

Input is one TOML file per setup (formats in docs/harness.md, examples in ``examples/plan_*``), or an
instance file of the problem. Every method runs in this process under the same budget, is verified, and
is measured by the problem's simulation evaluator; the recommendation is the best verified candidate
(heuristics and exact methods) by the problem's headline metric, with the baselines for comparison.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.config import MethodSpec, read_toml
from experiments.runner import error_message, solve_and_evaluate
from serveplan.errors import InputError
from serveplan.registry import MethodResult, get_method


@dataclass(frozen=True)
class PlanProfile:
    """What ``serveplan plan <problem>`` runs and how it ranks."""

    candidates: tuple[str, ...]
    baselines: tuple[str, ...]
    evaluator: str
    evaluator_params: dict[str, Any]
    metric: str
    maximize: bool
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)


PROFILES = {
    "chain": PlanProfile(
        candidates=("gbp_cr+gca", "milp:bpca", "gbp_cr"),
        # PETALS (``--baselines petals``) routes per request in the pure-Python path simulator: minutes
        # when its placement is overloaded, so it is not a default.
        baselines=("random", "jffc_only"),
        evaluator="simulate",
        evaluator_params={"num_requests": 10000},
        metric="mean_response_s",
        maximize=False,
        # Column generation scales past the sizes path enumeration can handle, with a proven bound.
        method_options={"milp:bpca": {"mode": "colgen"}},
    ),
    "alpaserve": PlanProfile(
        candidates=("search", "greedy", "milp:window"),
        baselines=("sr", "clockwork++:60", "round_robin"),
        evaluator="simulate",
        evaluator_params={},
        metric="attainment",
        maximize=True,
        method_options={"milp:window": {"max_windows": 8}},
    ),
}


# --------------------------------------------------------------------------------------------------
# Reading a user's setup.


def _setup(path: Path, tables: tuple[str, ...]) -> tuple[dict[str, Any], str]:
    """The plan TOML, with only ``name`` and ``tables`` at its top level, all tables present."""
    source = str(path)
    data = read_toml(path)
    _check_keys(data, ("name", *tables), "", source)
    for key in tables:
        if key not in data:
            raise InputError("missing table", source=source, field=key)
    return data, source


def _csv_rows(path: Path, required: tuple[str, ...], source: str, field_name: str) -> list[dict[str, str]]:
    if not path.exists():
        raise InputError("file not found", source=source, field=field_name, value=str(path))
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    if not rows:
        raise InputError("no rows", source=str(path))
    for col in required:
        if col not in rows[0]:
            raise InputError("missing column", source=str(path), field=col, hint=f"columns: {list(rows[0])}")
    return rows


def _number(value: Any, source: str, where: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError("expected a number", source=source, field=where, value=value) from None
    if not math.isfinite(x):
        raise InputError("expected a finite number", source=source, field=where, value=value)
    return x


def _check_keys(table: dict[str, Any], known: tuple[str, ...], where: str, source: str) -> None:
    import difflib

    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
            raise InputError("unknown key", source=source, field=f"{where}.{key}" if where else key, hint=hint)


def _trace_rate(path: Path, source: str) -> float:
    rows = _csv_rows(path, ("arrival_s",), source, "workload.trace")
    times = sorted(_number(r["arrival_s"], str(path), "arrival_s") for r in rows)
    span = times[-1] - times[0]
    if len(times) < 2 or span <= 0:
        raise InputError("a trace needs at least two distinct arrival times", source=str(path))
    return (len(times) - 1) / span


def read_chain_setup(path: Path) -> Any:
    """A :class:`~serveplan.chain.instance.ChainInstance` from a plan TOML (or an instance JSON).

    ``[model]`` gives the three numbers (``num_blocks``, ``block_memory_gb``, ``cache_memory_gb``), or names a
    shipped model spec (``spec = "llama2_70b"``, data/chain_models/) whose numbers serve as defaults, with
    ``profile_reading`` (``paper``, ``author_code`` or ``measured``) for per-block compute times. Each server
    row gives ``memory_gb`` and ``compute_time_s``, or a ``gpu`` type (data/gpu_types/) from which both
    follow: the GPU's memory, and tau^p from the spec and the GPU in the chosen reading.
    """
    from serveplan.chain.instance import ChainInstance

    if path.suffix == ".json":
        return ChainInstance.load_json(path)
    data, source = _setup(path, ("model", "servers", "workload"))
    model, servers, workload = data["model"], data["servers"], data["workload"]
    _check_keys(model, ("num_blocks", "block_memory_gb", "cache_memory_gb", "spec", "profile_reading"), "model", source)
    _check_keys(servers, ("file",), "servers", source)
    _check_keys(workload, ("rate", "trace", "target_load"), "workload", source)
    if "file" not in servers:
        raise InputError("missing key", source=source, field="servers.file")
    spec, reading = _chain_spec(model, source)
    if spec is not None:
        model = {
            "num_blocks": spec.num_blocks,
            "block_memory_gb": spec.block_memory_gb,
            "cache_memory_gb": spec.cache_memory_gb,
        } | {k: v for k, v in model.items() if k not in ("spec", "profile_reading")}
    server_file = path.parent / servers["file"]
    server_rows = _csv_rows(server_file, ("name", "comm_time_s"), source, "servers.file")
    if ("rate" in workload) == ("trace" in workload):
        raise InputError("give exactly one of rate and trace", source=source, field="workload")
    rate = (
        _number(workload["rate"], source, "workload.rate")
        if "rate" in workload
        else _trace_rate(path.parent / workload["trace"], source)
    )
    d = {
        "name": str(data.get("name", path.stem)),
        "num_blocks": model.get("num_blocks"),
        "block_memory_gb": model.get("block_memory_gb"),
        "cache_memory_gb": model.get("cache_memory_gb"),
        "arrival_rate": rate,
        "target_load": workload.get("target_load", 0.7),
        "servers": [_chain_server(r, i, spec, reading, str(server_file)) for i, r in enumerate(server_rows)],
    }
    return ChainInstance.from_dict(d, source=source)


def _chain_spec(model: dict[str, Any], source: str) -> tuple[Any, str]:
    """The named model spec (or None) and the profile reading of a chain setup's ``[model]`` table."""
    from serveplan.chain.builders import PROFILE_READINGS, load_model_spec

    reading = str(model.get("profile_reading", "paper"))
    if reading not in PROFILE_READINGS:
        hint = f"choose one of {', '.join(PROFILE_READINGS)}"
        raise InputError("unknown reading", source=source, field="model.profile_reading", value=reading, hint=hint)
    if "spec" not in model:
        return None, reading
    try:
        return load_model_spec(str(model["spec"])), reading
    except InputError as exc:
        raise exc.relabel(source=source, field="model.spec") from None


def _chain_server(row: dict[str, str], i: int, spec: Any, reading: str, source: str) -> dict[str, Any]:
    """One server of a chain setup: from its ``gpu`` type, or from explicit ``memory_gb`` and ``compute_time_s``."""
    from serveplan.chain.builders import load_gpu_type, per_block_compute_time_s

    out: dict[str, Any] = {
        "name": row["name"],
        "comm_time_s": _number(row["comm_time_s"], source, f"servers[{i}].comm_time_s"),
    }
    gpu_name = (row.get("gpu") or "").strip()
    if gpu_name:
        if spec is None:
            hint = 'name a model spec in [model] (spec = "llama2_70b") to derive compute times from GPU types'
            raise InputError("a gpu column needs model.spec", source=source, field=f"servers[{i}].gpu", hint=hint)
        try:
            gpu = load_gpu_type(gpu_name)
            tau = per_block_compute_time_s(spec, gpu, profile_reading=reading)
        except InputError as exc:
            raise exc.relabel(source=source, field=f"servers[{i}].gpu", value=gpu_name) from None
        explicit = (row.get("memory_gb") or "").strip()
        out["memory_gb"] = _number(explicit, source, f"servers[{i}].memory_gb") if explicit else gpu.memory_gb
        out["compute_time_s"] = tau
        return out
    for col in ("memory_gb", "compute_time_s"):
        if not (row.get(col) or "").strip():
            raise InputError(
                "give a gpu type, or memory_gb and compute_time_s", source=source, field=f"servers[{i}].{col}"
            )
        out[col] = _number(row[col], source, f"servers[{i}].{col}")
    return out


def read_alpaserve_setup(path: Path) -> Any:
    """An :class:`~serveplan.alpaserve.instance.AlpaInstance` from a plan TOML (or an instance JSON)."""
    from serveplan.alpaserve.instance import AlpaInstance
    from serveplan.workloads.arrivals import TEST_STREAM, TRAIN_STREAM, gamma_workload

    if path.suffix == ".json":
        return AlpaInstance.load(path)
    data, source = _setup(path, ("cluster", "models", "workload"))
    models_t, workload = data["models"], data["workload"]
    _check_keys(models_t, ("file", "slo_scale"), "models", source)
    _check_keys(workload, ("trace", "cv", "duration_s", "seed"), "workload", source)
    if "file" not in models_t:
        raise InputError("missing key", source=source, field="models.file")
    models_path = path.parent / models_t["file"]
    rows = _csv_rows(models_path, ("name",), source, "models.file")
    names: list[str] = []
    rates: list[float] = []
    slos: list[float] = []
    for i, r in enumerate(rows):
        count = int(_number(r.get("count") or 1, str(models_path), f"rows[{i}].count"))
        names.extend([r["name"].strip()] * count)
        if "trace" not in workload:
            if not r.get("rate"):
                raise InputError(
                    "missing rate (or give workload.trace)", source=str(models_path), field=f"rows[{i}].rate"
                )
            rates.extend([_number(r["rate"], str(models_path), f"rows[{i}].rate")] * count)
        if r.get("slo_s"):
            slos.extend([_number(r["slo_s"], str(models_path), f"rows[{i}].slo_s")] * count)
    d: dict[str, Any] = {"name": str(data.get("name", path.stem)), "cluster": data["cluster"], "models": names}
    if slos:
        if len(slos) != len(names):
            raise InputError("give slo_s for every model or none", source=str(models_path), field="slo_s")
        d["slo_s"] = slos
    else:
        d["slo_scale"] = float(models_t.get("slo_scale", 5.0))
    if "trace" in workload:
        # A recorded trace: plan and evaluate on it (the evaluation is then in-sample).
        d["train"] = {"file": workload["trace"]}
        return AlpaInstance.from_dict(d, source=source, base_dir=path.parent)
    cv = _number(workload.get("cv", 1.0), source, "workload.cv")
    duration = _number(workload.get("duration_s", 300.0), source, "workload.duration_s")
    seed = int(workload.get("seed", 0))
    base = AlpaInstance.from_dict(d | {"train": {"spec": "gamma:rate=1,duration=1"}}, source=source)
    train = gamma_workload(rates, cv, duration, seed, stream=TRAIN_STREAM)
    test = gamma_workload(rates, cv, duration, seed, stream=TEST_STREAM)
    return base.with_workloads(train, test)


READERS = {"chain": read_chain_setup, "alpaserve": read_alpaserve_setup}


# --------------------------------------------------------------------------------------------------
# Running and ranking.


@dataclass
class PlanOutcome:
    """Every method's row and result, and which one is recommended."""

    problem: str
    table: pd.DataFrame
    results: dict[str, MethodResult | None]
    recommended: str | None
    metric: str


def _registered(problem: str, names: tuple[str, ...]) -> list[str]:
    """The default methods that this installation has (a user's explicit names are checked strictly)."""
    from serveplan.errors import UnknownNameError

    out = []
    for name in names:
        try:
            get_method(problem, name)
            out.append(name)
        except UnknownNameError:
            continue
    return out


def make_plan(
    problem: str,
    instance: Any,
    *,
    methods: list[str] | None = None,
    baselines: list[str] | None = None,
    time_limit_s: float = 30.0,
    threads: int = 1,
    backend: str = "highs",
    seed: int = 0,
) -> PlanOutcome:
    """Run candidates and baselines on ``instance``; recommend the best verified candidate."""
    profile = PROFILES[problem]
    cands = list(methods) if methods else _registered(problem, profile.candidates)
    bases = list(baselines) if baselines is not None else _registered(problem, profile.baselines)
    rows, results = [], {}
    for role, names in (("candidate", cands), ("baseline", bases)):
        for name in names:
            get_method(problem, name)  # unknown names fail here, with a suggestion
            spec = MethodSpec(name, name, backend, time_limit_s, threads, None, profile.method_options.get(name, {}))
            row: dict[str, Any] = {"method": name, "role": role}
            try:
                result, cells = solve_and_evaluate(
                    problem, instance, spec, seed, profile.evaluator, profile.evaluator_params
                )
                results[name] = result
                row |= cells
            except Exception as exc:
                results[name] = None
                row |= {"status": "error", "verified": False, "message": error_message(exc)}
            rows.append(row)
    table = pd.DataFrame(rows)
    metric = profile.metric
    ok = table[(table["role"] == "candidate") & (table["verified"] == True)]  # noqa: E712
    recommended = None
    if metric in ok and ok[metric].notna().any():
        values = pd.to_numeric(ok[metric], errors="coerce")
        recommended = str(ok.loc[values.idxmax() if profile.maximize else values.idxmin(), "method"])
    return PlanOutcome(problem, table, results, recommended, metric)


def describe_solution(problem: str, instance: Any, solution: Any) -> list[str]:
    """Readable lines for a solution: per-server blocks and chains (chain), groups and models (alpaserve)."""
    if solution is None:
        return ["(no solution)"]
    d = solution.to_dict() if hasattr(solution, "to_dict") else {"solution": str(solution)}
    lines = []
    if problem == "chain" and "placement" in d:
        names = [s.name for s in instance.servers]
        first, count = d["placement"]["first_block"], d["placement"]["num_blocks"]
        for j, (a, m) in enumerate(zip(first, count, strict=True)):
            if m:
                lines.append(f"server {names[j]:<16} blocks {a}..{a + m - 1}")
        for ch in d["chains"]:
            path = " -> ".join(names[j] for j in ch["servers"])
            lines.append(f"chain capacity {ch['capacity']:>3}: {path}")
    elif problem == "alpaserve" and "groups" in d:
        models = [m.name for m in instance.models]
        for i, g in enumerate(d["groups"]):
            served = ", ".join(f"{k}:{models[k]}" for k in g["models"]) or "(idle)"
            lines.append(f"group {i}: pp={g['pp']} op={g['op']} ({g['pp'] * g['op']} GPUs) serves {served}")
        sources = instance.latency_sources(solution)
        lines.append(f"latencies ({instance.latency.gpu}): {' and '.join(sources) or 'none hosted'}")
    else:
        lines.append(json.dumps(d, default=str)[:2000])
    return lines


def plot_plan(outcome: PlanOutcome, out_dir: Path) -> list[Path]:
    """Bar chart of the headline metric per method, the recommendation highlighted."""
    from paper_figures._common import plt, save_figure

    t = outcome.table
    data = t[["method", "role", "status", outcome.metric]] if outcome.metric in t else t[["method", "role", "status"]]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if outcome.metric in t:
        values = pd.to_numeric(t[outcome.metric], errors="coerce").fillna(0.0)
        colors = ["C2" if m == outcome.recommended else ("C0" if r == "candidate" else "C7")
                  for m, r in zip(t["method"], t["role"], strict=True)]  # fmt: skip
        ax.bar(t["method"], values, color=colors)
        ax.set_ylabel(outcome.metric)
    ax.set_title(f"{outcome.problem} plan: recommended {outcome.recommended} (green); baselines grey", fontsize=9)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    return save_figure(
        fig, out_dir, f"plan_{outcome.problem}", data.assign(recommended=t["method"] == outcome.recommended)
    )
