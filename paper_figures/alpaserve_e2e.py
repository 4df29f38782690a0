"""AlpaServe Fig. 11: SLO attainment vs devices, rate scale, CV scale and SLO scale (S1, S2, S3 MAF-like; S1 Azure).

One row of panels per setting, one panel per swept axis (the others stay at the default point); the dotted
line marks 99 % attainment. Clockwork++ is an oracle (fitted to the test trace). Also provides the line-panel
helper the other AlpaServe figures use.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures._common import ok_rows, plt, save_figure, summarise

NAME = "alpaserve_e2e"
CONFIGS = [
    "experiments/configs/alpaserve_e2e_s1.toml",
    "experiments/configs/alpaserve_e2e_s2.toml",
    "experiments/configs/alpaserve_e2e_s3.toml",
    "experiments/configs/alpaserve_e2e_azure.toml",
    "experiments/configs/alpaserve_e2e_azure_s3.toml",
]
AXIS_LABEL = {
    "num_gpus": "#devices",
    "rate_scale": "rate scale",
    "time_scale": "rate scale (time compression)",
    "cv_scale": "CV scale",
    "slo_scale": "SLO scale",
    "rate": "rate (requests/s)",
    "cv": "CV",
}


def line_panel(ax, rows: pd.DataFrame, x: str, metric: str = "attainment", title: str = "") -> pd.DataFrame:
    """Plot ``metric`` against ``x``, one line per method label; return the data.

    Lines are means over seeds, with a band of +- one standard deviation where there are several seeds.
    """
    sub = rows.assign(**{x: pd.to_numeric(rows[x], errors="coerce")})
    stats = summarise(sub, ["label", x], metric)
    for label, g in stats.groupby("label", sort=False):
        g = g.sort_values(x)
        (line,) = ax.plot(g[x], g["mean"], marker="o", ms=3, label=label)
        if (g["n"] > 1).any():  # spread over seeds: mean +- one standard deviation
            ax.fill_between(g[x], g["mean"] - g["std"], g["mean"] + g["std"], color=line.get_color(), alpha=0.15, lw=0)
    if metric == "attainment":
        ax.axhline(0.99, color="grey", ls=":", lw=0.8)
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(AXIS_LABEL.get(x, x), fontsize=8)
    ax.set_ylabel(metric, fontsize=8)
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)
    return stats.rename(columns={x: "x"}).assign(axis=x, panel=title, metric=metric)


def sweep_grid(rows: pd.DataFrame, out_dir: Path, name: str, metric: str = "attainment") -> list[Path]:
    """One row of panels per experiment, one panel per value of the ``sweep`` column."""
    rows = ok_rows(rows)
    experiments = list(dict.fromkeys(rows["experiment"])) if len(rows) else []
    axes_per = {e: list(dict.fromkeys(rows.loc[rows["experiment"] == e, "sweep"])) for e in experiments}
    ncols = max((len(v) for v in axes_per.values()), default=1)
    fig, axes = plt.subplots(
        max(len(experiments), 1), ncols, figsize=(3.0 * ncols, 2.6 * max(len(experiments), 1)), squeeze=False
    )
    data = []
    for i, exp in enumerate(experiments):
        for j, axis in enumerate(axes_per[exp]):
            sub = rows[(rows["experiment"] == exp) & (rows["sweep"] == axis)]
            data.append(
                line_panel(axes[i][j], sub, axis, metric, f"{exp.replace('alpaserve_', '')}: {axis}").assign(
                    experiment=exp
                )
            )
        for j in range(len(axes_per[exp]), ncols):
            axes[i][j].axis("off")
    if experiments:
        axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir, name, pd.concat(data, ignore_index=True) if data else pd.DataFrame())


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    return sweep_grid(rows, out_dir, NAME)
