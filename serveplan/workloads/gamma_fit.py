"""Maximum-likelihood Gamma fit of inter-arrival gaps (location fixed at 0).

AlpaServe fits every MAF2 window with ``scipy.stats.gamma.fit(gaps, floc=0)`` (digest 4). The MLE
with the location fixed has a closed-form start (Minka 2002) refined by Newton steps on the shape,
which is what this module does: deterministic, warning-free, and O(n).
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, polygamma


def fit_gamma(samples: np.ndarray) -> tuple[float, float]:
    """MLE ``(shape, scale)`` of a Gamma distribution with location 0.

    Solves ``log(k) - digamma(k) = log(mean) - mean(log x)`` by Newton's method from Minka's
    approximation; ``scale = mean / k``. Samples must be positive; at least two distinct values
    are needed (else the shape is infinite and ``(inf, 0)`` is returned).
    """
    x = np.asarray(samples, dtype=np.float64)
    mean = float(x.mean())
    s = float(np.log(mean) - np.log(x).mean())
    if not s > 1e-12:
        return float("inf"), 0.0
    k = (3.0 - s + np.sqrt((s - 3.0) ** 2 + 24.0 * s)) / (12.0 * s)
    for _ in range(50):
        f = np.log(k) - digamma(k) - s
        df = 1.0 / k - polygamma(1, k)
        step = f / df
        k_new = k - step
        if k_new <= 0:
            k_new = k / 2.0
        if abs(k_new - k) < 1e-12 * k:
            k = k_new
            break
        k = k_new
    return float(k), mean / float(k)


def fit_rate_cv(arrivals: np.ndarray, window_s: float) -> tuple[float, float]:
    """AlpaServe's per-window fit: Gamma MLE of the gaps (+1e-6 s), rate = 1/(k scale), cv = sqrt(1/k).

    If the fitted rate exceeds 5x the empirical rate ``len(arrivals)/window_s``, the empirical rate
    is used (as the reference code does). Needs at least 3 arrivals (else ``(nan, nan)``).
    """
    arr = np.asarray(arrivals, dtype=np.float64)
    if arr.size < 3:
        return float("nan"), float("nan")
    gaps = np.diff(arr) + 1e-6
    k, scale = fit_gamma(gaps)
    empirical = arr.size / window_s
    if not np.isfinite(k) or scale <= 0:
        return empirical, 1e-3
    rate = 1.0 / (k * scale)
    if rate > 5 * empirical:
        rate = empirical
    return float(rate), float(np.sqrt(1.0 / k))
