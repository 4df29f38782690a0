"""Optimality gap of GBP-CR + GCA against the exact BPCA optimum on small instances (surrogate and simulated)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paper_figures._common import ok_rows, plt, save_figure

NAME = "chain_exact_gap"
CONFIGS = ["experiments/configs/chain_exact_gap.toml"]
EXACT = "BPCA optimum"
HEUR = "GBP-CR+GCA"


def gaps(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (J, seed) where both methods found a solution: objectives, response times, gaps."""
    rows = ok_rows(rows)
    keep = ["J", "seed", "label", "status", "objective", "mean_response_s"]
    r = rows[[c for c in keep if c in rows]].copy()
    for c in ("objective", "mean_response_s"):
        r[c] = pd.to_numeric(r.get(c), errors="coerce")
    wide = r.pivot_table(index=["J", "seed"], columns="label", values=["objective", "mean_response_s"])
    wide.columns = [f"{a}|{b}" for a, b in wide.columns]
    wide = wide.reset_index()
    need = [f"objective|{EXACT}", f"objective|{HEUR}"]
    if not all(c in wide for c in need):
        return pd.DataFrame()
    wide = wide.dropna(subset=need)
    wide["surrogate_gap"] = wide[f"objective|{HEUR}"] / wide[f"objective|{EXACT}"] - 1
    if f"mean_response_s|{EXACT}" in wide and f"mean_response_s|{HEUR}" in wide:
        wide["response_gap"] = wide[f"mean_response_s|{HEUR}"] / wide[f"mean_response_s|{EXACT}"] - 1
    return wide


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    data = gaps(rows)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    if not data.empty:
        for i, col in enumerate(("surrogate_gap", "response_gap")):
            if col in data:
                g = data.groupby("J")[col].agg(["mean", "max"]).reset_index()
                ax.bar(g["J"] + (i - 0.5) * 0.35, 100 * g["mean"], width=0.35, label=f"{col} (mean)")
                ax.plot(g["J"] + (i - 0.5) * 0.35, 100 * g["max"], "k_", markersize=12)
    ax.set_xlabel("J (servers)")
    ax.set_ylabel("gap of GBP-CR+GCA vs optimum (%)")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME, data if not data.empty else pd.DataFrame({"note": [np.nan]}))
