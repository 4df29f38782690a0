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
TRIM = "GBP-CR+GCA trimmed"


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
    if f"objective|{TRIM}" in wide:
        wide["surrogate_gap_trimmed"] = wide[f"objective|{TRIM}"] / wide[f"objective|{EXACT}"] - 1
    for label, col in ((HEUR, "response_gap"), (TRIM, "response_gap_trimmed")):
        if f"mean_response_s|{EXACT}" in wide and f"mean_response_s|{label}" in wide:
            wide[col] = wide[f"mean_response_s|{label}"] / wide[f"mean_response_s|{EXACT}"] - 1
    return wide


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    data = gaps(rows)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    if not data.empty:
        cols = ["surrogate_gap_trimmed", "surrogate_gap", "response_gap_trimmed", "response_gap"]
        for i, col in enumerate(c for c in cols if c in data):
            g = data.groupby("J")[col].agg(["mean", "max"]).reset_index()
            ax.bar(g["J"] + (i - 1.5) * 0.2, 100 * g["mean"], width=0.2, label=f"{col} (mean; - = max)")
            ax.plot(g["J"] + (i - 1.5) * 0.2, 100 * g["max"], "k_", markersize=8)
    ax.set_xlabel("J (servers)")
    ax.set_ylabel("gap of GBP-CR+GCA vs optimum (%)")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME, data if not data.empty else pd.DataFrame({"note": [np.nan]}))
