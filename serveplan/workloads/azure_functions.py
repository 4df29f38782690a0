"""Azure Functions traces as AlpaServe replays them (digest 4: "MAF1" 2019, "MAF2" 2021).

Users bring the files (they are download-only, from ``Azure/AzurePublicDataset``):

* **2019** ``invocations_per_function_md.anon.dNN.csv``: header
  ``HashOwner,HashApp,HashFunction,Trigger,1,...,1440``, one row per function and day, per-minute
  invocation counts. :func:`load_azure_2019` stacks days into a ``(functions, days*1440)`` array.
* **2021** ``AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt`` (CSV): header
  ``app,func,end_timestamp,duration`` in seconds; start = end - duration.
  :func:`load_azure_2021` returns per-function sorted start times.

Both are turned into multi-model workloads the way AlpaServe does it: slice a time range, drop
functions without invocations, map function ``i`` to model ``i mod n`` ("stripe", file order) or
contiguous blocks ("round_robin"), sum per model, cut into windows and regenerate Gamma arrivals per
window: MAF1 with rate = count/window x ``rate_scale`` and CV = ``cv_scale`` (minute counts say
nothing about sub-minute burstiness), MAF2 with a Gamma MLE fit per window (see :mod:`gamma_fit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from serveplan.errors import InputError
from serveplan.workloads.arrivals import TEST_STREAM, windowed_gamma_workload
from serveplan.workloads.gamma_fit import fit_rate_cv
from serveplan.workloads.workload import Workload

MINUTES_PER_DAY = 1440
_2019_KEYS = ("HashOwner", "HashApp", "HashFunction", "Trigger")
_2021_COLS = ("app", "func", "end_timestamp", "duration")


@dataclass(frozen=True, eq=False)
class MinuteCounts:
    """Per-function per-minute invocation counts (2019 format), ``counts.shape == (functions, minutes)``."""

    functions: tuple[str, ...]
    counts: np.ndarray


@dataclass(frozen=True, eq=False)
class FunctionArrivals:
    """Per-function sorted invocation start times in seconds (2021 format)."""

    functions: tuple[str, ...]
    arrivals: tuple[np.ndarray, ...]


def load_azure_2019(paths: list[str | Path] | str | Path) -> MinuteCounts:
    """Read one or more daily 2019 files (in day order) into per-function minute counts.

    A function missing from a day is zero-filled for that day (AlpaServe's preprocessing). Functions
    are identified by ``HashOwner/HashApp/HashFunction`` and ordered by first appearance.
    """
    if isinstance(paths, str | Path):
        p = Path(paths)
        paths = sorted(p.glob("invocations_per_function_md.anon.d*.csv")) if p.is_dir() else [p]
    if not paths:
        raise InputError("no 2019 trace files given", field="paths")
    minute_cols = [str(i) for i in range(1, MINUTES_PER_DAY + 1)]
    frames = []
    for day, path in enumerate(paths):
        path = Path(path)
        if not path.exists():
            raise InputError("trace file not found", source=str(path))
        try:
            df = pd.read_csv(path, dtype={k: str for k in _2019_KEYS})
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(f"unreadable trace: {exc}", source=str(path)) from None
        df.columns = [str(c).strip() for c in df.columns]
        for key in (*_2019_KEYS, *minute_cols):
            if key not in df.columns:
                raise InputError("missing column", source=str(path), field=key)
        try:
            values = df[minute_cols].to_numpy(dtype=np.float64)
        except (ValueError, TypeError):
            values = df[minute_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1))[0])
            raise InputError(f"row {row + 2}: bad per-minute count", source=str(path), field="1..1440")
        names = df["HashOwner"] + "/" + df["HashApp"] + "/" + df["HashFunction"]
        frames.append((day, names.to_numpy(), values))
    # functions in order of first appearance; rows of one function within a day (several triggers) add up
    index: dict[str, int] = {}
    for _, names, _ in frames:
        for name in names:
            index.setdefault(name, len(index))
    counts = np.zeros((len(index), MINUTES_PER_DAY * len(frames)))
    for day, names, values in frames:
        ids = np.fromiter((index[n] for n in names), np.int64, count=len(names))
        block = counts[:, day * MINUTES_PER_DAY : (day + 1) * MINUTES_PER_DAY]
        if np.unique(ids).size == ids.size:
            block[ids] += values
        else:  # a function listed once per trigger: add its rows up (np.add.at is unbuffered, so slower)
            np.add.at(block, ids, values)
    return MinuteCounts(tuple(index), counts)


def load_azure_2021(path: str | Path) -> FunctionArrivals:
    """Read the 2021 invocation trace: per function (``app/func``, first-appearance order) sorted start times.

    Start = ``end_timestamp - duration``, as AlpaServe's preprocessing.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("trace file not found", source=str(path))
    try:
        df = pd.read_csv(path, dtype={"app": str, "func": str})
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"unreadable trace: {exc}", source=str(path)) from None
    df.columns = [str(c).strip() for c in df.columns]
    for col in _2021_COLS:
        if col not in df.columns:
            raise InputError("missing column", source=str(path), field=col, value=list(df.columns))
    end = pd.to_numeric(df["end_timestamp"], errors="coerce").to_numpy(np.float64)
    dur = pd.to_numeric(df["duration"], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(end) | ~np.isfinite(dur)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"row {row + 2}: bad end_timestamp/duration", source=str(path))
    codes, uniques = pd.factorize(df["app"] + "/" + df["func"], sort=False)
    names = {str(u): i for i, u in enumerate(uniques)}
    fid_list, start_list = codes, end - dur
    fids = np.asarray(fid_list, dtype=np.int64)
    starts = np.asarray(start_list, dtype=np.float64)
    order = np.lexsort((starts, fids))
    fids, starts = fids[order], starts[order]
    bounds = np.searchsorted(fids, np.arange(len(names) + 1))
    return FunctionArrivals(tuple(names), tuple(starts[bounds[i] : bounds[i + 1]] for i in range(len(names))))


