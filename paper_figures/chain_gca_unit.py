"""GCA unit test: job servers needed by GCA vs c K(c), the lower bound and the optimal ILP, over load."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures._common import ok_rows, plt, save_figure, summarise

NAME = "chain_gca_unit"
CONFIGS = ["experiments/configs/chain_gca_unit.toml"]
CURVES = {
    "cK_job_servers": "c K(c) (GBP-CR only)",
    "gca_job_servers": "GCA",
    "ilp_job_servers": "optimal ILP over GCA's chains",
    "lower_bound_job_servers": "lower bound ceil(lambda/(rho mu_1))",
}


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    rows = ok_rows(rows)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    frames = []
    for i, (col, label) in enumerate(CURVES.items()):
        s = summarise(rows, ["evaluator.load_fraction"], col)
        if s.empty:
            continue
        x = 100 * s["evaluator.load_fraction"].astype(float)
        ax.errorbar(x, s["mean"], yerr=s["std"], marker="os^v"[i], capsize=2, label=label)
        frames.append(s.assign(metric=col))
    ax.set_xlabel("lambda / rho_bar as % of GCA's total rate")
    ax.set_ylabel("job servers")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME, pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())
