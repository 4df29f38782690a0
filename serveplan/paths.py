"""Where serveplan finds its shipped data and the sibling ``shared/`` folder.

``SERVEPLAN_DATA`` overrides the data folder; otherwise it is ``data/`` at the repository root
(serveplan is installed editable from a checkout, so the data ship beside the code).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The folder holding shipped data (``data/`` at the repository root)."""
    env = os.environ.get("SERVEPLAN_DATA")
    return Path(env) if env else REPO_ROOT / "data"


def data_path(*parts: str) -> Path:
    """A path inside the data folder."""
    return data_dir().joinpath(*parts)


def results_dir() -> Path:
    """Where experiment results go: ``$SERVEPLAN_RESULTS`` or ``results/`` under the working directory."""
    env = os.environ.get("SERVEPLAN_RESULTS")
    return Path(env) if env else Path.cwd() / "results"
