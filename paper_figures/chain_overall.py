"""Overall comparison: mean response time of proposed, PETALS and BPRR vs J (per eta) and vs eta (per J)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures._common import ok_rows, plt, save_figure, summarise

NAME = "chain_overall"
CONFIGS = ["experiments/configs/chain_overall.toml"]
METHODS = ["proposed", "PETALS", "BPRR"]


def plot(rows: pd.DataFrame, out_dir: Path, name: str = NAME) -> list[Path]:
    rows = ok_rows(rows)
    stats = summarise(rows, ["label", "J", "eta"], "mean_response_s")
    etas = sorted(stats["eta"].unique())
    js = sorted(stats["J"].unique())
    fig, axes = plt.subplots(2, max(len(etas), len(js)), figsize=(3.2 * max(len(etas), len(js)), 6), squeeze=False)
    for i, eta in enumerate(etas):
        ax = axes[0][i]
        for k, m in enumerate(m for m in METHODS if m in set(stats["label"])):
            s = stats[(stats["label"] == m) & (stats["eta"] == eta)].sort_values("J")
            ax.errorbar(s["J"], s["mean"], yerr=s["std"], marker="os^"[k], capsize=2, label=m)
        ax.set_title(f"eta = {eta:g}", fontsize=9)
        ax.set_yscale("log")
        ax.set_xlabel("J")
        ax.set_ylabel("mean response time (s)")
    for i, J in enumerate(js):
        ax = axes[1][i]
        for k, m in enumerate(m for m in METHODS if m in set(stats["label"])):
            s = stats[(stats["label"] == m) & (stats["J"] == J)].sort_values("eta")
            ax.errorbar(s["eta"], s["mean"], yerr=s["std"], marker="os^"[k], capsize=2, label=m)
        ax.set_title(f"J = {J}", fontsize=9)
        ax.set_yscale("log")
        ax.set_xlabel("eta")
        ax.set_ylabel("mean response time (s)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    wide = stats.pivot_table(index=["J", "eta"], columns="label", values="mean").reset_index()
    for m in ("PETALS", "BPRR"):
        if m in wide and "proposed" in wide:
            wide[f"reduction_vs_{m}"] = 1 - wide["proposed"] / wide[m]
    return save_figure(fig, out_dir, name, wide)
