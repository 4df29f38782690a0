"""ServeGen per-client window statistics (Alibaba production LLM traffic), shipped under ``data/servegen/``.

Each ``chunk-*-trace.csv`` holds one client, one row per 600 s window, no header:
``window_start_s,rate_req_per_s,cv,family,shape,scale`` (family = fitted inter-arrival law, empty
when idle). :func:`servegen_workload` maps clients to models (client ``i`` to model ``i mod n``) and
regenerates every window as a Gamma process with the window's rate and CV (the family's exact law
is not reproduced; Gamma with the same mean and CV is AlpaServe's convention), times
``rate_scale``/``cv_scale``.

Shipped folders: ``language/m-large`` (10 busiest clients, 14 days) and ``reason/deepseek-r1``
(73 clients, 1 day).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serveplan.errors import InputError
from serveplan.paths import data_path
from serveplan.workloads.arrivals import TEST_STREAM, windowed_gamma_workload
from serveplan.workloads.workload import Workload

WINDOW_S = 600.0


@dataclass(frozen=True, eq=False)
class ClientStats:
    """Per-client window statistics: ``rates``/``cvs`` of shape ``(clients, windows)``."""

    clients: tuple[str, ...]
    window_start_s: np.ndarray
    rates: np.ndarray
    cvs: np.ndarray


def _chunk_key(p: Path) -> int:
    m = re.search(r"chunk-(\d+)", p.name)
    return int(m.group(1)) if m else 0


def load_servegen(folder: str | Path = "language/m-large") -> ClientStats:
    """Read a ServeGen folder (relative to ``data/servegen/data`` or absolute) into per-client statistics."""
    path = Path(folder)
    if not path.is_absolute():
        path = data_path("servegen", "data", str(folder))
    files = sorted(path.glob("chunk-*-trace.csv"), key=_chunk_key)
    if not files:
        raise InputError("no chunk-*-trace.csv files", source=str(path))
    starts, rates, cvs = None, [], []
    for f in files:
        try:
            raw = np.genfromtxt(f, delimiter=",", usecols=(0, 1, 2), dtype=np.float64, ndmin=2)
        except ValueError as exc:
            raise InputError(f"unreadable statistics: {exc}", source=str(f)) from None
        if raw.ndim != 2 or raw.shape[1] != 3 or np.isnan(raw[:, :2]).any():
            raise InputError("expected rows window_start_s,rate_req_per_s,cv,...", source=str(f))
        if starts is None:
            starts = raw[:, 0]
        elif raw.shape[0] != starts.size or not np.array_equal(raw[:, 0], starts):
            raise InputError("clients disagree on the window grid", source=str(f))
        rates.append(raw[:, 1])
        cv = raw[:, 2].copy()
        cv[~np.isfinite(cv) | (cv <= 0)] = 1.0
        cvs.append(cv)
    return ClientStats(tuple(f.stem for f in files), starts, np.array(rates), np.array(cvs))


def servegen_workload(
    num_models: int,
    *,
    folder: str | Path = "language/m-large",
    start_s: float = 0.0,
    duration_s: float = 3600.0,
    rate_scale: float = 1.0,
    cv_scale: float = 1.0,
    seed: int = 0,
    stream: int = TEST_STREAM,
) -> Workload:
    """Per-window Gamma arrivals of the ServeGen clients, clients striped over ``num_models`` models.

    A model serving several clients gets the superposition of their processes. ``start_s`` and
    ``duration_s`` select whole 600 s windows (rounded outwards) and the result is cut to
    ``duration_s``.
    """
    stats = load_servegen(folder)
    w0 = int(np.searchsorted(stats.window_start_s, start_s, side="right")) - 1
    w0 = max(w0, 0)
    n_win = int(np.ceil(duration_s / WINDOW_S))
    if w0 + n_win > stats.window_start_s.size or duration_s <= 0:
        raise InputError("time range outside the statistics", field="start_s/duration_s", value=(start_s, duration_s))
    rates = stats.rates[:, w0 : w0 + n_win]
    cvs = stats.cvs[:, w0 : w0 + n_win]
    n_clients = rates.shape[0]
    clients_w = windowed_gamma_workload(
        rates, cvs, WINDOW_S, seed, stream=stream, rate_scale=rate_scale, cv_scale=cv_scale
    )
    model_of = (np.arange(n_clients) % num_models).astype(np.int32)
    w = Workload(clients_w.arrival_s, model_of[clients_w.model_id], clients_w.duration_s, num_models)
    return w.slice(0.0, duration_s)
