"""AlpaServe Fig. 5 on measured latencies: replication vs model parallelism, modelled V100 and measured H200.

Mean and P99 latency vs total rate for 8 x BERT-2.6B on 8 GPUs: the analytic V100 model
(``alpaserve_mp_rate``) next to serveplan's measured H200 table (``alpaserve_mp_rate_h200``), each rate axis
in requests/s (the H200 rates are about 10 x the V100 ones, the ratio of their single-request latencies).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures._common import ok_rows, plt, save_figure
from paper_figures.alpaserve_e2e import line_panel

NAME = "alpaserve_mp_rate_h200"
CONFIGS = [
    "experiments/configs/alpaserve_mp_rate.toml",
    "experiments/configs/alpaserve_mp_rate_h200.toml",
]
PANELS = [
    ("alpaserve_mp_rate", "latency_mean_s", "V100, analytic model: mean"),
    ("alpaserve_mp_rate", "latency_p99_s", "V100, analytic model: P99"),
    ("alpaserve_mp_rate_h200", "latency_mean_s", "H200, measured table: mean"),
    ("alpaserve_mp_rate_h200", "latency_p99_s", "H200, measured table: P99"),
]


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Four panels: mean and P99 latency vs total rate, per GPU (log latency axis)."""
    rows = ok_rows(rows)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.0 * len(PANELS), 2.8), squeeze=False)
    data = []
    for ax, (exp, metric, title) in zip(axes[0], PANELS, strict=True):
        sub = rows[rows["experiment"] == exp] if len(rows) else rows
        if len(sub) and "rate" in sub:
            data.append(line_panel(ax, sub, "rate", metric, title).assign(experiment=exp))
            ax.set_yscale("log")
    drawn = [ax for ax in axes[0] if ax.get_lines()]
    if drawn:
        drawn[0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME, pd.concat(data, ignore_index=True) if data else pd.DataFrame())
