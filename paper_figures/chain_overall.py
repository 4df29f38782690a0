"""Overall comparison: mean response time of proposed, PETALS and BPRR vs J (per eta) and vs eta (per J)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures._common import ok_rows, plt, save_figure, summarise

NAME = "chain_overall"
CONFIGS = ["experiments/configs/chain_overall.toml"]
METHODS = ["proposed", "PETALS", "BPRR"]


def _panel(ax, stats: pd.DataFrame, fixed: str, value: float, x: str, title: str) -> None:
    """Mean response time (log scale) of each method against ``x`` at ``fixed = value``."""
    for k, m in enumerate(m for m in METHODS if m in set(stats["label"])):
        s = stats[(stats["label"] == m) & (stats[fixed] == value)].sort_values(x)
        ax.errorbar(s[x], s["mean"], yerr=s["std"], marker="os^"[k], capsize=2, label=m)
    ax.set_title(title, fontsize=9)
    ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel("mean response time (s)")


def plot(rows: pd.DataFrame, out_dir: Path, name: str = NAME) -> list[Path]:
    rows = ok_rows(rows)
    stats = summarise(rows, ["label", "J", "eta"], "mean_response_s")
    etas = sorted(stats["eta"].unique())
    js = sorted(stats["J"].unique())
    fig, axes = plt.subplots(2, max(len(etas), len(js)), figsize=(3.2 * max(len(etas), len(js)), 6), squeeze=False)
    for i, eta in enumerate(etas):
        _panel(axes[0][i], stats, "eta", eta, "J", f"eta = {eta:g}")
    for i, J in enumerate(js):
        _panel(axes[1][i], stats, "J", J, "eta", f"J = {J}")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    wide = stats.pivot_table(index=["J", "eta"], columns="label", values="mean").reset_index()
    for m in ("PETALS", "BPRR"):
        if m in wide and "proposed" in wide:
            wide[f"reduction_vs_{m}"] = 1 - wide["proposed"] / wide[m]
    return save_figure(fig, out_dir, name, wide)
