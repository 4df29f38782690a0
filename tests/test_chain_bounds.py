"""Theorem 3.7 bounds (log space), Lemma 3.6 stability, and the exact JFFC CTMC."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serveplan.chain.bounds import is_stable, solution_bound_metrics, theorem37_bounds
from serveplan.chain.ctmc import jffc_steady_state
from serveplan.chain.instance import ChainInstance, Server
from serveplan.chain.placement import Chain, ChainSolution, Placement
from serveplan.errors import InputError


def erlang_c_mean_jobs(lam: float, mu: float, c: int) -> float:
    a = lam / mu
    rho = a / c
    p0 = 1 / (sum(a**k / math.factorial(k) for k in range(c)) + a**c / math.factorial(c) / (1 - rho))
    lq = p0 * a**c * rho / (math.factorial(c) * (1 - rho) ** 2)
    return lq + a


@pytest.mark.parametrize(("lam", "mu", "c"), [(0.5, 1.0, 1), (2.0, 1.0, 3), (5.5, 0.7, 9), (0.1, 2.0, 4)])
def test_single_chain_is_mmc(lam, mu, c):
    expected = erlang_c_mean_jobs(lam, mu, c)
    exact = jffc_steady_state(lam, np.array([mu]), np.array([c]))
    bounds = theorem37_bounds(lam, np.array([mu]), np.array([c]))
    assert exact.mean_jobs == pytest.approx(expected, rel=1e-9)
    assert bounds.lower_jobs == pytest.approx(expected, rel=1e-9)
    assert bounds.upper_jobs == pytest.approx(expected, rel=1e-9)
    assert bounds.lower_s == pytest.approx(expected / lam)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("load", [0.1, 0.5, 0.8, 0.97])
def test_bounds_bracket_the_exact_ctmc(seed, load):
    rng = np.random.default_rng(seed)
    K = int(rng.integers(2, 5))
    mu = rng.uniform(0.1, 3.0, size=K)
    caps = rng.integers(1, 5, size=K)
    lam = load * float(mu @ caps)
    exact = jffc_steady_state(lam, mu, caps)
    b = theorem37_bounds(lam, mu, caps)
    assert b.lower_jobs <= exact.mean_jobs * (1 + 1e-9)
    assert exact.mean_jobs <= b.upper_jobs * (1 + 1e-9)
    assert b.lower_s <= exact.mean_response_s * (1 + 1e-9) <= b.upper_s * (1 + 1e-9) ** 2


@settings(max_examples=25, deadline=None)
@given(
    mu=st.lists(st.floats(0.05, 5.0), min_size=1, max_size=4),
    caps=st.lists(st.integers(0, 4), min_size=4, max_size=4),
    load=st.floats(0.01, 0.99),
)
def test_bounds_bracket_ctmc_property(mu, caps, load):
    caps = caps[: len(mu)]
    if sum(caps) == 0:
        caps[0] = 1
    mu_a, caps_a = np.array(mu), np.array(caps)
    lam = load * float(mu_a @ caps_a)
    exact = jffc_steady_state(lam, mu_a, caps_a)
    b = theorem37_bounds(lam, mu_a, caps_a)
    assert b.lower_jobs <= exact.mean_jobs * (1 + 1e-7) + 1e-12
    assert exact.mean_jobs <= b.upper_jobs * (1 + 1e-7) + 1e-12


def test_truncated_ctmc_converges_to_the_exact_tail():
    mu, caps = np.array([1.5, 0.6]), np.array([2, 3])
    lam = 0.8 * float(mu @ caps)
    exact = jffc_steady_state(lam, mu, caps)
    short = jffc_steady_state(lam, mu, caps, queue_cap=5)
    long = jffc_steady_state(lam, mu, caps, queue_cap=400)
    assert short.mean_jobs < long.mean_jobs
    assert long.mean_jobs == pytest.approx(exact.mean_jobs, rel=1e-9)
    assert 0 < exact.prob_all_full < 1


def test_bounds_in_log_space_do_not_overflow_for_large_c():
    rng = np.random.default_rng(0)
    mu = rng.uniform(0.05, 0.2, size=40)
    caps = rng.integers(10, 30, size=40)  # C in the hundreds
    nu = float(mu @ caps)
    for load in (0.05, 0.5, 0.95, 0.999):
        b = theorem37_bounds(load * nu, mu, caps)
        assert b.total_capacity == caps.sum() > 500
        assert math.isfinite(b.lower_jobs) and math.isfinite(b.upper_jobs)
        assert 0 < b.lower_jobs <= b.upper_jobs
        # response time is at least the fastest chain's service time and at most the slowest's plus waiting
        assert b.lower_s >= 1 / mu.max() - 1e-9
    # light load: jobs sit on the fastest (lower) / slowest (upper) job servers
    light = theorem37_bounds(1e-6 * nu, mu, caps)
    assert light.lower_s == pytest.approx(1 / mu.max(), rel=1e-4)
    assert light.upper_s == pytest.approx(1 / mu.min(), rel=1e-4)


def test_instability_is_reported():
    mu, caps = np.array([1.0, 0.5]), np.array([1, 2])
    assert is_stable(1.99, mu, caps) and not is_stable(2.0, mu, caps)
    with pytest.raises(InputError, match="unstable"):
        theorem37_bounds(2.0, mu, caps)
    with pytest.raises(InputError, match="unstable"):
        jffc_steady_state(2.5, mu, caps)
    with pytest.raises(InputError, match="too large"):
        jffc_steady_state(1.0, np.ones(10), np.full(10, 9))


def test_solution_bound_metrics():
    inst = ChainInstance((Server("a", 10.0, 1.0, 0.5), Server("b", 10.0, 0.5, 0.25)), 2, 1.0, 1.0, 0.4)
    sol = ChainSolution(Placement((1, 1), (2, 2)), (Chain((0,), (2,)), Chain((1,), (2,)), Chain((1,), (2,))), (2, 1, 0))
    m = solution_bound_metrics(inst, sol)
    assert m["num_chains"] == 2 and m["job_servers"] == 3
    assert m["total_rate"] == pytest.approx(2 / 2.0 + 1 / 1.0)
    assert m["lower_response_s"] <= m["upper_response_s"]
    overloaded = solution_bound_metrics(inst.with_arrival_rate(5.0), sol)
    assert math.isinf(overloaded["lower_response_s"])


def test_bounds_with_thousands_of_job_servers():
    mu = np.linspace(0.05, 1.0, 200)
    caps = np.full(200, 25)  # C = 5000: the products of lambda/nu_i over/underflow without log space
    nu = float(mu @ caps)
    b = theorem37_bounds(0.9 * nu, mu, caps)
    assert b.total_capacity == 5000
    assert math.isfinite(b.lower_s) and math.isfinite(b.upper_s) and 0 < b.lower_s <= b.upper_s


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("load", [0.3, 0.7, 0.95])
def test_bounds_bracket_ctmc_on_gca_chain_sets(seed, load):
    from heuristics.gbp_cr import gbp_cr
    from heuristics.gca import gca
    from serveplan.chain.experiments import tiny_instance

    inst = tiny_instance(5, 3, arrival_rate=0.2, seed=seed)
    run = gbp_cr(inst, 1, stop_rule="max_chains")
    if not run.chains:
        run = gbp_cr(inst.with_arrival_rate(0.01), 1, stop_rule="max_chains")
    alloc = gca(inst, run.placement)
    assert alloc.chains, "tiny instance without a chain"
    mu = 1.0 / np.asarray(alloc.service_times_s)
    caps = np.asarray(alloc.capacities)
    lam = load * float(mu @ caps)
    exact = jffc_steady_state(lam, mu, caps)
    b = theorem37_bounds(lam, mu, caps)
    assert b.lower_jobs <= exact.mean_jobs * (1 + 1e-9) and exact.mean_jobs <= b.upper_jobs * (1 + 1e-9)
