"""AlpaServe Fig. 14 (placement ablation): round robin, greedy on fixed pp=4 groups, and the full search."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures.alpaserve_e2e import sweep_grid

NAME = "alpaserve_ablation"
CONFIGS = ["experiments/configs/alpaserve_ablation.toml"]


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    return sweep_grid(rows, out_dir, NAME)
