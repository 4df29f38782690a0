"""The Azure LLM inference trace 2023 as a multi-model workload.

The trace (``TIMESTAMP,ContextTokens,GeneratedTokens``) ships under ``data/azure_llm_2023/``: one
hour of 2023-11-16; ``code`` has 8,819 very bursty requests, ``conv`` 19,366 requests.

The trace has one request stream; to drive a multi-model placement each request is assigned to a
model, either by a seeded draw with power-law model popularity (``split="power_law"``, the default,
matching AlpaServe's synthetic rate split) or round-robin in arrival order. Arrival times are kept
(relative to the first request), optionally compressed by ``time_scale`` (``2`` halves every gap,
doubling the rate without changing the CV).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from serveplan.errors import InputError
from serveplan.paths import data_path
from serveplan.workloads.arrivals import power_law_rates
from serveplan.workloads.workload import Workload

TRACES = {"code": "AzureLLMInferenceTrace_code.csv", "conv": "AzureLLMInferenceTrace_conv.csv"}


def load_azure_llm_arrivals(name_or_path: str | Path = "code") -> np.ndarray:
    """Sorted arrival times in seconds from the first request (``code``, ``conv`` or a CSV path)."""
    path = data_path("azure_llm_2023", TRACES[name_or_path]) if name_or_path in TRACES else Path(name_or_path)
    if not path.exists():
        raise InputError("trace file not found", source=str(path), hint=f"or use one of {sorted(TRACES)}")
    try:
        df = pd.read_csv(path, usecols=lambda c: c.strip() == "TIMESTAMP")
    except ValueError as exc:
        raise InputError(f"unreadable trace: {exc}", source=str(path)) from None
    if "TIMESTAMP" not in df.columns:
        raise InputError("missing column", source=str(path), field="TIMESTAMP")
    try:
        ts = pd.to_datetime(df["TIMESTAMP"], format="mixed")
    except (ValueError, TypeError) as exc:
        raise InputError(f"bad timestamp: {exc}", source=str(path), field="TIMESTAMP") from None
    t = (ts - ts.min()).dt.total_seconds().to_numpy(dtype=np.float64)
    return np.sort(t)


def azure_llm_workload(
    num_models: int,
    *,
    trace: str | Path = "code",
    split: str = "power_law",
    exponent: float = 0.5,
    time_scale: float = 1.0,
    duration_s: float | None = None,
    seed: int = 0,
) -> Workload:
    """A multi-model workload from the Azure LLM 2023 arrival times (see module docstring)."""
    if time_scale <= 0:
        raise InputError("time_scale must be > 0", field="time_scale", value=time_scale)
    t = load_azure_llm_arrivals(trace) / time_scale
    if duration_s is not None:
        t = t[t < duration_s]
    dur = float(duration_s) if duration_s is not None else (float(t[-1]) if t.size else 0.0)
    if split == "power_law":
        p = power_law_rates(1.0, num_models, exponent)
        mid = np.random.default_rng(seed).choice(num_models, size=t.size, p=p)
    elif split == "round_robin":
        mid = np.arange(t.size) % num_models
    else:
        raise InputError("unknown split", field="split", value=split, hint="power_law or round_robin")
    return Workload(t, mid.astype(np.int32), dur, num_models)
