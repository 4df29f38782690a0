"""A multi-model request trace as two numpy arrays: sorted arrival times and model ids.

Nothing here creates a Python object per request; every operation is vectorised.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serveplan.errors import InputError


@dataclass(frozen=True, eq=False)
class Workload:
    """Requests for ``num_models`` models over ``[0, duration_s)``.

    Parameters
    ----------
    arrival_s : numpy.ndarray of float64
        Arrival times in seconds, sorted ascending (ties allowed).
    model_id : numpy.ndarray of int32
        Model index of each request, in ``[0, num_models)``.
    duration_s : float
        Length of the observation window (arrivals normally lie in ``[0, duration_s]``; used for rates).
    num_models : int
        Number of models the ids index into (models with no requests are allowed).
    spec : str, optional
        The generator spec that reproduces these arrays (``gamma:rate=20,cv=4,...``), when there is
        one; instance files store the spec instead of the arrays.

    Notes
    -----
    The arrays are made read-only on construction so a workload can be shared between simulators
    without defensive copies.
    """

    arrival_s: np.ndarray
    model_id: np.ndarray
    duration_s: float
    num_models: int
    spec: str | None = None

    def __post_init__(self) -> None:
        arr = np.ascontiguousarray(self.arrival_s, dtype=np.float64)
        mid = np.ascontiguousarray(self.model_id, dtype=np.int32)
        if arr.ndim != 1 or mid.ndim != 1:
            raise InputError("workload arrays must be one-dimensional", field="arrival_s", value=arr.shape)
        if arr.shape != mid.shape:
            raise InputError("arrival_s and model_id differ in length", field="model_id", value=(arr.size, mid.size))
        if int(self.num_models) < 1:
            raise InputError("a workload needs at least one model", field="num_models", value=self.num_models)
        if not np.isfinite(self.duration_s) or self.duration_s < 0:
            raise InputError("duration must be finite and >= 0", field="duration_s", value=self.duration_s)
        if arr.size:
            if not np.all(np.isfinite(arr)):
                bad = int(np.flatnonzero(~np.isfinite(arr))[0])
                raise InputError("arrival time is not finite", field=f"arrival_s[{bad}]", value=float(arr[bad]))
            dec = np.flatnonzero(np.diff(arr) < 0)
            if dec.size:
                i = int(dec[0]) + 1
                raise InputError(
                    "arrival times are not sorted",
                    field=f"arrival_s[{i}]",
                    value=float(arr[i]),
                    hint="sort requests by arrival time (Workload.from_unsorted does it)",
                )
            lo, hi = int(mid.min()), int(mid.max())
            if lo < 0 or hi >= self.num_models:
                i = int(np.flatnonzero((mid < 0) | (mid >= self.num_models))[0])
                raise InputError(
                    f"model id out of range [0, {self.num_models})", field=f"model_id[{i}]", value=int(mid[i])
                )
        arr.setflags(write=False)
        mid.setflags(write=False)
        object.__setattr__(self, "arrival_s", arr)
        object.__setattr__(self, "model_id", mid)
        object.__setattr__(self, "duration_s", float(self.duration_s))
        object.__setattr__(self, "num_models", int(self.num_models))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_unsorted(
        cls, arrival_s: np.ndarray, model_id: np.ndarray, duration_s: float, num_models: int, spec: str | None = None
    ) -> Workload:
        """Build a workload from unsorted arrays (stable sort by arrival time)."""
        arr = np.asarray(arrival_s, dtype=np.float64)
        order = np.argsort(arr, kind="stable")
        return cls(arr[order], np.asarray(model_id, dtype=np.int32)[order], duration_s, num_models, spec)

    @classmethod
    def merge(cls, parts: list[tuple[np.ndarray, int]], duration_s: float, num_models: int) -> Workload:
        """Merge per-model arrival arrays ``[(arrivals, model_index), ...]`` into one sorted workload."""
        if not parts:
            return cls(np.empty(0), np.empty(0, np.int32), duration_s, num_models)
        arr = np.concatenate([np.asarray(a, dtype=np.float64) for a, _ in parts])
        mid = np.concatenate([np.full(len(a), m, dtype=np.int32) for a, m in parts])
        return cls.from_unsorted(arr, mid, duration_s, num_models)

    # ------------------------------------------------------------------ queries
    @property
    def num_requests(self) -> int:
        """Number of requests."""
        return int(self.arrival_s.size)

    def __len__(self) -> int:
        return self.num_requests

    def counts(self) -> np.ndarray:
        """Requests per model (length ``num_models``)."""
        return np.bincount(self.model_id, minlength=self.num_models)

    def rates(self) -> np.ndarray:
        """Mean arrival rate per model in requests per second over ``duration_s``."""
        return self.counts() / self.duration_s if self.duration_s > 0 else np.zeros(self.num_models)

    def slice(self, start_s: float, end_s: float, *, rebase: bool = True) -> Workload:
        """Requests with ``start_s <= arrival < end_s``; times shift to start at 0 when ``rebase``."""
        lo, hi = np.searchsorted(self.arrival_s, [start_s, end_s], side="left")
        arr = self.arrival_s[lo:hi] - (start_s if rebase else 0.0)
        dur = end_s - start_s if rebase else end_s
        return Workload(arr, self.model_id[lo:hi], max(dur, 0.0), self.num_models)

    def time_scaled(self, factor: float) -> Workload:
        """Arrival times divided by ``factor``: every rate times ``factor``, inter-arrival CVs unchanged."""
        if not (factor > 0) or not np.isfinite(factor):
            raise InputError("time scale factor must be finite and > 0", field="factor", value=factor)
        return Workload(self.arrival_s / factor, self.model_id, self.duration_s / factor, self.num_models)

    def windows(self, interval_s: float) -> list[Workload]:
        """Cut into consecutive windows of ``interval_s`` (each rebased to start at 0)."""
        if interval_s <= 0:
            raise InputError("window length must be > 0", field="interval_s", value=interval_s)
        n = max(1, int(np.ceil(self.duration_s / interval_s)))
        return [self.slice(i * interval_s, min((i + 1) * interval_s, self.duration_s)) for i in range(n)]

    def __repr__(self) -> str:
        return f"Workload({self.num_requests} requests, {self.num_models} models, {self.duration_s:g} s" + (
            f", spec={self.spec!r})" if self.spec else ")"
        )

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the spec when one reproduces the arrays, else the arrays inline."""
        if self.spec:
            return {"spec": self.spec, "num_models": self.num_models}
        return {
            "duration_s": self.duration_s,
            "num_models": self.num_models,
            "arrival_s": self.arrival_s.tolist(),
            "model_id": self.model_id.tolist(),
        }

    def save(self, path: str | Path) -> Path:
        """Write ``.npz`` (arrays + metadata) or ``.csv`` (``arrival_s,model_id`` with a metadata comment)."""
        path = Path(path)
        if path.suffix == ".npz":
            np.savez_compressed(
                path,
                arrival_s=self.arrival_s,
                model_id=self.model_id,
                duration_s=np.float64(self.duration_s),
                num_models=np.int64(self.num_models),
            )
        elif path.suffix == ".csv":
            with path.open("w") as fh:
                fh.write(f"# duration_s={self.duration_s!r},num_models={self.num_models}\n")
                fh.write("arrival_s,model_id\n")
                np.savetxt(fh, np.column_stack([self.arrival_s, self.model_id]), fmt=["%.9f", "%d"], delimiter=",")
        else:
            raise InputError("workload files are .npz or .csv", source=str(path), value=path.suffix)
        return path

    @classmethod
    def load(cls, path: str | Path, num_models: int | None = None) -> Workload:
        """Read a workload written by :meth:`save` (``.npz`` or ``.csv``).

        A CSV needs the columns ``arrival_s`` and ``model_id``; the ``# duration_s=...,num_models=...``
        comment line is optional (defaults: last arrival, ``max(model_id) + 1`` or ``num_models``).
        Unsorted rows are an error naming the first out-of-order row.
        """
        path = Path(path)
        if not path.exists():
            raise InputError("workload file not found", source=str(path))
        if path.suffix == ".npz":
            with np.load(path) as z:
                for key in ("arrival_s", "model_id"):
                    if key not in z:
                        raise InputError("missing array in workload file", source=str(path), field=key)
                arr, mid = z["arrival_s"], z["model_id"]
                dur = float(z["duration_s"]) if "duration_s" in z else (float(arr[-1]) if arr.size else 0.0)
                nm = int(z["num_models"]) if "num_models" in z else None
        elif path.suffix == ".csv":
            arr, mid, dur, nm = _read_workload_csv(path)
        else:
            raise InputError("workload files are .npz or .csv", source=str(path), value=path.suffix)
        nm = num_models or nm or (int(mid.max()) + 1 if mid.size else 1)
        try:
            return cls(arr, mid, dur, nm)
        except InputError as exc:
            raise exc.relabel(source=str(path)) from None


