"""Optimality gap of the AlpaServe heuristics against the trace-exact MILP optimum on tiny instances.

For every (instance, seed) the MILP's simulated attainment (simulator rules: the best attainment over all
placements when the MILP status is ``optimal``) is the reference; each method's ratio attainment / optimum is
summarised (mean, minimum, how often it reaches the optimum). Instances whose MILP did not prove optimality are
left out and counted.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures._common import ok_rows, plt, save_figure

NAME = "alpaserve_gap"
CONFIGS = ["experiments/configs/alpaserve_gap.toml"]
OPT = "MILP optimum"


def gap_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per method: instances compared, mean and min attainment ratio, share at the optimum."""
    rows = ok_rows(rows).copy()
    if rows.empty:
        return pd.DataFrame()
    rows["attainment"] = pd.to_numeric(rows["attainment"], errors="coerce")
    key = [k for k in ("num_gpus", "slo_scale", "rate", "seed") if k in rows]
    opt = rows[(rows["label"] == OPT) & (rows["status"] == "optimal")][[*key, "attainment"]]
    opt = opt.rename(columns={"attainment": "optimum"})
    merged = rows.merge(opt, on=key)
    merged = merged[merged["optimum"] > 0]
    merged["ratio"] = merged["attainment"] / merged["optimum"]
    # the MILPs' own objective (requests within SLO) relative to the optimum's: the offline bound's slack
    merged["objective_ratio"] = pd.to_numeric(merged["objective"], errors="coerce") / (
        merged["optimum"] * pd.to_numeric(merged["num_requests"], errors="coerce")
    )
    out = merged.groupby("label", sort=False).agg(
        instances=("ratio", "size"),
        mean_ratio=("ratio", "mean"),
        min_ratio=("ratio", "min"),
        at_optimum=("ratio", lambda r: float((r >= 1 - 1e-9).mean())),
        max_ratio=("ratio", "max"),
        objective_ratio_max=("objective_ratio", "max"),
    )
    out = out.reset_index()
    out.loc[~out["label"].isin([OPT, "Offline bound"]), "objective_ratio_max"] = float("nan")
    unsolved = rows[(rows["label"] == OPT) & (rows["status"] != "optimal")]
    out.attrs["unsolved"] = len(unsolved)
    return out


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    table = gap_table(rows)
    fig, ax = plt.subplots(figsize=(7, 3))
    if not table.empty:
        ax.bar(table["label"], 100 * (1 - table["mean_ratio"]), label="mean gap")
        ax.plot(table["label"], 100 * (1 - table["min_ratio"]), "k_", ms=12, label="worst gap")
        ax.tick_params(axis="x", labelrotation=40, labelsize=7)
    ax.set_ylabel("attainment gap to optimum (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME, table)
