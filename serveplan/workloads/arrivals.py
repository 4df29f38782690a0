"""Arrival processes: Gamma renewal arrivals and rate splits across models (AlpaServe digest 4).

Inter-arrival gaps are Gamma with shape ``1/cv^2`` and scale ``cv^2/rate``: mean ``1/rate``,
coefficient of variation ``cv``; ``cv = 1`` is a Poisson process. Every draw takes a seed; model
``i`` of a multi-model workload draws from ``numpy.random.default_rng((seed, stream, i))``, so
adding a model does not change the arrivals of the others, and ``stream`` separates independent
samples of the same process (the training and the test workload).
"""

from __future__ import annotations

import numpy as np

from serveplan.errors import InputError
from serveplan.workloads.workload import Workload

TEST_STREAM = 0
TRAIN_STREAM = 1


def gamma_arrivals(
    rate: float,
    cv: float,
    duration_s: float,
    rng: np.random.Generator,
    start_s: float = 0.0,
    *,
    stationary: bool = True,
) -> np.ndarray:
    """Arrival times of a Gamma renewal process on ``[start_s, start_s + duration_s)``.

    Parameters
    ----------
    rate : float
        Mean arrivals per second (0 gives no arrivals).
    cv : float
        Coefficient of variation of the gaps (> 0).
    duration_s : float
        Window length.
    rng : numpy.random.Generator
        Source of randomness.
    start_s : float
        Window start.
    stationary : bool, default True
        Start the renewal process in equilibrium: the first arrival comes after a forward-recurrence
        time ``U x Gamma(1/cv^2 + 1, cv^2/rate)`` (U uniform; the excess of a length-biased gap), so
        the expected count in any window is exactly ``rate x duration``. ``False`` starts fresh
        with an ordinary gap, as AlpaServe's generator does; for bursty processes (cv > 1) that adds
        about ``(cv^2 - 1)/2`` arrivals at the start of every window (7.5 at cv = 4), which matters
        when windows are short or rates low.

    Returns
    -------
    numpy.ndarray of float64, sorted.

    Notes
    -----
    Vectorised: draws ``rate * duration`` gaps plus a 6-sigma margin at once and tops up in the rare
    case that is not enough. O(rate x duration).
    """
    if not (rate >= 0) or not np.isfinite(rate):
        raise InputError("rate must be finite and >= 0", field="rate", value=rate)
    if not (cv > 0) or not np.isfinite(cv):
        raise InputError("cv must be finite and > 0", field="cv", value=cv)
    if rate == 0 or duration_s <= 0:
        return np.empty(0)
    shape, scale = 1.0 / cv**2, cv**2 / rate
    mean_n = rate * duration_s
    n = int(mean_n + 6.0 * cv * np.sqrt(mean_n) + 16)
    gaps = rng.gamma(shape, scale, size=n)
    if stationary:
        gaps[0] = rng.uniform() * rng.gamma(shape + 1.0, scale)
    times = np.cumsum(gaps)
    while times[-1] < duration_s:
        more = np.cumsum(rng.gamma(shape, scale, size=n)) + times[-1]
        times = np.concatenate([times, more])
    return start_s + times[: np.searchsorted(times, duration_s, side="left")]


def power_law_rates(total_rate: float, num_models: int, exponent: float = 0.5) -> np.ndarray:
    """Split ``total_rate`` as ``rate_i ∝ (i+1)^(-exponent)`` (AlpaServe's ``power_law``; 0 = uniform)."""
    if num_models < 1:
        raise InputError("need at least one model", field="num_models", value=num_models)
    if not (total_rate >= 0):
        raise InputError("total rate must be >= 0", field="rate", value=total_rate)
    w = np.arange(1, num_models + 1, dtype=np.float64) ** (-float(exponent))
    return total_rate * w / w.sum()


def gamma_workload(
    rates: np.ndarray | list[float],
    cvs: float | np.ndarray | list[float],
    duration_s: float,
    seed: int,
    *,
    stream: int = TEST_STREAM,
    spec: str | None = None,
    stationary: bool = True,
) -> Workload:
    """Independent Gamma processes per model, merged into one sorted :class:`Workload`.

    Parameters
    ----------
    rates : array of float
        Per-model mean rate (requests/s); its length is the number of models.
    cvs : float or array of float
        Per-model CV (a scalar applies to all).
    duration_s : float
        Length of the trace.
    seed : int
        Base seed.
    stream : int
        Sample index: 0 = test (default), 1 = train; any other integer is another independent sample.
    """
    rates = np.asarray(rates, dtype=np.float64)
    cv_arr = np.broadcast_to(np.asarray(cvs, dtype=np.float64), rates.shape)
    parts = []
    for i, (r, c) in enumerate(zip(rates, cv_arr, strict=True)):
        rng = np.random.default_rng((int(seed), int(stream), i))
        parts.append((gamma_arrivals(float(r), float(c), duration_s, rng, stationary=stationary), i))
    w = Workload.merge(parts, duration_s, len(rates))
    return Workload(w.arrival_s, w.model_id, duration_s, len(rates), spec)


def windowed_gamma_workload(
    rates: np.ndarray,
    cvs: np.ndarray,
    interval_s: float,
    seed: int,
    *,
    stream: int = TEST_STREAM,
    rate_scale: float = 1.0,
    cv_scale: float = 1.0,
    stationary: bool = True,
) -> Workload:
    """Per-window Gamma arrivals: ``rates[m, w]``/``cvs[m, w]`` hold for window ``w`` of model ``m``.

    This is how AlpaServe replays Azure traces (digest 4): each window restarts a Gamma process at
    the window start with rate ``rate * rate_scale`` and CV ``cv * cv_scale``. Windows with rate 0
    (or a non-finite CV) get no arrivals. Model ``m``, window ``w`` draws from
    ``default_rng((seed, stream, m, w))``. Windows start in equilibrium unless ``stationary=False``
    (AlpaServe's fresh restart; see :func:`gamma_arrivals`).
    """
    rates = np.atleast_2d(np.asarray(rates, dtype=np.float64))
    cvs = np.broadcast_to(np.atleast_2d(np.asarray(cvs, dtype=np.float64)), rates.shape)
    n_models, n_win = rates.shape
    parts = []
    for m in range(n_models):
        chunks = []
        for w in range(n_win):
            r, c = rates[m, w] * rate_scale, cvs[m, w] * cv_scale
            if r > 0 and np.isfinite(r) and c > 0 and np.isfinite(c):
                rng = np.random.default_rng((int(seed), int(stream), m, w))
                chunks.append(gamma_arrivals(r, c, interval_s, rng, start_s=w * interval_s, stationary=stationary))
        if chunks:
            parts.append((np.concatenate(chunks), m))
    return Workload.merge(parts, n_win * interval_s, n_models)