def _read_workload_csv(path: Path) -> tuple[np.ndarray, np.ndarray, float, int | None]:
    meta: dict[str, str] = {}
    with path.open() as fh:
        first = fh.readline()
        if first.startswith("#"):
            for item in first[1:].strip().split(","):
                if "=" in item:
                    k, v = item.split("=", 1)
                    meta[k.strip()] = v.strip()
            header = fh.readline()
        else:
            header = first
        cols = [c.strip() for c in header.strip().split(",")]
        for key in ("arrival_s", "model_id"):
            if key not in cols:
                raise InputError("missing column", source=str(path), field=key, value=cols)
        body = fh.read()
    if not body.strip():
        arr, mid = np.empty(0), np.empty(0, np.int32)
    else:
        try:
            data = np.loadtxt(io.StringIO(body), delimiter=",", ndmin=2)
        except ValueError as exc:
            raise InputError(f"unreadable row: {exc}", source=str(path)) from None
        if data.shape[1] != len(cols):
            raise InputError("rows and header differ in column count", source=str(path), value=data.shape[1])
        arr = data[:, cols.index("arrival_s")].astype(np.float64)
        mid = data[:, cols.index("model_id")].astype(np.int32)
    dur = float(meta["duration_s"]) if "duration_s" in meta else (float(arr[-1]) if arr.size else 0.0)
    nm = int(meta["num_models"]) if "num_models" in meta else None
    return arr, mid, dur, nm
