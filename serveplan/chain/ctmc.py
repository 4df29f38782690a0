"""Exact numerical solution of the JFFC Markov chain (Sun, He, Hou 2026, section "JFFC") for small chain sets.

State (z_0, z_1, ..., z_K): z_0 jobs in the central queue, z_l jobs on chain l (chains sorted by decreasing rate,
ties by index). Arrivals (rate lambda) join the fastest chain with a free slot, or the queue when all are full;
a departure from chain l (rate z_l mu_l) frees a slot, which the head-of-queue job takes at once when z_0 > 0.

The states with z_0 >= 1 all have every chain full, and from there the chain is a birth-death process with
rates lambda and nu = sum c_l mu_l that only returns through the all-full state. So the stationary law restricted
to Z_1 = {z_0 = 0} is that of the chain *censored* on Z_1 (the arrival out of the full state becomes a
self-loop), and pi(n, full) = pi(full) rho^n with rho = lambda / nu. The tail is therefore summed exactly; the
state space that is solved numerically is the finite Z_1, of size prod_l (c_l + 1). Optionally the queue can
instead be truncated at ``queue_cap`` (arrivals to a full queue lost), which is the textbook truncated chain.

The linear system pi Q = 0, sum pi = 1 is solved with a sparse LU factorisation; cost grows with
prod_l (c_l + 1), so keep it to a few hundred thousand states (``max_states``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from serveplan.errors import InputError


@dataclass(frozen=True)
class JffcSteadyState:
    """Steady state of the JFFC chain.

    Attributes
    ----------
    mean_jobs : float
        E[sum_l Z_l] (queue included).
    mean_response_s : float
        mean_jobs / lambda (Little's law).
    prob_all_full : float
        Probability that every chain is full (an arrival waits or is queued).
    num_states : int
        States solved numerically.
    """

    mean_jobs: float
    mean_response_s: float
    prob_all_full: float
    num_states: int


def jffc_steady_state(
    arrival_rate: float,
    rates: np.ndarray,
    capacities: np.ndarray,
    *,
    queue_cap: int | None = None,
    max_states: int = 300_000,
) -> JffcSteadyState:
    """Solve the JFFC CTMC exactly (tail in closed form) or with the queue truncated at ``queue_cap``.

    Parameters
    ----------
    arrival_rate : float
        lambda (> 0; < nu unless ``queue_cap`` is given).
    rates, capacities : arrays
        mu_k and c_k of each chain (zero-capacity chains ignored).
    queue_cap : int, optional
        Truncate the central queue at this length instead of summing the geometric tail.
    max_states : int, default 300000
        Refuse larger state spaces.
    """
    rates = np.asarray(rates, dtype=float)
    caps = np.asarray(capacities, dtype=np.int64)
    keep = caps > 0
    order = np.argsort(-rates[keep], kind="stable")
    mu = rates[keep][order]
    c = caps[keep][order]
    if mu.size == 0:
        raise InputError("no chain has capacity", field="capacities", value=capacities)
    nu = float(np.dot(mu, c))
    rho = arrival_rate / nu
    if queue_cap is None and rho >= 1:
        raise InputError("unstable: lambda >= total service rate (Lemma 3.6)", value=(arrival_rate, nu))
    sizes = c + 1
    num_states = int(np.prod(sizes.astype(float)))
    if num_states > max_states:
        raise InputError("state space too large for the exact CTMC", field="max_states", value=num_states)
    K = mu.size
    strides = np.ones(K, dtype=np.int64)
    for l in range(K - 2, -1, -1):
        strides[l] = strides[l + 1] * sizes[l + 1]
    idx = np.arange(num_states, dtype=np.int64)
    Z = (idx[:, None] // strides[None, :]) % sizes[None, :]
    rows, cols, vals = [], [], []
    # arrivals: the fastest chain with a free slot (censored: none from the all-full state)
    free = c[None, :] > Z
    has_free = free.any(axis=1)
    target = np.argmax(free, axis=1)
    src = idx[has_free]
    rows.append(src)
    cols.append(src + strides[target[has_free]])
    vals.append(np.full(src.size, arrival_rate))
    for l in range(K):
        busy = Z[:, l] > 0
        s = idx[busy]
        rows.append(s)
        cols.append(s - strides[l])
        vals.append(Z[busy, l] * mu[l])
    r = np.concatenate(rows)
    q = np.concatenate(cols)
    v = np.concatenate(vals)
    out_rate = np.bincount(r, weights=v, minlength=num_states)
    Q = sp.coo_matrix((v, (r, q)), shape=(num_states, num_states)).tocsr() - sp.diags(out_rate)
    A = Q.T.tolil()
    A[num_states - 1, :] = np.ones(num_states)
    b = np.zeros(num_states)
    b[-1] = 1.0
    pi = spla.spsolve(A.tocsc(), b)
    pi = np.maximum(pi, 0.0)
    pi /= pi.sum()
    full = num_states - 1  # all chains full: the last index in mixed radix
    C = int(c.sum())
    jobs_z1 = float(np.dot(pi, Z.sum(axis=1)))
    if queue_cap is None:
        tail_mass = rho / (1 - rho)
        tail_jobs = C * rho / (1 - rho) + rho / (1 - rho) ** 2
    else:
        n = np.arange(1, queue_cap + 1, dtype=float)
        tail_mass = float(np.sum(rho**n))
        tail_jobs = float(np.sum((C + n) * rho**n))
    norm = 1.0 + pi[full] * tail_mass
    mean_jobs = (jobs_z1 + pi[full] * tail_jobs) / norm
    p_full = pi[full] * (1 + tail_mass) / norm
    return JffcSteadyState(mean_jobs, mean_jobs / arrival_rate, float(p_full), num_states)
