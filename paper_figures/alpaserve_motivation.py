"""AlpaServe Fig. 2: two BERT-6.7B models on two GPUs, simple placement vs model parallelism (mean/P90/P99 latency)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paper_figures._common import ok_rows, plt, save_figure, summarise

NAME = "alpaserve_motivation"
CONFIGS = ["experiments/configs/alpaserve_motivation.toml"]
METRICS = ("latency_mean_s", "latency_p90_s", "latency_p99_s")


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    rows = ok_rows(rows)
    cases = list(dict.fromkeys(rows["case"])) if len(rows) else []
    fig, axes = plt.subplots(1, max(len(cases), 1), figsize=(3.4 * max(len(cases), 1), 2.8), squeeze=False)
    data = []
    for ax, case in zip(axes[0], cases, strict=False):
        sub = rows[rows["case"] == case]
        labels = list(dict.fromkeys(sub["label"]))
        width = 0.8 / max(len(labels), 1)
        for k, label in enumerate(labels):
            vals = [summarise(sub[sub["label"] == label], ["label"], m)["mean"].mean() for m in METRICS]
            ax.bar(np.arange(len(METRICS)) + k * width, vals, width=width, label=label)
            data.append(pd.DataFrame({"case": case, "label": label, "metric": METRICS, "value": vals}))
        ax.set_xticks(np.arange(len(METRICS)) + width * (len(labels) - 1) / 2, ["mean", "P90", "P99"])
        ax.set_ylabel("latency (s)", fontsize=8)
        ax.set_title(case, fontsize=9)
    if cases:
        axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME, pd.concat(data, ignore_index=True) if data else pd.DataFrame())
