"""c* vs lambda: the c minimising the surrogate, each Theorem 3.7 bound, and the simulated mean response time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures._common import ok_rows, plt, save_figure
from paper_figures.chain_c_sweep import CURVES, curves

NAME = "chain_c_star"
CONFIGS = ["experiments/configs/chain_c_star.toml"]


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    rows = ok_rows(rows)
    data = curves(rows, ["lambda"]).dropna(subset=["mean"])
    best = data.loc[data.groupby(["metric", "lambda"])["mean"].idxmin()]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for col, (label, style) in CURVES.items():
        s = best[best["metric"] == col].sort_values("lambda")
        ax.plot(s["lambda"].astype(float), s["options.c"].astype(int), style, label=label)
    ax.set_xlabel("arrival rate lambda (jobs/s)")
    ax.set_ylabel("c*")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = best[["metric", "lambda", "options.c", "mean"]].rename(columns={"options.c": "c_star", "mean": "value"})
    return save_figure(fig, out_dir, NAME, out)
