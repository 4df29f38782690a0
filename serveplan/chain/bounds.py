"""Mean response time of JFFC: Theorem "JFFC bounds" (Sun, He, Hou 2026, Thm 3.7) and Lemma 3.6 stability.

Chains sorted by rate mu_1 >= ... >= mu_K with capacities c_l form C = sum c_l job servers of total rate
nu = sum c_l mu_l. The number of jobs in the JFFC system has the same mean as a birth-death process with birth
rate lambda and death rate nu_n in state n, where nu_n lies between

* the lower death rate  nu_low_n  = jobs on the slowest job servers (sum of the n smallest job-server rates),
* the upper death rate  nu_high_n = jobs on the fastest job servers (sum of the n largest),

and nu_n = nu for n >= C. The theorem's phi_n are the stationary laws of the two birth-death processes; the one
with upper death rates gives the lower bound on E[N] and vice versa. Mean response time is E[N] / lambda
(Little's law).

Everything is evaluated in log space (log-sum-exp), so C in the hundreds or thousands does not overflow:
log phi_n = sum_{i<=n} log(lambda / nu_i) - log Z, with the tail n >= C summed in closed form
(sum_{m>=0} rho^m = 1/(1-rho), sum_{m>=0} (C+m) rho^m = rho/(1-rho)^2 + C/(1-rho)). Cost O(C + K log K).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import ChainSolution, service_rates
from serveplan.errors import InputError


@dataclass(frozen=True)
class ResponseTimeBounds:
    """Theorem 3.7 bounds on the JFFC steady state.

    Attributes
    ----------
    lower_jobs, upper_jobs : float
        Bounds on the mean number of jobs in the system.
    lower_s, upper_s : float
        Bounds on the mean response time (seconds).
    total_rate : float
        nu = sum c_l mu_l.
    total_capacity : int
        C = sum c_l.
    load : float
        rho = lambda / nu.
    """

    lower_jobs: float
    upper_jobs: float
    lower_s: float
    upper_s: float
    total_rate: float
    total_capacity: int
    load: float


def is_stable(arrival_rate: float, rates: np.ndarray, capacities: np.ndarray) -> bool:
    """Lemma 3.6: the JFFC chain is ergodic iff lambda < sum_l c_l mu_l."""
    return arrival_rate < float(np.dot(np.asarray(rates, float), np.asarray(capacities, float)))


def _job_server_rates(rates: np.ndarray, capacities: np.ndarray) -> np.ndarray:
    """The C job-server rates (chain l's rate repeated c_l times), fastest first."""
    order = np.argsort(-rates, kind="stable")
    return np.repeat(rates[order], capacities[order])


def _mean_jobs(arrival_rate: float, death: np.ndarray, nu: float) -> float:
    """E[N] of a birth-death process with birth lambda, death death[n-1] for n <= C and nu beyond."""
    C = death.size
    rho = arrival_rate / nu
    log_prod = np.concatenate(([0.0], np.cumsum(np.log(arrival_rate) - np.log(death))))  # n = 0..C
    log_tail_mass = log_prod[C] - math.log1p(-rho)  # sum_{n>=C} phi_n (unnormalised)
    terms = np.append(log_prod[:C], log_tail_mass)
    top = terms.max()
    log_z = top + math.log(float(np.exp(terms - top).sum()))  # log-sum-exp: no overflow for C in the thousands
    n = np.arange(C, dtype=float)
    head = float(np.sum(n * np.exp(log_prod[:C] - log_z)))
    tail = math.exp(log_prod[C] - log_z) * (rho / (1 - rho) ** 2 + C / (1 - rho))
    return head + tail


def theorem37_bounds(arrival_rate: float, rates: np.ndarray, capacities: np.ndarray) -> ResponseTimeBounds:
    """Lower and upper bounds on JFFC's mean number in system and mean response time (Theorem 3.7).

    Parameters
    ----------
    arrival_rate : float
        lambda, jobs per second (> 0).
    rates : array of float
        mu_k = 1 / T_k of each chain.
    capacities : array of int
        c_k of each chain (zero-capacity chains are ignored).

    Raises
    ------
    InputError
        If lambda >= nu (Lemma 3.6: the system is unstable and the mean is infinite), or inputs are invalid.
    """
    rates = np.asarray(rates, dtype=float)
    caps = np.asarray(capacities, dtype=np.int64)
    if rates.shape != caps.shape:
        raise InputError("rates and capacities differ in length", value=(rates.size, caps.size))
    if np.any(caps < 0) or np.any(~np.isfinite(rates)) or np.any(rates <= 0):
        raise InputError("rates must be positive and capacities non-negative")
    if not arrival_rate > 0:
        raise InputError("arrival rate must be positive", field="arrival_rate", value=arrival_rate)
    keep = caps > 0
    rates, caps = rates[keep], caps[keep]
    nu = float(np.dot(rates, caps))
    if not is_stable(arrival_rate, rates, caps):
        raise InputError(
            "unstable: the arrival rate is at or above the total service rate (Lemma 3.6)",
            field="arrival_rate",
            value=arrival_rate,
            hint=f"total service rate sum_k c_k/T_k = {nu:.6g}/s",
        )
    per_job = _job_server_rates(rates, caps)
    fast_first = np.cumsum(per_job)  # upper death rates: jobs on the fastest job servers
    slow_first = np.cumsum(per_job[::-1])  # lower death rates: jobs on the slowest
    lower = _mean_jobs(arrival_rate, fast_first, nu)
    upper = _mean_jobs(arrival_rate, slow_first, nu)
    return ResponseTimeBounds(
        lower_jobs=lower,
        upper_jobs=upper,
        lower_s=lower / arrival_rate,
        upper_s=upper / arrival_rate,
        total_rate=nu,
        total_capacity=int(caps.sum()),
        load=arrival_rate / nu,
    )


def solution_bound_metrics(instance: ChainInstance, solution: ChainSolution) -> dict[str, float]:
    """Analytic metrics of a solution: total rate, chains, job servers, Theorem 3.7 response-time bounds.

    The bounds are ``inf`` when JFFC would be unstable on the solution (lambda >= nu, Lemma 3.6).
    """
    chains = [ch for ch, c in zip(solution.chains, solution.capacities, strict=True) if c > 0]
    caps = np.array([c for c in solution.capacities if c > 0], dtype=np.int64)
    rates = service_rates(instance, chains) if chains else np.zeros(0)
    nu = float(np.dot(rates, caps)) if chains else 0.0
    out = {
        "total_rate": nu,
        "required_rate": instance.required_rate,
        "num_chains": float(len(chains)),
        "job_servers": float(caps.sum()) if chains else 0.0,
        "fastest_service_s": float(1.0 / rates.max()) if chains else math.inf,
        "lower_response_s": math.inf,
        "upper_response_s": math.inf,
    }
    if chains and is_stable(instance.arrival_rate, rates, caps):
        b = theorem37_bounds(instance.arrival_rate, rates, caps)
        out["lower_response_s"] = b.lower_s
        out["upper_response_s"] = b.upper_s
    return out
