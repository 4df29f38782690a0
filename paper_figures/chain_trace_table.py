"""Table 1 (trace-driven): response, waiting and service statistics of PETALS, BPRR, JFFC-only and proposed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures._common import ok_rows, plt, save_figure

NAME = "chain_trace_table"
CONFIGS = ["experiments/configs/chain_trace_table.toml"]
METHODS = ["PETALS", "BPRR", "JFFC only", "proposed", "proposed (tuned c)"]
METRICS = [
    "mean_response_s", "median_response_s", "p95_response_s", "p99_response_s",
    "mean_waiting_s", "median_waiting_s", "p95_waiting_s", "p99_waiting_s", "max_waiting_s",
    "mean_service_s", "median_service_s", "p95_service_s", "min_service_s", "max_service_s",
]  # fmt: skip


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of every metric, one column per method, per hop overhead."""
    rows = ok_rows(rows)
    out = []
    for hop, sub in rows.groupby("evaluator.hop_overhead_s"):
        for metric in METRICS:
            rec = {"hop_overhead_s": hop, "metric": metric}
            for m in METHODS:
                rec[m] = pd.to_numeric(sub[sub["label"] == m][metric], errors="coerce").mean()
            out.append(rec)
        mean = {m: out[-len(METRICS)][m] for m in METHODS}
        rec = {"hop_overhead_s": hop, "metric": "mean_response_reduction_vs_PETALS"}
        rec |= {m: 1 - mean[m] / mean["PETALS"] for m in METHODS}
        out.append(rec)
    return pd.DataFrame(out)


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    data = table(rows)
    hops = sorted(data["hop_overhead_s"].unique())
    fig, axes = plt.subplots(1, len(hops), figsize=(5 * len(hops), 3.4), squeeze=False)
    for ax, hop in zip(axes[0], hops, strict=True):
        sub = data[(data["hop_overhead_s"] == hop) & data["metric"].isin(METRICS[:5])].set_index("metric")
        sub[METHODS].plot.bar(ax=ax, logy=True)
        ax.set_title(f"Azure code trace, hop overhead {hop:g} s", fontsize=9)
        ax.set_ylabel("seconds")
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME, data)
