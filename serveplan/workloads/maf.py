"""MAF-like synthetic traces, for when the Azure Functions traces are not at hand.

AlpaServe replays Azure Functions traces as per-window Gamma processes (digest 4): every model gets
a rate per window (60 s for MAF1) and a CV, and arrivals are regenerated inside each window. This
module produces the same shape without the trace: per-model mean rates split by a power law, and
window-to-window rate changes drawn from a mean-one log-normal whose log-standard-deviation is
``burstiness`` (0 gives constant rates). It is a stand-in with the trace's structure, not a
statistical fit to MAF1/MAF2.
"""

from __future__ import annotations

import numpy as np

from serveplan.errors import InputError
from serveplan.workloads.arrivals import TEST_STREAM, power_law_rates, windowed_gamma_workload
from serveplan.workloads.workload import Workload


def maf_like_rates(
    num_models: int,
    total_rate: float,
    num_windows: int,
    seed: int,
    *,
    exponent: float = 0.5,
    burstiness: float = 1.0,
    stream: int = TEST_STREAM,
) -> np.ndarray:
    """Per-(model, window) rates, shape ``(num_models, num_windows)``; mean over windows ≈ the power-law split.

    Window multipliers are ``exp(N(-s^2/2, s^2))`` with ``s = burstiness`` (mean one), drawn from
    ``default_rng((seed, stream, 1_000_003))`` so they do not collide with arrival streams.
    """
    if num_windows < 1:
        raise InputError("need at least one window", field="num_windows", value=num_windows)
    if burstiness < 0:
        raise InputError("burstiness must be >= 0", field="burst", value=burstiness)
    base = power_law_rates(total_rate, num_models, exponent)
    rng = np.random.default_rng((int(seed), int(stream), 1_000_003))
    s = float(burstiness)
    mult = np.exp(rng.normal(-0.5 * s * s, s, size=(num_models, num_windows)))
    return base[:, None] * mult


def maf_like_workload(
    num_models: int,
    *,
    total_rate: float,
    cv: float,
    duration_s: float,
    interval_s: float = 60.0,
    seed: int = 0,
    exponent: float = 0.5,
    stream: int = TEST_STREAM,
    rate_scale: float = 1.0,
    cv_scale: float = 1.0,
    burstiness: float = 1.0,
    stationary: bool = True,
) -> Workload:
    """A MAF-like workload: :func:`maf_like_rates` windows replayed as per-window Gamma processes.

    ``rate_scale`` and ``cv_scale`` multiply every window's rate and CV, as AlpaServe's trace replay does.
    """
    if interval_s <= 0:
        raise InputError("window length must be > 0", field="interval", value=interval_s)
    n_win = max(1, int(np.ceil(duration_s / interval_s)))
    rates = maf_like_rates(num_models, total_rate, n_win, seed, exponent=exponent, burstiness=burstiness, stream=stream)
    w = windowed_gamma_workload(
        rates,
        np.full_like(rates, cv),
        interval_s,
        seed,
        stream=stream,
        rate_scale=rate_scale,
        cv_scale=cv_scale,
        stationary=stationary,
    )
    return w.slice(0.0, duration_s)
