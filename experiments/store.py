"""The result store: one file per finished case, written atomically, plus a consolidated table.

Layout of ``results/<experiment>/``::

    config.toml        the config file as given (copied)
    resolved.json      the resolved config (every default filled in) and its hash
    runs.jsonl         one line per `serveplan run`: when, where, executor, cases run / skipped / failed
    cases/<case_id>.json   one row per finished case
    results.csv        every row of the current config's cases (rebuilt after each run)
    results.parquet    the same table, when pyarrow can type every column

Each case file is written to a temporary file in the same folder and moved into place with
:func:`os.replace`, which is atomic on POSIX: a run killed at any moment leaves either no file or a
whole one for each case. Files are named by case id, so a case is never stored twice.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.config import ExperimentConfig

# The one status a resume retries: every other stored row is a finished case.
RETRIED_STATUS = "error"


# Column order of the consolidated table: identity and outcome first, then grid axes and metrics
# (alphabetical), then provenance.
LEADING_COLUMNS = (
    "experiment", "label", "method", "seed", "status", "verified", "objective", "bound", "gap",
    "method_wall_s", "wall_s",
)  # fmt: skip
TRAILING_COLUMNS = (
    "violations", "message", "backend", "threads", "time_limit_s", "rel_gap", "family", "params", "options",
    "evaluator", "problem", "solver", "solver_version", "info", "serveplan_version", "python_version",
    "numpy_version", "host", "finished_at", "point_id", "case_id", "config_hash",
)  # fmt: skip


def order_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Reorder a results table: leading columns, then axes and metrics, then provenance."""
    lead = [c for c in LEADING_COLUMNS if c in frame]
    tail = [c for c in TRAILING_COLUMNS if c in frame]
    middle = sorted(c for c in frame.columns if c not in lead and c not in tail)
    return frame[lead + middle + tail]


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and :func:`os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultStore:
    """Rows of one experiment under ``root`` (normally ``results/<experiment>/``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.cases_dir = self.root / "cases"

    @property
    def csv_path(self) -> Path:
        """The consolidated CSV."""
        return self.root / "results.csv"

    @property
    def parquet_path(self) -> Path:
        """The consolidated parquet file."""
        return self.root / "results.parquet"

    def write_config(self, config: ExperimentConfig) -> None:
        """Store the config as given and resolved."""
        self.root.mkdir(parents=True, exist_ok=True)
        src = Path(config.source)
        if src.exists():
            shutil.copyfile(src, self.root / ".config.toml.tmp")
            os.replace(self.root / ".config.toml.tmp", self.root / "config.toml")
        resolved = config.to_dict() | {"config_hash": config.config_hash()}
        atomic_write_text(self.root / "resolved.json", json.dumps(resolved, indent=2, sort_keys=True, default=str))

    def log_run(self, record: dict[str, Any]) -> None:
        """Append one line to ``runs.jsonl`` (a single ``write`` in append mode, so lines never interleave)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "runs.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")

    def resolved(self) -> dict[str, Any] | None:
        """The stored resolved config, if any."""
        p = self.root / "resolved.json"
        return json.loads(p.read_text()) if p.exists() else None

    def case_path(self, case_id: str) -> Path:
        """Where the row of ``case_id`` lives."""
        return self.cases_dir / f"{case_id}.json"

    def write_case(self, row: dict[str, Any]) -> Path:
        """Store one finished case atomically (replacing an earlier row of the same case)."""
        path = self.case_path(row["case_id"])
        atomic_write_text(path, json.dumps(row, sort_keys=True, default=str))
        return path

    def read_case(self, case_id: str) -> dict[str, Any] | None:
        """The stored row of ``case_id``, or None."""
        p = self.case_path(case_id)
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            return None

    def stored_ids(self) -> dict[str, str]:
        """Case id -> status of every stored row."""
        out = {}
        if not self.cases_dir.exists():
            return out
        for p in self.cases_dir.glob("*.json"):
            try:
                out[p.stem] = json.loads(p.read_text()).get("status", "error")
            except (OSError, json.JSONDecodeError):
                continue
        return out

    def finished_ids(self) -> set[str]:
        """Ids of stored cases that a resume skips (every status but ``error``)."""
        return {cid for cid, status in self.stored_ids().items() if status != RETRIED_STATUS}

    def rows(self, case_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Stored rows, of the given cases (in that order) or of all cases (sorted by id)."""
        if case_ids is None:
            case_ids = sorted(p.stem for p in self.cases_dir.glob("*.json")) if self.cases_dir.exists() else []
        rows = []
        for cid in case_ids:
            row = self.read_case(cid)
            if row is not None:
                rows.append(row)
        return rows

    def consolidate(self, case_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Rebuild ``results.csv`` (and ``results.parquet``) from the case files; returns the table."""
        frame = order_columns(pd.DataFrame(self.rows(case_ids)))
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.csv_path, frame.to_csv(index=False))
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".results.parquet.", suffix=".tmp")
        os.close(fd)
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, self.parquet_path)
        except (ValueError, TypeError, ImportError, OSError):
            # A column pyarrow cannot type (mixed objects): the CSV remains the table of record.
            Path(tmp).unlink(missing_ok=True)
            self.parquet_path.unlink(missing_ok=True)
        return frame

    def load(self) -> pd.DataFrame:
        """The consolidated table (parquet if present, else CSV, else rebuilt from the case files)."""
        if self.parquet_path.exists():
            return pd.read_parquet(self.parquet_path)
        if self.csv_path.exists():
            return pd.read_csv(self.csv_path)
        return order_columns(pd.DataFrame(self.rows()))
