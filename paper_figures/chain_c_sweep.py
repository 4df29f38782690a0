"""Mean response time vs the cache-reservation parameter c: surrogate c K(c)/lambda, Thm 3.7 bounds, simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paper_figures._common import ok_rows, plt, save_figure, summarise

NAME = "chain_c_sweep"
CONFIGS = ["experiments/configs/chain_c_sweep.toml"]
CURVES = {
    "surrogate_cK_s": ("surrogate c K(c) / lambda", "s--"),
    "lower_response_s": ("Thm 3.7 lower bound", "v-"),
    "upper_response_s": ("Thm 3.7 upper bound", "^-"),
    "mean_response_s": ("simulation (JFFC)", "o-"),
}


def curves(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean of each curve over seeds per ``by + [options.c]`` (infinite values dropped)."""
    frames = []
    for col in CURVES:
        r = rows.copy()
        r[col] = pd.to_numeric(r[col], errors="coerce").replace([np.inf, -np.inf], np.nan)
        s = summarise(r, [*by, "options.c"], col)
        frames.append(s.assign(metric=col))
    return pd.concat(frames, ignore_index=True)


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    rows = ok_rows(rows)
    data = curves(rows, [])
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for col, (label, style) in CURVES.items():
        s = data[data["metric"] == col]
        ax.plot(s["options.c"].astype(int), s["mean"], style, label=label)
        if len(s):
            best = s.loc[s["mean"].idxmin()]
            ax.plot([int(best["options.c"])], [best["mean"]], "k*", markersize=9)
    ax.set_xlabel("cache reservation c")
    ax.set_ylabel("mean response time (s)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME, data)
