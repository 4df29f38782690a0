"""AlpaServe Fig. 13: S1 placements searched on a train trace and scored on a held-out test trace (mean of 3 pairs)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures.alpaserve_e2e import sweep_grid

NAME = "alpaserve_robustness"
CONFIGS = ["experiments/configs/alpaserve_robustness.toml"]


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    return sweep_grid(rows, out_dir, NAME)
