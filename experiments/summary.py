"""Summaries of result rows for the terminal: mean ± std over seeds, per method and grid point."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.store import ResultStore
from serveplan.errors import InputError
from serveplan.paths import results_dir


@dataclass(frozen=True)
class LoadedResults:
    """Rows of one experiment with what its resolved config says about them."""

    name: str
    rows: pd.DataFrame
    axes: list[str]
    metrics: list[str]


def load_results(target: str | Path, results_root: Path | None = None) -> list[LoadedResults]:
    """Rows named by ``target``: a results folder, a results.csv/.parquet file, a config or an experiment name."""
    root = results_root or results_dir()
    p = Path(target)
    if p.suffix == ".toml":
        from experiments.config import experiments_of, load_config
        from experiments.runner import load_rows

        out = []
        for exp in experiments_of(load_config(p)):
            out.append(LoadedResults(exp.name, load_rows(exp, root), exp.axes, list(exp.metrics)))
        return out
    if p.is_file() and p.suffix in (".csv", ".parquet"):
        rows = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
        return [_with_resolved(p.parent.name, rows, ResultStore(p.parent).resolved())]
    if not p.is_dir() and (root / str(target)).is_dir():
        p = root / str(target)
    if not p.is_dir():
        raise InputError(
            "no results found", field="RESULTS", value=str(target), hint="give a results folder, a CSV or a config"
        )
    store = ResultStore(p)
    if store.cases_dir.exists() or store.csv_path.exists():
        return [_with_resolved(p.name, store.load(), store.resolved())]
    # A folder of experiment folders (e.g. results/): every experiment in it.
    subs = [d for d in sorted(p.iterdir()) if (d / "cases").is_dir()]
    if not subs:
        raise InputError("no results found", field="RESULTS", value=str(target))
    return [_with_resolved(d.name, ResultStore(d).load(), ResultStore(d).resolved()) for d in subs]


def _with_resolved(name: str, rows: pd.DataFrame, resolved: dict | None) -> LoadedResults:
    axes: list[str] = []
    metrics: list[str] = []
    if resolved:
        grid = resolved.get("grid", {})
        axes = [*grid.get("product", {}), *grid.get("zip", {})]
        metrics = list(resolved.get("experiment", {}).get("metrics", []))
    return LoadedResults(name, rows, axes, metrics)


def _fmt(mean: float, std: float, n: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if n <= 1 or std is None or math.isnan(std):
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {std:.2g}"


def summary_table(res: LoadedResults, metrics: list[str] | None = None, by: list[str] | None = None) -> pd.DataFrame:
    """One line per (method label, grid point): cases, errors, and mean ± std over seeds of each metric."""
    rows = res.rows
    if rows.empty:
        return pd.DataFrame()
    by = by or ["label", *[a for a in res.axes if a in rows]]
    for col in by:
        if col not in rows:
            raise InputError("no such column to group by", field="--by", value=col, hint=f"columns: {list(rows)}")
    if metrics is None:
        metrics = [m for m in res.metrics if m in rows] + ["objective", "method_wall_s"]
        metrics = [m for m in dict.fromkeys(metrics) if m in rows]
    for m in metrics:
        if m not in rows:
            raise InputError("no such metric", field="--metrics", value=m, hint=f"columns: {list(rows)}")
    keyed = rows.copy()
    for col in by:  # lists and NaN as hashable group keys
        keyed[col] = keyed[col].map(lambda v: json.dumps(v) if isinstance(v, list | dict) else v).fillna("-")
    ok = keyed["status"] != "error" if "status" in keyed else pd.Series(True, index=keyed.index)
    lines = []
    for key, group in keyed.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        line = dict(zip(by, key, strict=True))
        good = group[ok.loc[group.index]]
        line["cases"] = len(group)
        line["errors"] = int(len(group) - len(good))
        if "verified" in good:
            line["verified"] = f"{int(good['verified'].astype(bool).sum())}/{len(good)}"
        for m in metrics:
            v = pd.to_numeric(good[m], errors="coerce").dropna()
            line[m] = _fmt(float(v.mean()) if len(v) else np.nan, float(v.std()) if len(v) > 1 else np.nan, len(v))
        lines.append(line)
    return pd.DataFrame(lines)


def render(frame: pd.DataFrame) -> str:
    """A plain-text table (no index)."""
    if frame.empty:
        return "(no rows)"
    return frame.to_string(index=False)


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub Markdown table of ``frame`` (floats to ``digits`` significant digits)."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "-" if math.isnan(v) else ("inf" if math.isinf(v) else f"{v:.{digits}g}")
        return str(v)

    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
