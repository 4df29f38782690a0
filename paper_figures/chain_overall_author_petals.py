"""Overall comparison against PETALS as the authors simulate it (4-block cap on low-perf servers, window sums)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures import chain_overall

NAME = "chain_overall_author_petals"
CONFIGS = ["experiments/configs/chain_overall_author_petals.toml"]


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    return chain_overall.plot(rows, out_dir, name=NAME)
