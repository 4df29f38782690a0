"""GBP-CR vs 100 random feasible placements: box plot of the surrogate c K(c) (equal and heterogeneous memory)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures._common import ok_rows, plt, save_figure

NAME = "chain_gbp_cr_random"
CONFIGS = ["experiments/configs/chain_gbp_cr_random.toml"]


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    rows = ok_rows(rows).copy()
    rows["objective"] = pd.to_numeric(rows["objective"], errors="coerce")
    etas = sorted(rows["eta"].unique())
    fig, axes = plt.subplots(1, len(etas), figsize=(4 * len(etas), 3.2), squeeze=False)
    data = []
    for ax, eta in zip(axes[0], etas, strict=True):
        sub = rows[rows["eta"] == eta]
        rand = sub[sub["label"] == "random"]["objective"].dropna()
        gbp = sub[sub["label"] == "GBP-CR"]["objective"].dropna()
        ax.boxplot([rand.to_numpy()], tick_labels=["100 random"], widths=0.5)
        if len(gbp):
            ax.axhline(gbp.iloc[0], color="C3", label=f"GBP-CR = {gbp.iloc[0]:g}")
        ax.set_title(f"eta = {eta:g} ({'equal' if eta == 0 else 'heterogeneous'} memory)", fontsize=9)
        ax.set_ylabel("c K(c) (job servers)")
        ax.legend(fontsize=8)
        data.append(
            {
                "eta": eta,
                "gbp_cr": float(gbp.iloc[0]) if len(gbp) else float("nan"),
                "random_min": float(rand.min()),
                "random_median": float(rand.median()),
                "random_max": float(rand.max()),
                "random_n": len(rand),
                "gbp_cr_le_best_random": bool(len(gbp) and gbp.iloc[0] <= rand.min()),
            }
        )
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME, pd.DataFrame(data))
