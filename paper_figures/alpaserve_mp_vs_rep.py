"""AlpaServe Figs. 5, 6, 7(a): model parallelism vs replication for 8 x BERT-2.6B on 8 GPUs.

Mean and P99 latency vs total rate (Fig. 5) and vs CV (Fig. 6); SLO attainment vs SLO scale (Fig. 7a).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures._common import ok_rows, plt, save_figure
from paper_figures.alpaserve_e2e import line_panel

NAME = "alpaserve_mp_vs_rep"
CONFIGS = [
    "experiments/configs/alpaserve_mp_rate.toml",
    "experiments/configs/alpaserve_mp_cv.toml",
    "experiments/configs/alpaserve_mp_slo.toml",
]
PANELS = [
    ("alpaserve_mp_rate", "rate", "latency_mean_s", "Fig. 5: mean latency"),
    ("alpaserve_mp_rate", "rate", "latency_p99_s", "Fig. 5: P99 latency"),
    ("alpaserve_mp_cv", "cv", "latency_mean_s", "Fig. 6: mean latency"),
    ("alpaserve_mp_cv", "cv", "latency_p99_s", "Fig. 6: P99 latency"),
    ("alpaserve_mp_slo", "slo_scale", "attainment", "Fig. 7a: SLO attainment"),
]


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    rows = ok_rows(rows)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.0 * len(PANELS), 2.8), squeeze=False)
    data = []
    for ax, (exp, x, metric, title) in zip(axes[0], PANELS, strict=True):
        sub = rows[rows["experiment"] == exp] if len(rows) else rows
        if len(sub) and x in sub:
            data.append(line_panel(ax, sub, x, metric, title))
            if metric.startswith("latency"):
                ax.set_yscale("log")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME, pd.concat(data, ignore_index=True) if data else pd.DataFrame())
