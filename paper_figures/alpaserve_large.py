"""AlpaServe Fig. 12: 4 x BERT-104B on 64 GPUs, manual model parallelism (mp-equal) vs AlpaServe's search."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures.alpaserve_e2e import sweep_grid

NAME = "alpaserve_large"
CONFIGS = ["experiments/configs/alpaserve_large.toml"]


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    return sweep_grid(rows, out_dir, NAME)
