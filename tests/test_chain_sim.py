"""Chain serving simulator: hand-checked tiny runs, kernel vs reference, queueing-theory checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from serveplan.chain.simulator import SimulationResult, simulate, simulate_poisson
from serveplan.errors import InputError

ARRIVALS = [0.0, 0.1, 0.2, 0.3]
SIZES = [1.0, 1.0, 1.0, 1.0]
T_CHAIN = [1.0, 2.0]  # chain 0 twice as fast as chain 1


def run(policy, capacity, *, seed=0, reference=False):
    mu = 1.0 / np.array(T_CHAIN)
    return simulate(ARRIVALS, SIZES, T_CHAIN, capacity, mu=mu, policy=policy, seed=seed, reference=reference)


def check(res, start, finish, chain):
    np.testing.assert_allclose(res.start_s, start)
    np.testing.assert_allclose(res.finish_s, finish)
    np.testing.assert_array_equal(res.chain, chain)


@pytest.mark.parametrize("reference", [False, True])
def test_jffc_hand_checked(reference):
    # job0 -> chain0, job1 -> chain0 (still a free slot), job2 -> chain1, job3 waits for chain0 at t=1.
    res = run("jffc", [2, 1], reference=reference)
    check(res, [0, 0.1, 0.2, 1.0], [1.0, 1.1, 2.2, 2.0], [0, 0, 1, 0])


@pytest.mark.parametrize("reference", [False, True])
def test_jffc_capacity_one_queue_fifo(reference):
    res = run("jffc", [1, 1], reference=reference)
    check(res, [0, 0.1, 1.0, 2.0], [1.0, 2.1, 2.0, 3.0], [0, 1, 0, 0])


@pytest.mark.parametrize("reference", [False, True])
def test_sa_jsq_hand_checked(reference):
    # job1 prefers the chain with fewer jobs (chain1, Z=0) over the faster chain0 (Z=1).
    res = run("sa_jsq", [2, 1], reference=reference)
    check(res, [0, 0.1, 0.2, 1.0], [1.0, 2.1, 1.2, 2.0], [0, 1, 0, 0])


@pytest.mark.parametrize("reference", [False, True])
def test_jsq_hand_checked(reference):
    # per-chain queues: job2 ties (1,1) -> faster chain0 queue; job3 (2,1) -> chain1 queue, starts at 2.1.
    res = run("jsq", [1, 1], reference=reference)
    check(res, [0, 0.1, 1.0, 2.1], [1.0, 2.1, 2.0, 4.1], [0, 1, 0, 1])


@pytest.mark.parametrize("reference", [False, True])
def test_sed_hand_checked(reference):
    # SED values 1/mu + (Z-c+1)+/(mu c): job1 ties 2 vs 2 -> chain0 (queued); job2 3 vs 2 -> chain1;
    # job3 3 vs 4 -> chain0 (queued behind job1).
    res = run("sed", [1, 1], reference=reference)
    check(res, [0, 1.0, 0.2, 2.0], [1.0, 2.0, 2.2, 3.0], [0, 0, 1, 0])


@pytest.mark.parametrize("reference", [False, True])
def test_jiq_hand_checked(reference):
    # job0 picks a random idle chain, job1 the other idle chain, job2 the only chain with a slot (chain0),
    # job3 waits for the first completion on chain0.
    seen = set()
    for seed in range(20):
        res = run("jiq", [2, 1], seed=seed, reference=reference)
        first = int(res.chain[0])
        seen.add(first)
        if first == 0:
            check(res, [0, 0.1, 0.2, 1.0], [1.0, 2.1, 1.2, 2.0], [0, 1, 0, 0])
        else:
            check(res, [0, 0.1, 0.2, 1.1], [2.0, 1.1, 1.2, 2.1], [1, 0, 0, 0])
    assert seen == {0, 1}


@pytest.mark.parametrize("policy", ["jffc", "sa_jsq", "jiq", "jsq", "sed"])
def test_kernel_equals_reference(policy):
    rng = np.random.default_rng(7)
    mu = rng.uniform(0.3, 3.0, 6)
    cap = rng.integers(1, 4, 6)
    lam = 0.85 * float(mu @ cap)
    a = simulate_poisson(mu, cap, lam, 4000, policy=policy, seed=11)
    b = simulate_poisson(mu, cap, lam, 4000, policy=policy, seed=11, reference=True)
    np.testing.assert_array_equal(a.chain, b.chain)
    np.testing.assert_allclose(a.start_s, b.start_s, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.finish_s, b.finish_s, rtol=0, atol=1e-9)


def test_multi_feature_service_equals_dot_product():
    feats = np.array([[1.0, 10.0], [1.0, 20.0]])
    coef = np.array([[0.5, 0.1], [1.0, 0.2]])
    res = simulate([0.0, 0.0], feats, coef, [1, 1], policy="jffc")
    # mean service times: chain0 0.5+1.5=2.0, chain1 1+3=4 -> chain0 is fastest
    np.testing.assert_allclose(res.service_s, [1.5, 5.0])
    np.testing.assert_array_equal(res.chain, [0, 1])


@pytest.mark.parametrize("policy", ["jffc", "jsq", "jiq"])
def test_deterministic_for_a_seed(policy):
    a = simulate_poisson([1.0, 0.5, 0.2], [2, 3, 1], 2.0, 2000, policy=policy, seed=5)
    b = simulate_poisson([1.0, 0.5, 0.2], [2, 3, 1], 2.0, 2000, policy=policy, seed=5)
    c = simulate_poisson([1.0, 0.5, 0.2], [2, 3, 1], 2.0, 2000, policy=policy, seed=6)
    np.testing.assert_array_equal(a.finish_s, b.finish_s)
    assert not np.array_equal(a.finish_s, c.finish_s)


def erlang_c_response(lam, mu, c):
    """Mean response time of M/M/c."""
    a = lam / mu
    rho = a / c
    s = sum(a**k / math.factorial(k) for k in range(c))
    top = a**c / (math.factorial(c) * (1 - rho))
    p_wait = top / (s + top)
    return p_wait / (c * mu - lam) + 1 / mu


def test_single_chain_is_mmc():
    # One chain with c slots under JFFC is an M/M/c queue. 400k jobs at rho=0.8: the batch-means CI of the
    # mean response is about 1%; allow 3%.
    lam, mu, c = 3.2, 1.0, 4
    res = simulate_poisson([mu], [c], lam, 400_000, seed=3)
    got = res.metrics(warmup=0.05)["response_mean"]
    assert got == pytest.approx(erlang_c_response(lam, mu, c), rel=0.03)


def test_littles_law_long_run():
    rng = np.random.default_rng(2)
    mu = rng.uniform(0.2, 2.0, 8)
    cap = rng.integers(1, 5, 8)
    lam = 0.8 * float(mu @ cap)
    res = simulate_poisson(mu, cap, lam, 200_000, seed=9)
    # time-average number in system over [t0, t1] by an event sweep, vs lambda_hat * W of the jobs that
    # arrive in the window (their responses are short compared with the window, so edges are negligible)
    t0, t1 = res.arrival_s[20_000], res.arrival_s[-20_000]
    times = np.concatenate([res.arrival_s, res.finish_s])
    delta = np.concatenate([np.ones_like(res.arrival_s), -np.ones_like(res.finish_s)])
    order = np.lexsort((-delta, times))
    times, delta = times[order], delta[order]
    count = np.cumsum(delta)
    inside = (times >= t0) & (times <= t1)
    ts = np.concatenate([[t0], times[inside], [t1]])
    n0 = count[np.searchsorted(times, t0, side="right") - 1]
    ns = np.concatenate([[n0], count[inside]])
    area = float(np.sum(ns * np.diff(ts)))
    mean_n = area / (t1 - t0)
    in_window = (res.arrival_s >= t0) & (res.arrival_s <= t1)
    lam_hat = in_window.sum() / (t1 - t0)
    w = res.response_s[in_window].mean()
    assert mean_n == pytest.approx(lam_hat * w, rel=0.01)


def test_metrics_and_trimming():
    res = SimulationResult(
        np.array([0.0, 1.0, 2.0, 3.0]),
        np.array([0.0, 1.5, 2.0, 3.0]),
        np.array([1.0, 2.5, 4.0, 3.5]),
        np.zeros(4, dtype=np.int64),
        "jffc",
    )
    m = res.metrics()
    assert m["response_mean"] == pytest.approx((1 + 1.5 + 2 + 0.5) / 4)
    assert m["waiting_max"] == pytest.approx(0.5)
    assert m["service_median"] == pytest.approx(1.0)
    assert res.metrics(warmup=0.5)["num_requests"] == 2
    assert res.metrics(warmup=3)["response_mean"] == pytest.approx(0.5)


def test_bad_inputs_raise_input_error():
    with pytest.raises(InputError):
        simulate([1.0, 0.0], [1, 1], [1.0], [1])
    with pytest.raises(InputError):
        simulate([0.0], [1.0], [1.0], [0])
    with pytest.raises(InputError):
        simulate([0.0], [1.0], [1.0], [1], policy="fastest")


def batch_means_se(x, batches=20):
    n = len(x) // batches
    means = np.array([x[i * n : (i + 1) * n].mean() for i in range(batches)])
    return means.std(ddof=1) / math.sqrt(batches)


@pytest.mark.parametrize("load", [0.3, 0.6, 0.85])
@pytest.mark.parametrize("instance_seed", [0, 1])
def test_jffc_within_theorem37_bounds(load, instance_seed):
    from serveplan.chain.bounds import theorem37_bounds

    rng = np.random.default_rng(100 + instance_seed)
    k = int(rng.integers(2, 6))
    mu = rng.uniform(0.1, 2.0, k)
    cap = rng.integers(1, 6, k)
    lam = load * float(mu @ cap)
    b = theorem37_bounds(lam, mu, cap)
    res = simulate_poisson(mu, cap, lam, 200_000, seed=instance_seed)
    r = res.trimmed(0.05).response_s
    # the bounds hold for the stationary mean; the estimate's standard error comes from 20 batch means
    # (batches of ~9,500 jobs, much longer than the correlation time at these loads); 4 standard errors
    # make a false failure improbable (< 1e-4 per side under normality)
    se = batch_means_se(r)
    assert b.lower_s - 4 * se <= r.mean() <= b.upper_s + 4 * se