def map_functions(num_functions: int, num_models: int, mapping: str = "stripe") -> np.ndarray:
    """Model index of each function: ``stripe`` (i mod n) or ``round_robin`` (contiguous blocks)."""
    if num_models < 1:
        raise InputError("need at least one model", field="num_models", value=num_models)
    i = np.arange(num_functions)
    if mapping == "stripe":
        return i % num_models
    if mapping == "round_robin":
        per = max(1, int(np.ceil(num_functions / num_models)))
        return np.minimum(i // per, num_models - 1)
    raise InputError("unknown function-to-model mapping", field="mapping", value=mapping, hint="stripe or round_robin")


def maf1_workload(
    trace: MinuteCounts,
    num_models: int,
    *,
    start_min: int = 0,
    end_min: int = 60,
    interval_s: float = 60.0,
    rate_scale: float = 2e-3,
    cv_scale: float = 4.0,
    mapping: str = "stripe",
    seed: int = 0,
    stream: int = TEST_STREAM,
) -> Workload:
    """AlpaServe's MAF1 replay (defaults: day 0, first hour, 60 s windows, rate x 2e-3, CV 4).

    ``interval_s`` must be a multiple of 60. Arrivals start at 0 for ``start_min``.
    """
    if interval_s <= 0 or interval_s % 60:
        raise InputError("window must be a positive multiple of 60 s", field="interval_s", value=interval_s)
    if not 0 <= start_min < end_min <= trace.counts.shape[1]:
        raise InputError("minute range outside the trace", field="start_min/end_min", value=(start_min, end_min))
    counts = trace.counts[:, start_min:end_min]
    counts = counts[counts.sum(axis=1) > 0]
    model_of = map_functions(counts.shape[0], num_models, mapping)
    per_model = np.zeros((num_models, counts.shape[1]))
    np.add.at(per_model, model_of, counts)
    per_win = int(interval_s // 60)
    n_win = int(np.ceil(per_model.shape[1] / per_win))
    padded = np.zeros((num_models, n_win * per_win))
    padded[:, : per_model.shape[1]] = per_model
    windows = padded.reshape(num_models, n_win, per_win).sum(axis=2)
    rates = windows / interval_s
    w = windowed_gamma_workload(
        rates, np.ones_like(rates), interval_s, seed, stream=stream, rate_scale=rate_scale, cv_scale=cv_scale
    )
    return w.slice(0.0, (end_min - start_min) * 60.0)


def maf2_workload(
    trace: FunctionArrivals,
    num_models: int,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
    interval_s: float = 5400.0,
    rate_scale: float = 1.0,
    cv_scale: float = 1.0,
    mapping: str = "stripe",
    seed: int = 0,
    stream: int = TEST_STREAM,
    vanilla: bool = False,
) -> Workload:
    """AlpaServe's MAF2 replay: per-window Gamma refit (or the raw arrivals with ``vanilla=True``).

    With ``vanilla`` the merged raw start times are returned (shifted to start at 0); ``rate_scale``
    must then be 1 (replay cannot change the rate). Otherwise windows with fewer than 3 arrivals get
    none (as the reference code), and each other window is a Gamma process with the fitted rate and
    CV times ``rate_scale`` and ``cv_scale``.
    """
    if end_s is None:
        end_s = max((float(a[-1]) for a in trace.arrivals if a.size), default=start_s) + 1e-9
    if not end_s > start_s:
        raise InputError("empty time range", field="end_s", value=(start_s, end_s))
    sliced = [a[(a >= start_s) & (a < end_s)] - start_s for a in trace.arrivals]
    sliced = [a for a in sliced if a.size]
    model_of = map_functions(len(sliced), num_models, mapping)
    duration = end_s - start_s
    per_model = [
        np.sort(np.concatenate([a for a, m in zip(sliced, model_of, strict=True) if m == k] or [np.empty(0)]))
        for k in range(num_models)
    ]
    if vanilla:
        if rate_scale != 1.0:
            raise InputError("vanilla replay cannot scale the rate", field="rate_scale", value=rate_scale)
        return Workload.merge([(a, k) for k, a in enumerate(per_model)], duration, num_models)
    n_win = max(1, int(np.ceil(duration / interval_s)))
    rates = np.zeros((num_models, n_win))
    cvs = np.ones((num_models, n_win))
    for k, arr in enumerate(per_model):
        win = np.minimum((arr // interval_s).astype(np.int64), n_win - 1)
        bounds = np.searchsorted(win, np.arange(n_win + 1))
        for w in range(n_win):
            r, c = fit_rate_cv(arr[bounds[w] : bounds[w + 1]], interval_s)
            if np.isfinite(r):
                rates[k, w], cvs[k, w] = r, c
    w = windowed_gamma_workload(rates, cvs, interval_s, seed, stream=stream, rate_scale=rate_scale, cv_scale=cv_scale)
    return w.slice(0.0, duration)
