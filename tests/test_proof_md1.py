"""Executable checks of proofs/md1_tolerable_overhead.md (AlpaServe section 3 queueing analysis).

The simulation is written here from the max-plus recursion, independently of the project's simulators.
"""

from __future__ import annotations

import numpy as np
import pytest


def w_md1(lam: float, D: float) -> float:
    return D + lam * D**2 / (2 * (1 - lam * D))


def w_simple(p: float, lam: float, D: float) -> float:
    return D + p**2 * lam * D**2 / (2 * (1 - p * lam * D)) + (1 - p) ** 2 * lam * D**2 / (2 * (1 - (1 - p) * lam * D))


def w_pipe(lam: float, Ds: float, Dm: float) -> float:
    return Ds + lam * Dm**2 / (2 * (1 - lam * Dm))


def alpha_max(r: float) -> float:
    return (r**2 - 8 + np.sqrt(r**4 - 12 * r**3 + 56 * r**2 - 96 * r + 64)) / (3 * (r**2 - 2 * r))


def beta_max(r: float) -> float:
    return (r - np.sqrt(r**2 - 4 * r + 8)) / (r - 2)


def _bisect(f, lo: float, hi: float, iters: int = 200) -> float:
    """Root of an increasing function with f(lo) < 0 < f(hi)."""
    assert f(lo) < 0 < f(hi)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def tandem_departures(arrivals: np.ndarray, stages: list[float]) -> np.ndarray:
    """d_k(n) = max(d_{k-1}(n), d_k(n-1)) + s_k: FCFS deterministic tandem line."""
    d = arrivals.astype(float).copy()
    for s in stages:
        out = np.empty_like(d)
        clock = -np.inf
        for n, t in enumerate(d):
            clock = max(t, clock) + s
            out[n] = clock
        d = out
    return d


@pytest.mark.parametrize("r", np.linspace(0.05, 1.95, 39))
def test_tolerance_closed_forms_are_the_break_even_points(r):
    D = 1.0
    lam = r / D
    target = w_simple(0.5, lam, D)
    a = _bisect(lambda x: w_pipe(lam, x * D, x * D / 2) - target, 1.0, 2.0 / r - 1e-12)
    b = _bisect(lambda x: w_pipe(lam, D, x * D / 2) - target, 1.0, min(2.0, 2.0 / r) - 1e-12)
    assert alpha_max(r) == pytest.approx(a, rel=1e-9)
    assert beta_max(r) == pytest.approx(b, rel=1e-9)
    assert alpha_max(r) > 1 and beta_max(r) > 1
    # Below the threshold the pipeline is strictly better, above strictly worse.
    assert w_pipe(lam, 0.99 * a * D, 0.99 * a * D / 2) < target < w_pipe(lam, 1.01 * a * D, 1.01 * a * D / 2)


def test_reference_values():
    for r, a, b in [(0.5, 1.069, 1.333), (1.0, 1.1315, 1.236), (1.9, 1.025, 1.025)]:
        assert alpha_max(r) == pytest.approx(a, abs=5e-4)
        assert beta_max(r) == pytest.approx(b, abs=5e-4)


@pytest.mark.parametrize("r", [0.2, 0.8, 1.5, 1.9])
def test_simple_placement_minimised_at_half(r):
    lam, D = r, 1.0
    lo, hi = max(0.0, 1 - 1 / r + 1e-6), min(1.0, 1 / r - 1e-6)
    ps = np.linspace(lo, hi, 2001)
    vals = np.array([w_simple(p, lam, D) for p in ps])
    assert ps[np.argmin(vals)] == pytest.approx(0.5, abs=1e-3)
    assert np.all(np.diff(vals, 2) >= -1e-9)  # convex on the grid
    assert w_simple(0.5, lam, D) == pytest.approx(D + lam * D**2 / (2 * (2 - r)))
    # No overhead: the pipeline's queueing term is exactly half of the simple placement's at p = 1/2.
    assert w_pipe(lam, D, D / 2) - D == pytest.approx(0.5 * (w_simple(0.5, lam, D) - D))


def test_tandem_line_equals_bottleneck_queue_pathwise():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = 300
        # Deliberately non-Poisson: bursts and gaps.
        gaps = rng.choice([0.0, 0.05, 0.3, 2.0], size=n, p=[0.3, 0.3, 0.3, 0.1])
        arrivals = np.cumsum(gaps)
        stages = list(rng.uniform(0.05, 0.4, size=int(rng.integers(2, 5))))
        smax = max(stages)
        lat_tandem = tandem_departures(arrivals, stages) - arrivals
        wait_single = tandem_departures(arrivals, [smax]) - arrivals - smax
        np.testing.assert_allclose(lat_tandem, sum(stages) + wait_single, rtol=0, atol=1e-9)


@pytest.mark.parametrize("r", [0.5, 1.2])
def test_simulation_matches_formulas(r):
    """Independent M/D/1 and 2-stage pipeline simulation vs W formulas (deterministic seed)."""
    D, n = 1.0, 120_000
    lam = r / D
    rng = np.random.default_rng(11)
    arrivals = np.cumsum(rng.exponential(1 / lam, size=n))
    # Simple placement at p = 1/2: split by a fair coin, one M/D/1 queue per GPU.
    to_a = rng.random(n) < 0.5
    lat = np.concatenate(
        [tandem_departures(arrivals[m], [D]) - arrivals[m] for m in (to_a, ~to_a)],
    )
    warm = n // 20
    assert lat[warm:].mean() == pytest.approx(w_simple(0.5, lam, D), rel=0.04)
    # Pipeline with uneven stages beta: stages beta*D/2 and (2-beta)*D/2.
    beta = 1.2
    pipe = tandem_departures(arrivals, [beta * D / 2, (2 - beta) * D / 2]) - arrivals
    assert pipe[warm:].mean() == pytest.approx(w_pipe(lam, D, beta * D / 2), rel=0.04)
    # Single M/D/1 at full rate lam/2 per GPU (claim 1).
    one = tandem_departures(arrivals[to_a], [D]) - arrivals[to_a]
    assert one[warm // 2 :].mean() == pytest.approx(w_md1(lam / 2, D), rel=0.04)
