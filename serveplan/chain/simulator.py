"""Discrete-event simulation of chain serving: chains with capacities c_k and a dispatch policy.

Model (Sun, He, Hou 2026, system model and section "Join-the-Fastest-Free-Chain"): chain k serves up to
c_k jobs at once, each independently (memory-bound regime: concurrent jobs do not slow each other down).
Job i on chain k takes ``features[i] @ coef[k]`` seconds: with ``features = sizes[:, None]`` and
``coef = (1/mu)[:, None]`` this is the paper's r_i / mu_k (Exp(1) sizes r_i); with token features
(:mod:`serveplan.chain.traces`) it is the per-block compute and communication model applied to each
request's own input and output lengths. Dispatch follows one of the policies of
:mod:`serveplan.chain.policies`.

Conventions (fixed so that runs are reproducible and comparable):

* when a completion and an arrival happen at the same instant, the completion is processed first;
* chains are ranked by mu descending, then by index; every "ties to the fastest" rule uses this rank;
* random choices (JIQ only) use one uniform number per arrival, drawn up front from the seed.

The event loop is compiled with numba (:func:`_simulate_kernel`): a binary heap of in-service completion
times, per-chain occupancy counters, for JFFC a min-heap of the ranks of chains with a free slot (O(log K)
per event), for central-queue policies a FIFO that is an index range of the arrival array (while the
central queue is non-empty every chain is full, so queued jobs are consecutive arrivals), and for
per-chain queues linked lists threaded through one "next" array. Total cost O(n log C) for JFFC and
O(n K) for the policies that scan chains, with n jobs, K chains, C = sum c_k.
:func:`simulate_reference` is a plain-Python twin of the same loop, used to test the kernel and as the
benchmark baseline.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from serveplan.chain.policies import CENTRAL_QUEUE, JFFC, JIQ, JSQ, SA_JSQ, policy_code, policy_name
from serveplan.errors import InputError

# ---------------------------------------------------------------------------------------------------
# Records and metrics


@dataclass(frozen=True)
class SimulationResult:
    """Per-request records of one simulation run.

    Attributes
    ----------
    arrival_s, start_s, finish_s : ndarray of float
        Arrival, service start and completion time of every request (seconds, arrival order).
    chain : ndarray of int
        Index of the chain that served each request.
    policy : str
        Dispatch policy name.
    info : dict
        Free-form extras (e.g. the routing mode of a path-level run).
    """

    arrival_s: np.ndarray
    start_s: np.ndarray
    finish_s: np.ndarray
    chain: np.ndarray
    policy: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def response_s(self) -> np.ndarray:
        """Response time (finish - arrival) per request."""
        return self.finish_s - self.arrival_s

    @property
    def waiting_s(self) -> np.ndarray:
        """Waiting time (start - arrival) per request."""
        return self.start_s - self.arrival_s

    @property
    def service_s(self) -> np.ndarray:
        """Service time (finish - start) per request."""
        return self.finish_s - self.start_s

    def trimmed(self, warmup: float = 0.0) -> SimulationResult:
        """The records without the warm-up requests.

        Parameters
        ----------
        warmup : float, default 0
            A fraction in [0, 1) of the requests (by arrival order) to drop, or an integer count >= 1.
        """
        n = len(self.arrival_s)
        if warmup < 0:
            raise InputError("must be >= 0", field="warmup", value=warmup)
        skip = int(warmup) if warmup >= 1 else int(np.floor(warmup * n))
        skip = min(skip, n)
        return SimulationResult(
            self.arrival_s[skip:],
            self.start_s[skip:],
            self.finish_s[skip:],
            self.chain[skip:],
            self.policy,
            dict(self.info),
        )

    def metrics(self, warmup: float = 0.0) -> dict[str, float]:
        """Mean, median, P95, P99 and max of response, waiting and service time (seconds).

        Keys are ``{response,waiting,service}_{mean,median,p95,p99,max,min}`` plus ``num_requests`` and
        ``throughput`` (completed requests per second of simulated time). ``warmup`` as in :meth:`trimmed`.
        """
        r = self.trimmed(warmup) if warmup else self
        out: dict[str, float] = {"num_requests": float(len(r.arrival_s))}
        for name, x in (("response", r.response_s), ("waiting", r.waiting_s), ("service", r.service_s)):
            if len(x) == 0:
                for s in ("mean", "median", "p95", "p99", "max", "min"):
                    out[f"{name}_{s}"] = float("nan")
                continue
            q = np.percentile(x, [50.0, 95.0, 99.0])
            out[f"{name}_mean"] = float(np.mean(x))
            out[f"{name}_median"] = float(q[0])
            out[f"{name}_p95"] = float(q[1])
            out[f"{name}_p99"] = float(q[2])
            out[f"{name}_max"] = float(np.max(x))
            out[f"{name}_min"] = float(np.min(x))
        span = float(r.finish_s.max() - r.arrival_s.min()) if len(r.arrival_s) else 0.0
        out["throughput"] = len(r.arrival_s) / span if span > 0 else float("nan")
        return out


# ---------------------------------------------------------------------------------------------------
# Input checks


def _check_inputs(
    arrival_s: Any, features: Any, coef: Any, capacity: Any, mu: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    arrival = np.ascontiguousarray(arrival_s, dtype=np.float64)
    if arrival.ndim != 1:
        raise InputError("must be a 1-D array", field="arrival_s", value=arrival.shape)
    if len(arrival) and (not np.all(np.isfinite(arrival)) or np.any(np.diff(arrival) < 0)):
        raise InputError("arrival times must be finite and non-decreasing", field="arrival_s")
    feats = np.ascontiguousarray(features, dtype=np.float64)
    if feats.ndim == 1:
        feats = feats[:, None].copy()
    if feats.shape[0] != len(arrival):
        raise InputError("needs one row per arrival", field="features", value=feats.shape)
    if np.any(feats < 0) or not np.all(np.isfinite(feats)):
        raise InputError("job features must be finite and >= 0", field="features")
    cap = np.ascontiguousarray(capacity, dtype=np.int64)
    if cap.ndim != 1 or len(cap) == 0:
        raise InputError("needs at least one chain", field="capacity", value=cap.shape)
    if np.any(cap < 1):
        raise InputError("every chain needs capacity >= 1", field="capacity", value=cap.tolist())
    c = np.ascontiguousarray(coef, dtype=np.float64)
    if c.ndim == 1:
        c = c[:, None].copy()
    if c.shape != (len(cap), feats.shape[1]):
        raise InputError("must have shape (num_chains, num_features)", field="coef", value=c.shape)
    if np.any(c < 0) or not np.all(np.isfinite(c)):
        raise InputError("service coefficients must be finite and >= 0", field="coef")
    m = np.ascontiguousarray(mu, dtype=np.float64)
    if m.shape != cap.shape or np.any(m <= 0) or not np.all(np.isfinite(m)):
        raise InputError("needs one positive rate per chain", field="mu")
    return arrival, feats, c, cap, m


def chain_rank(mu: np.ndarray) -> np.ndarray:
    """Chain indices sorted by mu descending, then by index (the tie order of every policy)."""
    return np.lexsort((np.arange(len(mu)), -np.asarray(mu, dtype=float))).astype(np.int64)


# ---------------------------------------------------------------------------------------------------
# Compiled event loop


@numba.njit(cache=True, inline="always")
def _heap_push(ht: np.ndarray, hj: np.ndarray, size: int, t: float, j: int) -> int:
    pos = size
    ht[pos] = t
    hj[pos] = j
    while pos > 0:
        parent = (pos - 1) >> 1
        if ht[parent] < ht[pos] or (ht[parent] == ht[pos] and hj[parent] <= hj[pos]):
            break
        ht[parent], ht[pos] = ht[pos], ht[parent]
        hj[parent], hj[pos] = hj[pos], hj[parent]
        pos = parent
    return size + 1


@numba.njit(cache=True, inline="always")
def _heap_pop(ht: np.ndarray, hj: np.ndarray, size: int) -> int:
    size -= 1
    ht[0] = ht[size]
    hj[0] = hj[size]
    pos = 0
    while True:
        left = 2 * pos + 1
        if left >= size:
            break
        best = left
        right = left + 1
        if right < size and (ht[right] < ht[left] or (ht[right] == ht[left] and hj[right] < hj[left])):
            best = right
        if ht[pos] < ht[best] or (ht[pos] == ht[best] and hj[pos] <= hj[best]):
            break
        ht[pos], ht[best] = ht[best], ht[pos]
        hj[pos], hj[best] = hj[best], hj[pos]
        pos = best
    return size


@numba.njit(cache=True, inline="always")
def _int_heap_push(h: np.ndarray, size: int, x: int) -> int:
    pos = size
    h[pos] = x
    while pos > 0:
        parent = (pos - 1) >> 1
        if h[parent] <= h[pos]:
            break
        h[parent], h[pos] = h[pos], h[parent]
        pos = parent
    return size + 1


@numba.njit(cache=True, inline="always")
def _int_heap_pop(h: np.ndarray, size: int) -> int:
    size -= 1
    h[0] = h[size]
    pos = 0
    while True:
        left = 2 * pos + 1
        if left >= size:
            break
        best = left
        if left + 1 < size and h[left + 1] < h[left]:
            best = left + 1
        if h[pos] <= h[best]:
            break
        h[pos], h[best] = h[best], h[pos]
        pos = best
    return size


@numba.njit(cache=True, inline="always")
def _service(features: np.ndarray, coef: np.ndarray, i: int, k: int) -> float:
    s = 0.0
    for d in range(features.shape[1]):
        s += features[i, d] * coef[k, d]
    return s


@numba.njit(cache=True)
def _simulate_kernel(
    arrival: np.ndarray,
    features: np.ndarray,
    coef: np.ndarray,
    cap: np.ndarray,
    mu: np.ndarray,
    rank: np.ndarray,
    policy: int,
    uniforms: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = arrival.shape[0]
    num_chains = cap.shape[0]
    start = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    chain = np.full(n, -1, dtype=np.int64)
    total_cap = 0
    for k in range(num_chains):
        total_cap += cap[k]
    ht = np.empty(total_cap, dtype=np.float64)
    hj = np.empty(total_cap, dtype=np.int64)
    hsize = 0
    busy = np.zeros(num_chains, dtype=np.int64)  # jobs in service per chain
    # JFFC: min-heap of ranks of chains with a free slot
    free_heap = np.empty(num_chains, dtype=np.int64)
    fsize = 0
    pos_of = np.empty(num_chains, dtype=np.int64)
    for r in range(num_chains):
        pos_of[rank[r]] = r
    if policy == 0:
        for r in range(num_chains):
            fsize = _int_heap_push(free_heap, fsize, r)
    # central queue = arrivals qhead .. qhead+qlen-1
    qhead = 0
    qlen = 0
    # per-chain queues (JSQ, SED): linked lists
    nxt = np.full(n if policy >= 3 else 1, -1, dtype=np.int64)
    qfirst = np.full(num_chains, -1, dtype=np.int64)
    qlast = np.full(num_chains, -1, dtype=np.int64)
    qcount = np.zeros(num_chains, dtype=np.int64)
    i = 0
    while i < n or hsize > 0:
        if hsize > 0 and (i >= n or ht[0] <= arrival[i]):
            t = ht[0]
            j = hj[0]
            hsize = _heap_pop(ht, hj, hsize)
            k = chain[j]
            if policy <= 2:
                if qlen > 0:
                    q = qhead
                    qhead += 1
                    qlen -= 1
                    chain[q] = k
                    start[q] = t
                    finish[q] = t + _service(features, coef, q, k)
                    hsize = _heap_push(ht, hj, hsize, finish[q], q)
                else:
                    busy[k] -= 1
                    if policy == 0 and busy[k] == cap[k] - 1:
                        fsize = _int_heap_push(free_heap, fsize, pos_of[k])
            else:
                if qcount[k] > 0:
                    q = qfirst[k]
                    qfirst[k] = nxt[q]
                    if qfirst[k] == -1:
                        qlast[k] = -1
                    qcount[k] -= 1
                    start[q] = t
                    finish[q] = t + _service(features, coef, q, k)
                    hsize = _heap_push(ht, hj, hsize, finish[q], q)
                else:
                    busy[k] -= 1
        else:
            t = arrival[i]
            target = -1
            if policy == 0:
                if fsize > 0:
                    target = rank[free_heap[0]]
                    if busy[target] + 1 == cap[target]:
                        fsize = _int_heap_pop(free_heap, fsize)
            elif policy == 1:
                best = n + 1
                for r in range(num_chains):
                    k = rank[r]
                    if busy[k] < cap[k] and busy[k] < best:
                        best = busy[k]
                        target = k
            elif policy == 2:
                idle = 0
                free = 0
                for k in range(num_chains):
                    if busy[k] == 0:
                        idle += 1
                    if busy[k] < cap[k]:
                        free += 1
                if idle > 0 or free > 0:
                    want_idle = idle > 0
                    pick = int(uniforms[i] * (idle if want_idle else free))
                    for k in range(num_chains):
                        ok = busy[k] == 0 if want_idle else busy[k] < cap[k]
                        if ok:
                            if pick == 0:
                                target = k
                                break
                            pick -= 1
            else:
                best_val = np.inf
                for r in range(num_chains):
                    k = rank[r]
                    z = busy[k] + qcount[k]
                    if policy == 3:
                        val = float(z)
                    else:
                        extra = z - cap[k] + 1
                        val = 1.0 / mu[k] + (extra if extra > 0 else 0) / (mu[k] * cap[k])
                    if val < best_val:
                        best_val = val
                        target = k
            if policy <= 2:
                if target >= 0:
                    chain[i] = target
                    busy[target] += 1
                    start[i] = t
                    finish[i] = t + _service(features, coef, i, target)
                    hsize = _heap_push(ht, hj, hsize, finish[i], i)
                else:
                    if qlen == 0:
                        qhead = i
                    qlen += 1
            else:
                chain[i] = target
                if busy[target] < cap[target]:
                    busy[target] += 1
                    start[i] = t
                    finish[i] = t + _service(features, coef, i, target)
                    hsize = _heap_push(ht, hj, hsize, finish[i], i)
                else:
                    if qlast[target] == -1:
                        qfirst[target] = i
                    else:
                        nxt[qlast[target]] = i
                    qlast[target] = i
                    qcount[target] += 1
            i += 1
    return start, finish, chain


# ---------------------------------------------------------------------------------------------------
# Pure-Python reference (same semantics, used by tests and as the benchmark baseline)


def _reference_loop(arrival, features, coef, cap, mu, rank, policy, uniforms):
    n = len(arrival)
    num_chains = len(cap)
    arrival = arrival.tolist()
    features = features.tolist()
    coef = coef.tolist()
    cap = cap.tolist()
    mu = mu.tolist()
    rank = rank.tolist()
    pos_of = {k: r for r, k in enumerate(rank)}
    uniforms = uniforms.tolist()
    start = [float("nan")] * n
    finish = [float("nan")] * n
    chain = [-1] * n
    busy = [0] * num_chains
    heap: list[tuple[float, int]] = []
    free = list(range(num_chains)) if policy == JFFC else []
    central: list[int] = []
    qhead = 0
    queues: list[list[int]] = [[] for _ in range(num_chains)]
    qpos = [0] * num_chains

    def begin(q: int, k: int, t: float) -> None:
        chain[q] = k
        start[q] = t
        finish[q] = t + sum(a * b for a, b in zip(features[q], coef[k], strict=True))
        heapq.heappush(heap, (finish[q], q))

    i = 0
    while i < n or heap:
        if heap and (i >= n or heap[0][0] <= arrival[i]):
            t, j = heapq.heappop(heap)
            k = chain[j]
            if policy in CENTRAL_QUEUE:
                if qhead < len(central):
                    begin(central[qhead], k, t)
                    qhead += 1
                else:
                    busy[k] -= 1
                    if policy == JFFC and busy[k] == cap[k] - 1:
                        heapq.heappush(free, pos_of[k])
            elif qpos[k] < len(queues[k]):
                begin(queues[k][qpos[k]], k, t)
                qpos[k] += 1
            else:
                busy[k] -= 1
            continue
        t = arrival[i]
        target = -1
        if policy == JFFC:
            if free:
                target = rank[free[0]]
                if busy[target] + 1 == cap[target]:
                    heapq.heappop(free)
        elif policy == SA_JSQ:
            cands = [k for k in rank if busy[k] < cap[k]]
            if cands:
                target = min(cands, key=lambda k: busy[k])
        elif policy == JIQ:
            idle = [k for k in range(num_chains) if busy[k] == 0]
            avail = idle or [k for k in range(num_chains) if busy[k] < cap[k]]
            if avail:
                target = avail[int(uniforms[i] * len(avail))]
        else:

            def value(k: int) -> float:
                z = busy[k] + len(queues[k]) - qpos[k]
                if policy == JSQ:
                    return float(z)
                return 1.0 / mu[k] + max(z - cap[k] + 1, 0) / (mu[k] * cap[k])

            target = min(rank, key=value)
        if policy in CENTRAL_QUEUE:
            if target >= 0:
                busy[target] += 1
                begin(i, target, t)
            else:
                central.append(i)
        else:
            chain[i] = target
            if busy[target] < cap[target]:
                busy[target] += 1
                begin(i, target, t)
            else:
                queues[target].append(i)
        i += 1
    return np.array(start), np.array(finish), np.array(chain, dtype=np.int64)


# ---------------------------------------------------------------------------------------------------
# Public API


def simulate(
    arrival_s: Any,
    features: Any,
    coef: Any,
    capacity: Any,
    *,
    mu: Any = None,
    policy: str = "jffc",
    seed: int = 0,
    reference: bool = False,
) -> SimulationResult:
    """Simulate chain serving of the given requests under a dispatch policy.

    Parameters
    ----------
    arrival_s : array of float, shape (n,)
        Arrival times in seconds, non-decreasing.
    features : array of float, shape (n,) or (n, d)
        Per-request features; the service time of request i on chain k is ``features[i] @ coef[k]``.
        For the paper's model pass the Exp(1) job sizes and ``coef = 1/mu``.
    coef : array of float, shape (K,) or (K, d)
        Per-chain service coefficients.
    capacity : array of int, shape (K,)
        c_k >= 1, the maximum number of concurrent jobs on chain k.
    mu : array of float, shape (K,), optional
        Service rates used to rank chains (JFFC, ties) and by SED; default ``1 / (mean(features) @ coef)``.
    policy : str, default "jffc"
        One of ``jffc``, ``sa_jsq``, ``jiq``, ``jsq``, ``sed`` (see :mod:`serveplan.chain.policies`).
    seed : int, default 0
        Seeds the random choices (JIQ). Other policies are deterministic given the inputs.
    reference : bool, default False
        Run the pure-Python reference loop instead of the compiled kernel (same results).

    Returns
    -------
    SimulationResult
        Per-request arrival, start, finish and chain.

    Notes
    -----
    Every request is served (no rejection); with a total rate below the arrival rate the queue grows
    without bound, which shows in the waiting times.
    """
    code = policy_code(policy)
    feats0 = np.asarray(features, dtype=np.float64)
    coef0 = np.asarray(coef, dtype=np.float64)
    if mu is None:
        f2 = feats0[:, None] if feats0.ndim == 1 else feats0
        c2 = coef0[:, None] if coef0.ndim == 1 else coef0
        mean_f = f2.mean(axis=0) if len(f2) else np.ones(c2.shape[1])
        mean_t = c2 @ mean_f
        if np.any(mean_t <= 0):
            raise InputError("every chain needs a positive mean service time", field="coef")
        mu = 1.0 / mean_t
    arrival, feats, c, cap, m = _check_inputs(arrival_s, features, coef, capacity, mu)
    rank = chain_rank(m)
    uniforms = np.random.default_rng(seed).random(len(arrival))
    loop = _reference_loop if reference else _simulate_kernel
    start, finish, chain = loop(arrival, feats, c, cap, m, rank, code, uniforms)
    return SimulationResult(arrival, start, finish, chain, policy_name(code), {"seed": seed})


def poisson_arrivals(rate: float, num_requests: int, seed: int) -> np.ndarray:
    """Arrival times of a Poisson process of ``rate`` per second, starting at the first arrival after 0."""
    if rate <= 0:
        raise InputError("must be positive", field="arrival_rate", value=rate)
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.exponential(1.0 / rate, size=int(num_requests)))


def simulate_poisson(
    mu: Any,
    capacity: Any,
    arrival_rate: float,
    num_requests: int,
    *,
    policy: str = "jffc",
    seed: int = 0,
    reference: bool = False,
) -> SimulationResult:
    """The paper's analysed setting: Poisson(lambda) arrivals, Exp(1) job sizes, service r / mu_k.

    Arrival gaps, job sizes and policy randomness come from independent streams of ``seed``, so the
    same seed gives the same arrivals and sizes under every policy (common random numbers).
    """
    mu = np.asarray(mu, dtype=float)
    ss = np.random.SeedSequence(seed).spawn(3)
    arrivals = np.cumsum(np.random.default_rng(ss[0]).exponential(1.0 / arrival_rate, size=int(num_requests)))
    sizes = np.random.default_rng(ss[1]).exponential(1.0, size=int(num_requests))
    policy_seed = int(np.random.default_rng(ss[2]).integers(2**31))
    return simulate(arrivals, sizes, 1.0 / mu, capacity, mu=mu, policy=policy, seed=policy_seed, reference=reference)
