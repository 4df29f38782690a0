"""Quickstart: each problem's methods side by side (headline metric and solve time, mean ± std over seeds)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures._common import ok_rows, plt, save_figure, summarise

NAME = "quickstart"
CONFIGS = ["experiments/configs/quickstart.toml"]

# The headline metric of each quickstart experiment: the first of these present in its rows.
HEADLINE = {
    "quickstart_chain": ["sim_mean_response_s", "mean_response_s", "upper_response_s", "objective"],
    "quickstart_alpaserve": ["attainment", "slo_attainment", "objective"],
}


def _headline(experiment: str, rows: pd.DataFrame) -> str:
    for metric in [*HEADLINE.get(experiment, []), "objective"]:
        if metric in rows and pd.to_numeric(rows[metric], errors="coerce").notna().any():
            return metric
    return "objective"


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    rows = ok_rows(rows)
    experiments = list(dict.fromkeys(rows["experiment"]))
    fig, axes = plt.subplots(len(experiments), 2, figsize=(9, 3.2 * len(experiments)), squeeze=False)
    plotted = []
    for i, exp in enumerate(experiments):
        sub = rows[rows["experiment"] == exp]
        metric = _headline(exp, sub)
        for j, (col, title) in enumerate(((metric, f"{metric} (mean ± std)"), ("method_wall_s", "time (s, mean)"))):
            stats = summarise(sub, ["label"], col)
            ax = axes[i][j]
            if col == "method_wall_s":
                # Log scale: plain means (an error bar below zero cannot be drawn on it).
                ax.bar(stats["label"], stats["mean"], color=f"C{j}")
                if len(stats) and (stats["mean"] > 0).all():
                    ax.set_yscale("log")
            else:
                ax.bar(stats["label"], stats["mean"], yerr=stats["std"], capsize=3, color=f"C{j}")
            ax.set_title(f"{exp}: {title}", fontsize=9)
            ax.tick_params(axis="x", labelrotation=30, labelsize=8)
            plotted.append(stats.assign(experiment=exp, metric=col))
    fig.tight_layout()
    data = pd.concat(plotted, ignore_index=True) if plotted else pd.DataFrame()
    return save_figure(fig, out_dir, NAME, data)
