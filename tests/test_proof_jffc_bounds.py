"""Executable checks of proofs/jffc_ergodicity_and_bounds.md (Lemma 3.6 and Theorem 3.7).

The JFFC CTMC is solved exactly here with independent code: the chain censored on Z_1 = {queue empty}
(the arrival out of the all-full state becomes a self-loop) plus the geometric tail pi(n, full) = pi(full) rho^n.
"""

from __future__ import annotations

import itertools
import math
from collections import deque

import numpy as np
import pytest


def _states(c: np.ndarray) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(int(x) + 1) for x in c)))


def _transitions(z: tuple[int, ...], lam: float, mu: np.ndarray, c: np.ndarray):
    """Transitions out of z in Z_1; the arrival at the full state goes to the tail (returned as None)."""
    free = [l for l in range(len(c)) if z[l] < c[l]]
    if free:
        nz = list(z)
        nz[free[0]] += 1
        yield tuple(nz), lam
    else:
        yield None, lam
    for l in range(len(c)):
        if z[l] > 0:
            nz = list(z)
            nz[l] -= 1
            yield tuple(nz), z[l] * mu[l]


def exact_jffc(lam: float, mu: np.ndarray, c: np.ndarray):
    """Exact stationary quantities: (E[N], p_n for n=0..C, conditional death rates nu_n for n=1..C)."""
    order = np.argsort(-mu, kind="stable")
    mu, c = mu[order], c[order]
    states = _states(c)
    index = {z: i for i, z in enumerate(states)}
    S = len(states)
    Q = np.zeros((S, S))
    for z in states:
        for nz, rate in _transitions(z, lam, mu, c):
            if nz is None:
                continue  # censored: the excursion into the tail returns to this same state
            Q[index[z], index[nz]] += rate
            Q[index[z], index[z]] -= rate
    A = np.vstack([Q.T, np.ones(S)])
    b = np.zeros(S + 1)
    b[-1] = 1.0
    pi_c = np.linalg.lstsq(A, b, rcond=None)[0]
    assert np.all(pi_c > 0)
    nu = float(mu @ c)
    rho = lam / nu
    full = index[tuple(int(x) for x in c)]
    Z = 1.0 + pi_c[full] * rho / (1 - rho)
    pi = pi_c / Z
    C = int(c.sum())
    njobs = np.array([sum(z) for z in states])
    d = np.array([float(np.dot(z, mu)) for z in states])
    p = np.array([pi[njobs == n].sum() for n in range(C + 1)])
    nu_n = np.array([(pi[njobs == n] * d[njobs == n]).sum() / p[n] for n in range(1, C + 1)])
    mean = float(pi @ njobs) + pi[full] * (C * rho / (1 - rho) + rho / (1 - rho) ** 2)
    return mean, p, nu_n


def death_rate_bounds(mu: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nu_low_n, nu_high_n) for n = 1..C from the theorem's formulas."""
    order = np.argsort(-mu, kind="stable")
    mu, c = mu[order], c[order]
    C = int(c.sum())
    high, low = np.zeros(C), np.zeros(C)
    for n in range(1, C + 1):
        high[n - 1] = sum(mu[l] * min(c[l], max(n - c[:l].sum(), 0)) for l in range(len(c)))
        low[n - 1] = sum(mu[l] * min(c[l], max(n - c[l + 1 :].sum(), 0)) for l in range(len(c)))
    return low, high


def bound_B(lam: float, eta: np.ndarray, nu: float) -> float:
    """B(eta) exactly as displayed in Theorem 3.7."""
    C = eta.size
    rho = lam / nu
    prods = [math.prod(lam / eta[i] for i in range(n)) for n in range(C + 1)]
    Z = 1 + sum(lam**l / math.prod(eta[:l]) for l in range(1, C)) + lam**C * nu / (math.prod(eta) * (nu - lam))
    phi = [x / Z for x in prods]
    return sum(n * phi[n] for n in range(C)) + phi[C] * (rho / (1 - rho) ** 2 + C / (1 - rho))


def _random_case(rng: np.random.Generator):
    K = int(rng.integers(1, 4))
    mu = rng.uniform(0.2, 3.0, size=K)
    c = rng.integers(1, 4, size=K)
    lam = float(rng.uniform(0.05, 0.95)) * float(mu @ c)
    return lam, mu, c


