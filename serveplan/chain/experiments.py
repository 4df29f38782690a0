"""Instance families and evaluators of the server-chain problem, for the experiment harness.

Families (``fn(params, seed) -> ChainInstance``):

``paper_sim``
    The paper's simulated setting from RIPE Atlas EU anchors (:func:`serveplan.chain.builders.ripe_instance`).
    Params (defaults = the paper's): ``J`` (20), ``eta`` (0.2), ``lambda`` (0.2 jobs/s), ``rho_bar`` (0.7),
    ``model`` ("bloom_176b"), ``high_gpu``/``low_gpu``, and the reading flags ``orchestrator``,
    ``high_perf``, ``eta_rounding``, ``comm_reading``, ``profile_reading``, ``allow_repeat``.
``synthetic``
    Random servers at scale (:func:`serveplan.chain.builders.synthetic_instance`): ``J`` (100), ``L`` (80),
    ``lambda`` (1.0), ``rho_bar`` (0.7).
``random_tiny``
    Tiny instances for brute-force checks: ``J`` (4), ``L`` (3), ``lambda`` (0.3), ``rho_bar`` (0.7),
    ``equal_memory`` (false). s_m = 1 GB, s_c = 0.5 GB, memory from {2, 3, 4} GB (3 GB for all when equal),
    tau^c uniform in [0.5, 2] s, tau^p uniform in [0.05, 0.5] s.

Evaluator ``bounds`` (``fn(instance, result, params, seed) -> metrics``): Theorem 3.7's lower and upper mean
response time (``lower_response_s``, ``upper_response_s``; inf when unstable), the surrogate
``surrogate_response_s`` = sum_k c_k / lambda, ``surrogate_ck_response_s`` = c K(c) / lambda (methods reporting
GBP-CR's c and K(c); nan otherwise), the total service rate, the
number of chains and job servers, and ``meets_target`` (1/0).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from serveplan.chain.bounds import solution_bound_metrics
from serveplan.chain.builders import ripe_instance, synthetic_instance
from serveplan.chain.instance import ChainInstance, Server
from serveplan.errors import InputError
from serveplan.registry import MethodResult, register_evaluator, register_family


def family_param(params: dict[str, Any], key: str, default: Any, kind: type, *, allow_none: bool = False) -> Any:
    """``params[key]`` (else ``default``) converted to ``kind``; a bool also reads "1"/"true"/"yes"/"on".

    With ``allow_none`` a None value is returned as None (parameters whose default is "not set").

    Raises
    ------
    InputError
        A value ``kind`` does not accept, naming ``params.<key>``.
    """
    value = params.get(key, default)
    if allow_none and value is None:
        return None
    try:
        if kind is bool:
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
        return kind(value)
    except (TypeError, ValueError):
        raise InputError(f"must be {kind.__name__}", field=f"params.{key}", value=value) from None


@register_family("chain", "paper_sim", summary="paper's simulation: J servers from RIPE Atlas EU, eta high-perf")
def paper_sim(params: dict[str, Any], seed: int) -> ChainInstance:
    """The paper's model-driven simulation instance (section "Simulation setup")."""
    return ripe_instance(
        num_servers=family_param(params, "J", 20, int),
        eta=family_param(params, "eta", 0.2, float),
        arrival_rate=family_param(params, "lambda", 0.2, float),
        target_load=family_param(params, "rho_bar", 0.7, float),
        model=family_param(params, "model", "bloom_176b", str),
        high_gpu=family_param(params, "high_gpu", "a100_3g_40gb", str),
        low_gpu=family_param(params, "low_gpu", "a100_2g_20gb", str),
        seed=seed,
        orchestrator=family_param(params, "orchestrator", "lowest_median", str),
        high_perf=family_param(params, "high_perf", "random", str),
        eta_rounding=family_param(params, "eta_rounding", "floor", str),
        comm_reading=family_param(params, "comm_reading", "paper", str),
        profile_reading=family_param(params, "profile_reading", "paper", str),
        allow_repeat=family_param(params, "allow_repeat", False, bool),
    )


@register_family("chain", "synthetic", summary="random servers at scale (memory 20/40 GB, BLOOM-like blocks)")
def synthetic(params: dict[str, Any], seed: int) -> ChainInstance:
    """Random servers for scale experiments."""
    return synthetic_instance(
        family_param(params, "J", 100, int),
        family_param(params, "L", 80, int),
        arrival_rate=family_param(params, "lambda", 1.0, float),
        target_load=family_param(params, "rho_bar", 0.7, float),
        seed=seed,
    )


def tiny_instance(
    num_servers: int = 4,
    num_blocks: int = 3,
    *,
    arrival_rate: float = 0.3,
    target_load: float = 0.7,
    equal_memory: bool = False,
    seed: int = 0,
) -> ChainInstance:
    """A tiny random instance (see the module docstring), seeded."""
    rng = np.random.default_rng(seed)
    mem = np.full(num_servers, 3.0) if equal_memory else rng.choice([2.0, 3.0, 4.0], size=num_servers)
    comm = rng.uniform(0.5, 2.0, size=num_servers)
    comp = rng.uniform(0.05, 0.5, size=num_servers)
    servers = tuple(Server(f"s{j}", float(mem[j]), float(comm[j]), float(comp[j])) for j in range(num_servers))
    return ChainInstance(servers, num_blocks, 1.0, 0.5, arrival_rate, target_load, name=f"tiny-seed{seed}")


@register_family("chain", "random_tiny", summary="tiny random instances for brute-force checks")
def random_tiny(params: dict[str, Any], seed: int) -> ChainInstance:
    """Tiny instances (J ~ 3-6, L ~ 2-4) that brute force can solve."""
    return tiny_instance(
        family_param(params, "J", 4, int),
        family_param(params, "L", 3, int),
        arrival_rate=family_param(params, "lambda", 0.3, float),
        target_load=family_param(params, "rho_bar", 0.7, float),
        equal_memory=family_param(params, "equal_memory", False, bool),
        seed=seed,
    )


@register_evaluator("chain", "bounds", summary="Theorem 3.7 response-time bounds, surrogate, rate, chains")
def bounds_evaluator(
    instance: ChainInstance, result: MethodResult, params: dict[str, Any], seed: int
) -> dict[str, float]:
    """Analytic metrics of a method's solution (all inf/0 when the method found none)."""
    if result.solution is None:
        return {
            "lower_response_s": math.inf,
            "upper_response_s": math.inf,
            "surrogate_response_s": math.inf,
            "surrogate_ck_response_s": math.nan,
            "total_rate": 0.0,
            "num_chains": 0.0,
            "job_servers": 0.0,
            "meets_target": 0.0,
        }
    metrics = solution_bound_metrics(instance, result.solution)
    out = {k: float(v) for k, v in metrics.items() if k != "required_rate"}
    out["surrogate_response_s"] = float(result.solution.total_capacity) / instance.arrival_rate
    c, k = result.info.get("c"), result.info.get("K")
    # the paper's c K(c) / lambda, for methods that report GBP-CR's c and K(c)
    out["surrogate_ck_response_s"] = float(c * k) / instance.arrival_rate if c and k else math.nan
    out["meets_target"] = float(metrics["total_rate"] >= instance.required_rate * (1 - 1e-9))
    return out
