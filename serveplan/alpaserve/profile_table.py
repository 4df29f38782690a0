"""Measured per-stage profiles: the ``data/profiles/<gpu>.csv`` format (docs/profile_format.md).

One CSV per GPU type, header::

    model,pp,op,batch_size,seq_len,stage,latency_s,weight_bytes,act_bytes

one row per pipeline stage (``stage`` is 0-based and every stage ``0..pp-1`` of a (model, pp, op,
batch_size, seq_len) key appears exactly once). ``latency_s`` is the stage's forward time,
``weight_bytes`` the weights held by **each GPU** of the stage, ``act_bytes`` the peak activation
memory per GPU (informational). A sidecar ``<gpu>.meta.json`` records how the numbers were taken.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serveplan.errors import InputError

PROFILE_COLUMNS = ("model", "pp", "op", "batch_size", "seq_len", "stage", "latency_s", "weight_bytes", "act_bytes")
_INT_COLS = ("pp", "op", "batch_size", "seq_len", "stage")
_FLOAT_COLS = ("latency_s", "weight_bytes", "act_bytes")

ProfileKey = tuple[str, int, int, int, int]  # (model, pp, op, batch_size, seq_len)


@dataclass(frozen=True)
class StageProfile:
    """Per-stage arrays of one (model, pp, op, batch_size, seq_len) key."""

    latency_s: np.ndarray
    weight_bytes: np.ndarray
    act_bytes: np.ndarray


@dataclass(frozen=True, eq=False)
class ProfileTable:
    """Measured stage profiles of one GPU type, keyed by (model, pp, op, batch_size, seq_len).

    Model names are matched case-insensitively against :attr:`ModelSpec.name`.
    """

    entries: dict[ProfileKey, StageProfile]
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def get(self, model: str, pp: int, op: int, batch_size: int, seq_len: int) -> StageProfile | None:
        """The measured profile for this key, or None."""
        return self.entries.get((model.lower(), pp, op, batch_size, seq_len))

    def models(self) -> list[str]:
        """Model names with at least one row."""
        return sorted({k[0] for k in self.entries})

    def __len__(self) -> int:
        return len(self.entries)


def load_profile_table(path: str | Path, meta_path: str | Path | None = None) -> ProfileTable:
    """Read a profile CSV (and its ``.meta.json`` sidecar when present).

    Raises
    ------
    InputError
        Naming the file, row and column for a missing column, a value that is not a number, a
        negative or non-finite latency/size, a repeated stage, or a key whose stages are not
        exactly ``0..pp-1``.
    """
    path = Path(path)
    src = str(path)
    if not path.exists():
        raise InputError("profile table not found", source=src)
    raw: dict[ProfileKey, dict[int, tuple[float, float, float]]] = {}
    first_row: dict[ProfileKey, int] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in PROFILE_COLUMNS if c not in header]
        if missing:
            raise InputError(
                "missing column", source=src, field=missing[0], hint=f"header must be {','.join(PROFILE_COLUMNS)}"
            )
        reader.fieldnames = header
        for lineno, row in enumerate(reader, start=2):
            ints: dict[str, int] = {}
            for c in _INT_COLS:
                try:
                    ints[c] = int(row[c])
                except (TypeError, ValueError):
                    raise InputError(f"row {lineno}: not an integer", source=src, field=c, value=row[c]) from None
            floats: dict[str, float] = {}
            for c in _FLOAT_COLS:
                try:
                    v = float(row[c])
                except (TypeError, ValueError):
                    raise InputError(f"row {lineno}: not a number", source=src, field=c, value=row[c]) from None
                if not math.isfinite(v) or v < 0:
                    raise InputError(f"row {lineno}: must be finite and >= 0", source=src, field=c, value=row[c])
                floats[c] = v
            for c in ("pp", "op", "batch_size", "seq_len"):
                if ints[c] < 1:
                    raise InputError(f"row {lineno}: must be >= 1", source=src, field=c, value=ints[c])
            name = (row["model"] or "").strip().lower()
            if not name:
                raise InputError(f"row {lineno}: empty model name", source=src, field="model")
            key = (name, ints["pp"], ints["op"], ints["batch_size"], ints["seq_len"])
            stage = ints["stage"]
            if not 0 <= stage < ints["pp"]:
                raise InputError(f"row {lineno}: stage outside 0..pp-1", source=src, field="stage", value=stage)
            stages = raw.setdefault(key, {})
            first_row.setdefault(key, lineno)
            if stage in stages:
                raise InputError(f"row {lineno}: stage listed twice for {key}", source=src, field="stage", value=stage)
            stages[stage] = (floats["latency_s"], floats["weight_bytes"], floats["act_bytes"])
    entries: dict[ProfileKey, StageProfile] = {}
    for key, stages in raw.items():
        pp = key[1]
        if len(stages) != pp:
            absent = sorted(set(range(pp)) - set(stages))
            raise InputError(
                f"row {first_row[key]}: {key} lacks stages {absent}", source=src, field="stage", value=sorted(stages)
            )
        arr = np.array([stages[k] for k in range(pp)], dtype=np.float64)
        if np.any(arr[:, 0] <= 0):
            raise InputError(f"row {first_row[key]}: latency must be > 0 for {key}", source=src, field="latency_s")
        entries[key] = StageProfile(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy())
    meta: dict[str, Any] = {}
    mp = Path(meta_path) if meta_path is not None else path.with_suffix(".meta.json")
    if mp.exists():
        try:
            meta = json.loads(mp.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON: {exc}", source=str(mp)) from None
    return ProfileTable(entries, meta, src)