def test_chain_is_irreducible_and_drifts_down_outside_finite_set():
    rng = np.random.default_rng(1)
    for _ in range(20):
        lam, mu, c = _random_case(rng)
        order = np.argsort(-mu, kind="stable")
        mu, c = mu[order], c[order]
        states = _states(c)
        graph = {z: [nz for nz, r in _transitions(z, lam, mu, c) if nz is not None and r > 0] for z in states}
        full = tuple(int(x) for x in c)
        zero = tuple(0 for _ in c)
        for start, goal in [(zero, None), (full, None)]:
            seen, todo = {start}, deque([start])
            while todo:
                for nz in graph[todo.popleft()]:
                    if nz not in seen:
                        seen.add(nz)
                        todo.append(nz)
            assert seen == set(states), goal
        # In Z_2 (queue non-empty) the drift of N is lambda - nu < 0 for lambda < nu.
        assert lam - float(mu @ c) < 0


def test_cut_equations_death_rate_bounds_and_theorem_37():
    rng = np.random.default_rng(2)
    strict = 0
    for _ in range(60):
        lam, mu, c = _random_case(rng)
        mean, p, nu_n = exact_jffc(lam, mu, c)
        low, high = death_rate_bounds(mu, c)
        nu = float(mu @ c)
        # cut equations lambda p_{n-1} = nu_n p_n (nu_n defined from pi; the check is that p is birth-death)
        np.testing.assert_allclose(lam * p[:-1], nu_n * p[1:], rtol=1e-8)
        assert np.all(low <= nu_n * (1 + 1e-9)) and np.all(nu_n <= high * (1 + 1e-9))
        assert high[-1] == pytest.approx(nu) and low[-1] == pytest.approx(nu)
        # the birth-death process with the exact nu_n reproduces the exact mean
        assert bound_B(lam, nu_n, nu) == pytest.approx(mean, rel=1e-8)
        lower, upper = bound_B(lam, high, nu), bound_B(lam, low, nu)
        assert lower <= mean * (1 + 1e-9) and mean <= upper * (1 + 1e-9)
        if lower < mean * (1 - 1e-6) and mean < upper * (1 - 1e-6):
            strict += 1
    assert strict > 0, "with distinct chain rates the bounds are not tight"


@pytest.mark.parametrize("servers", [1, 2, 4])
def test_single_chain_is_erlang_c(servers):
    mu, lam = 1.3, 0.8 * 1.3 * servers
    a = lam / mu
    rho = a / servers
    tail = a**servers / math.factorial(servers) / (1 - rho)
    p_wait = tail / (sum(a**k / math.factorial(k) for k in range(servers)) + tail)
    erlang_mean = a + p_wait * rho / (1 - rho)
    mean, _, _ = exact_jffc(lam, np.array([mu]), np.array([servers]))
    low, high = death_rate_bounds(np.array([mu]), np.array([servers]))
    nu = mu * servers
    for value in (mean, bound_B(lam, low, nu), bound_B(lam, high, nu)):
        assert value == pytest.approx(erlang_mean, rel=1e-9)


def test_project_ctmc_and_bounds_agree():
    ctmc = pytest.importorskip("serveplan.chain.ctmc")
    bounds = pytest.importorskip("serveplan.chain.bounds")
    from serveplan.errors import InputError

    rng = np.random.default_rng(3)
    for _ in range(30):
        lam, mu, c = _random_case(rng)
        mean, _, _ = exact_jffc(lam, mu, c)
        low, high = death_rate_bounds(mu, c)
        nu = float(mu @ c)
        st = ctmc.jffc_steady_state(lam, mu, c)
        assert st.mean_jobs == pytest.approx(mean, rel=1e-7)
        b = bounds.theorem37_bounds(lam, mu, c)
        assert b.lower_jobs == pytest.approx(bound_B(lam, high, nu), rel=1e-9)
        assert b.upper_jobs == pytest.approx(bound_B(lam, low, nu), rel=1e-9)
        assert b.lower_jobs <= st.mean_jobs * (1 + 1e-9) <= b.upper_jobs * (1 + 2e-9)
        # Lemma 3.6: stability exactly when lambda < nu
        assert bounds.is_stable(lam, mu, c) and not bounds.is_stable(nu, mu, c)
        with pytest.raises(InputError):
            bounds.theorem37_bounds(nu * 1.01, mu, c)
