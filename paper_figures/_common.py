"""Helpers every figure module uses: a headless matplotlib, summaries over seeds, saving PNG + PDF + CSV."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window (and work without a display)

import matplotlib.pyplot as plt
import pandas as pd

__all__ = ["ok_rows", "plt", "save_figure", "summarise"]


def ok_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of cases that finished (status other than ``error``)."""
    if "status" not in rows:
        return rows
    return rows[rows["status"] != "error"]


def summarise(rows: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    """Mean, standard deviation and count of ``metric`` over seeds, per group of ``by``.

    Returns
    -------
    DataFrame
        Columns ``by + ["mean", "std", "n"]``; groups without a value of ``metric`` are dropped.
    """
    if metric not in rows:
        return pd.DataFrame(columns=[*by, "mean", "std", "n"])
    values = pd.to_numeric(rows[metric], errors="coerce")
    frame = rows[by].assign(_v=values).dropna(subset=["_v"])
    grouped = frame.groupby(by, sort=False)["_v"]
    out = grouped.agg(["mean", "std", "count"]).rename(columns={"count": "n"}).reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def save_figure(fig: plt.Figure, out_dir: str | Path, name: str, data: pd.DataFrame) -> list[Path]:
    """Write ``<name>.png``, ``<name>.pdf`` and ``<name>.csv`` (the data plotted); close the figure.

    Returns
    -------
    list of Path
        The three files, PNG first.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf", out / f"{name}.csv"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    data.to_csv(paths[2], index=False)
    return paths
