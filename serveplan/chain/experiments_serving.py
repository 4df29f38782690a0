"""Serving experiments of the server-chain paper: the ``simulate`` and ``gca_unit`` evaluators and two families.

Evaluators (``fn(instance, result, params, seed) -> metrics``):

``simulate``
    Simulates the method's solution on a workload. Chain solutions (``gbp_cr+gca``, ``jffc_only``, exact
    methods, ...) are dispatched over their chains with capacities c_k by ``policy`` (default JFFC) in the
    compiled simulator (:mod:`serveplan.chain.simulator`); baselines that route per request
    (``info["routing"]`` = ``"petals"`` or ``"ws_rr"``) run their own routers in the path simulator
    (:mod:`serveplan.chain.path_simulator`). Params:

    * ``arrivals``: ``"poisson"`` (default; rate ``lambda`` or the instance's) or ``"trace"`` (Azure LLM 2023,
      ``trace`` = ``"code"``/``"conv"``, ``trace_requests`` (1000), ``trace_offset`` (0), ``time_scale`` (1.0)
      multiplies the trace's arrival times);
    * ``sizes``: ``"exp"`` (Exp(1) job sizes, service r T_k; default) or ``"tokens"`` (each request's own
      input/output tokens through the per-block model, :mod:`serveplan.chain.traces`; needs ``model``
      (default "bloom_176b"), ``comm_reading``; with Poisson arrivals the token pairs are resampled from
      the trace);
    * ``num_requests`` (10000; Poisson only), ``warmup`` (fraction of requests dropped, default 0.1 for
      Poisson and 0 for traces), ``policy`` (jffc, sa_jsq, jiq, jsq, sed), ``load`` (if set, lambda =
      load * nu of the solution: the JFFC-vs-load experiment), ``lambda``, ``fixed_overhead_s`` (added to
      every service time of a chain solution; 0), ``hop_overhead_s`` (added per server on the path; 0: the
      authors' service-time script uses 2.2 s per server to match measured PETALS service times).

    Metrics: ``{mean,median,p95,p99,max}_{response,waiting}_s``, ``{mean,median,p95,p99,min,max}_service_s``,
    ``service_share`` (mean service / mean response), ``sim_lambda``, ``sim_requests``, and for chain solutions
    ``load`` (lambda / nu), Theorem 3.7's ``lower_response_s`` / ``upper_response_s`` at the simulated lambda
    (inf when unstable), ``surrogate_response_s`` (sum c_k / lambda) and, when the method reports it,
    ``surrogate_cK_s`` (c K(c) / lambda).
``gca_unit``
    The GCA unit test: GBP-CR(c) placement (``c``, default 7, ``stop_rule`` "max_chains"), GCA over it, and
    the rate target lambda / rho_bar = ``load_fraction`` x nu_GCA (nu_GCA = total rate of GCA's chains at
    full capacity). Metrics: ``gca_job_servers`` (job servers GCA takes, fastest first, until
    sum mu c >= lambda / rho_bar), ``cK_job_servers`` (c K(c) of GBP-CR at that lambda), ``lower_bound_job_servers``
    (ceil(lambda / (rho_bar mu_1))), ``ilp_job_servers`` (min sum c_k s.t. sum mu_k c_k >= lambda / rho_bar,
    0 <= c_k <= c_k^GCA, integer: the authors' "optimal ILP" over GCA's chains). Ignores the method's result.

Families:

``paper_sim_fixed``
    ``paper_sim`` with the instance drawn from ``instance_seed`` (default 0) whatever the case seed, so seeds
    vary only the method (GBP-CR vs 100 random placements).
``mig_testbed``
    The PETALS experiment's cluster: 3 A100 80 GB split into 1 x 3g.40gb + 2 x 2g.20gb each (3 high-perf,
    6 low-perf servers), LLaMA-2-7B, RTTs to the orchestrator from RIPE Atlas EU anchors (``instance_seed``),
    lambda = the replayed trace's mean rate (``trace``, ``trace_requests``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyomo.environ as pyo

from heuristics.bprr import WsRrRouter
from heuristics.petals import PetalsRouter
from serveplan.chain.bounds import is_stable, theorem37_bounds
from serveplan.chain.builders import ripe_instance
from serveplan.chain.experiments import family_param
from serveplan.chain.instance import ChainInstance
from serveplan.chain.path_simulator import simulate_paths
from serveplan.chain.placement import ChainSolution, service_rates
from serveplan.chain.simulator import SimulationResult, simulate
from serveplan.chain.traces import TokenServiceModel, load_azure_llm_trace, token_features
from serveplan.errors import InputError
from serveplan.registry import MethodResult, register_evaluator, register_family
from serveplan.solvers import solve


def _param(params: dict[str, Any], key: str, default: Any, kind: type) -> Any:
    """:func:`~serveplan.chain.experiments.family_param`, a None value kept (``load`` defaults to None)."""
    return family_param(params, key, default, kind, allow_none=True)


# ---------------------------------------------------------------------------------------------------
# Workloads


def build_workload(
    instance: ChainInstance, params: dict[str, Any], seed: int, arrival_rate: float
) -> tuple[np.ndarray, np.ndarray, TokenServiceModel | None, float]:
    """Arrival times, features, the token model (None for Exp sizes) and the default warm-up fraction."""
    arrivals = _param(params, "arrivals", "poisson", str)
    sizes = _param(params, "sizes", "exp", str)
    if arrivals not in ("poisson", "trace"):
        raise InputError("must be 'poisson' or 'trace'", field="params.arrivals", value=arrivals)
    if sizes not in ("exp", "tokens"):
        raise InputError("must be 'exp' or 'tokens'", field="params.sizes", value=sizes)
    ss = np.random.SeedSequence([seed, 7919]).spawn(3)
    trace = None
    if arrivals == "trace" or sizes == "tokens":
        trace = load_azure_llm_trace(
            _param(params, "trace", "code", str),
            _param(params, "trace_requests", 1000, int) if arrivals == "trace" else None,
            _param(params, "trace_offset", 0, int) if arrivals == "trace" else 0,
        )
    if arrivals == "trace":
        assert trace is not None
        arrival = trace.arrival_s * _param(params, "time_scale", 1.0, float)
        n = len(arrival)
        warmup = 0.0
    else:
        n = _param(params, "num_requests", 10_000, int)
        arrival = np.cumsum(np.random.default_rng(ss[0]).exponential(1.0 / arrival_rate, size=n))
        warmup = 0.1
    if sizes == "exp":
        feats = np.random.default_rng(ss[1]).exponential(1.0, size=n)[:, None]
        model = None
    else:
        assert trace is not None
        if arrivals == "trace":
            l_in, l_out = trace.input_tokens, trace.output_tokens
        else:
            pick = np.random.default_rng(ss[1]).integers(len(trace), size=n)
            l_in, l_out = trace.input_tokens[pick], trace.output_tokens[pick]
        feats = token_features(l_in, l_out)
        model = TokenServiceModel.from_instance(
            instance,
            _param(params, "model", "bloom_176b", str),
            high_gpu=_param(params, "high_gpu", "a100_3g_40gb", str),
            low_gpu=_param(params, "low_gpu", "a100_2g_20gb", str),
            comm_reading=_param(params, "comm_reading", "paper", str),
            profile_reading=_param(params, "profile_reading", "paper", str),
        )
    return arrival, feats, model, warmup


def _with_constant(feats: np.ndarray, coef: np.ndarray, constant_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Append a feature 1 whose coefficient is ``constant_s`` per row of ``coef`` (a fixed delay per service)."""
    if not np.any(constant_s > 0):
        return feats, coef
    f = np.column_stack([feats, np.ones(len(feats))])
    c = np.column_stack([coef, constant_s])
    return f, c


def simulate_solution(
    instance: ChainInstance, result: MethodResult, params: dict[str, Any], seed: int
) -> tuple[SimulationResult, dict[str, float]]:
    """Simulate a method's result (see the module docstring); returns the records and the analytic extras."""
    sol: ChainSolution = result.solution
    routing = (result.info or {}).get("routing", "jffc")
    overhead = _param(params, "fixed_overhead_s", 0.0, float)
    hop = _param(params, "hop_overhead_s", 0.0, float)
    extras: dict[str, float] = {}
    if routing in ("petals", "ws_rr"):
        lam = _param(params, "lambda", instance.arrival_rate, float)
        arrival, feats, model, warmup = build_workload(instance, params, seed, lam)
        if model is None:
            comm, block = instance.comm_time_s[:, None], instance.compute_time_s[:, None]
        else:
            comm, block = model.comm_coef, model.block_coef
        if overhead > 0 or hop > 0:
            # a path's comm coefficients sum over its servers: the fixed delay goes on the first server only
            # through the request features, the per-hop delay on every server
            feats = np.column_stack([feats, np.ones(len(feats))])
            comm = np.column_stack([comm, np.full(len(comm), hop)])
            block = np.column_stack([block, np.zeros(len(block))])
            if overhead > 0:
                raise InputError(
                    "fixed_overhead_s is not supported for per-request routing; use hop_overhead_s",
                    field="params.fixed_overhead_s",
                    value=overhead,
                )
        slots = np.asarray(result.info["slot_capacity"], dtype=np.int64)
        if routing == "petals":
            router = PetalsRouter(instance, sol.placement, float(result.info["penalty_s"]))
        else:
            router = WsRrRouter(instance, sol.placement, retry_quantisation=bool(result.info.get("retry_quantisation")))
        res = simulate_paths(arrival, feats, comm, block, slots, router, policy=routing)
    else:
        keep = [k for k, c in enumerate(sol.capacities) if c > 0]
        if not keep:
            raise InputError("the solution has no chain with capacity", field="solution")
        chains = [sol.chains[k] for k in keep]
        caps = np.array([sol.capacities[k] for k in keep], dtype=np.int64)
        mu = service_rates(instance, chains)
        nu = float(mu @ caps)
        load = _param(params, "load", None, float)
        lam = load * nu if load is not None else _param(params, "lambda", instance.arrival_rate, float)
        arrival, feats, model, warmup = build_workload(instance, params, seed, lam)
        coef = (1.0 / mu)[:, None] if model is None else model.chain_coef(chains)
        hops = np.array([len(ch.servers) for ch in chains], dtype=float)
        feats, coef = _with_constant(feats, coef, overhead + hop * hops)
        policy_seed = int(np.random.SeedSequence([seed, 104729]).generate_state(1)[0])
        res = simulate(
            arrival, feats, coef, caps, mu=mu, policy=_param(params, "policy", "jffc", str), seed=policy_seed
        )
        extras["load"] = lam / nu
        extras["total_rate"] = nu
        extras["surrogate_response_s"] = float(caps.sum()) / lam
        if is_stable(lam, mu, caps):
            b = theorem37_bounds(lam, mu, caps)
            extras["lower_response_s"], extras["upper_response_s"] = b.lower_s, b.upper_s
        else:
            extras["lower_response_s"] = extras["upper_response_s"] = math.inf
        cK = (result.info or {}).get("surrogate_job_servers")
        if cK is not None:
            extras["surrogate_cK_s"] = float(cK) / lam
    if _param(params, "arrivals", "poisson", str) == "trace":
        span = float(arrival[-1] - arrival[0])
        lam = (len(arrival) - 1) / span if span > 0 else lam
        if "total_rate" in extras:
            extras["load"] = lam / extras["total_rate"]
    extras["sim_lambda"] = lam
    extras["warmup"] = _param(params, "warmup", warmup, float)
    return res, extras


def summarise_records(res: SimulationResult, extras: dict[str, float]) -> dict[str, float]:
    """The ``simulate`` evaluator's metrics from simulated records and :func:`simulate_solution`'s extras."""
    extras = dict(extras)
    m = res.metrics(extras.pop("warmup", 0.0))
    out: dict[str, float] = {"sim_requests": m["num_requests"], **extras}
    for what in ("response", "waiting"):
        for stat in ("mean", "median", "p95", "p99", "max"):
            out[f"{stat}_{what}_s"] = m[f"{what}_{stat}"]
    for stat in ("mean", "median", "p95", "p99", "min", "max"):
        out[f"{stat}_service_s"] = m[f"service_{stat}"]
    out["service_share"] = m["service_mean"] / m["response_mean"] if m["response_mean"] > 0 else float("nan")
    return out


@register_evaluator("chain", "simulate", summary="discrete-event simulation: response/waiting/service statistics")
def simulate_evaluator(
    instance: ChainInstance, result: MethodResult, params: dict[str, Any], seed: int
) -> dict[str, float]:
    """Simulate the method's solution; metrics as in the module docstring (empty when there is no solution)."""
    if result.solution is None:
        return {}
    res, extras = simulate_solution(instance, result, params, seed)
    return summarise_records(res, extras)


# ---------------------------------------------------------------------------------------------------
# GCA unit test


def job_servers_fastest_first(rates: np.ndarray, caps: np.ndarray, required: float) -> float:
    """Job servers taken in decreasing rate until sum mu c >= required (inf if never); partial last chain."""
    total, count = 0.0, 0
    for k in np.argsort(-rates, kind="stable"):
        for _ in range(int(caps[k])):
            if total >= required * (1 - 1e-12):
                return float(count)
            total += rates[k]
            count += 1
    return float(count) if total >= required * (1 - 1e-12) else math.inf


def bounded_cover_ilp(rates: np.ndarray, caps: np.ndarray, required: float) -> float:
    """Min sum c_k s.t. sum mu_k c_k >= required, 0 <= c_k <= caps_k integer (HiGHS); inf if infeasible."""
    if float(rates @ caps) < required * (1 - 1e-12):
        return math.inf
    m = pyo.ConcreteModel()
    m.K = pyo.RangeSet(0, len(rates) - 1)
    m.c = pyo.Var(m.K, domain=pyo.NonNegativeIntegers, bounds=lambda mdl, k: (0, int(caps[k])))
    m.rate = pyo.Constraint(expr=sum(float(rates[k]) * m.c[k] for k in m.K) >= required * (1 - 1e-12))
    m.obj = pyo.Objective(expr=sum(m.c[k] for k in m.K), sense=pyo.minimize)
    res = solve(m, backend="highs", time_limit_s=60)
    return float(round(res.objective)) if res.status.has_solution else math.inf


@register_evaluator("chain", "gca_unit", summary="GCA unit test: GCA vs c K(c), lower bound and optimal ILP")
def gca_unit_evaluator(
    instance: ChainInstance, result: MethodResult, params: dict[str, Any], seed: int
) -> dict[str, float]:
    """The paper's GCA unit test at one load fraction (see the module docstring)."""
    from heuristics.gbp_cr import gbp_cr
    from heuristics.gca import gca

    c = _param(params, "c", 7, int)
    run = gbp_cr(instance, c, stop_rule=_param(params, "stop_rule", "max_chains", str))
    if not run.chains:
        return {"gca_total_rate": 0.0}
    alloc = gca(instance, run.placement)
    chains = list(alloc.chains)
    caps = np.asarray(alloc.capacities, dtype=np.int64)
    rates = service_rates(instance, chains)
    nu = float(rates @ caps)
    frac = _param(params, "load_fraction", 0.5, float)
    required = frac * nu
    lam = required * instance.target_load
    at_lam = instance.with_arrival_rate(lam)
    run_lam = gbp_cr(at_lam, c, stop_rule="rate")
    return {
        "gca_total_rate": nu,
        "sim_lambda": lam,
        "gca_job_servers": job_servers_fastest_first(rates, caps, required),
        "cK_job_servers": run_lam.surrogate,
        "lower_bound_job_servers": float(math.ceil(required / rates.max() - 1e-12)),
        "ilp_job_servers": bounded_cover_ilp(rates, caps, required),
        "gca_chains": float(len(chains)),
    }


# ---------------------------------------------------------------------------------------------------
# Families


@register_family("chain", "paper_sim_fixed", summary="paper_sim with a fixed instance_seed (seeds vary the method)")
def paper_sim_fixed(params: dict[str, Any], seed: int) -> ChainInstance:
    """The paper's simulated instance drawn from ``instance_seed`` (case seeds only reach the method)."""
    from serveplan.chain.experiments import paper_sim

    rest = {k: v for k, v in params.items() if k != "instance_seed"}
    return paper_sim(rest, _param(params, "instance_seed", 0, int))


@register_family("chain", "mig_testbed", summary="PETALS experiment: 9 A100 MIG servers, LLaMA-2-7B, trace rate")
def mig_testbed(params: dict[str, Any], seed: int) -> ChainInstance:
    """3 x (3g.40gb + 2 x 2g.20gb) MIG slices with RIPE Atlas RTTs; lambda from the replayed trace."""
    trace = load_azure_llm_trace(
        _param(params, "trace", "code", str),
        _param(params, "trace_requests", 1000, int),
        _param(params, "trace_offset", 0, int),
    )
    lam = _param(params, "lambda", trace.rate, float)
    return ripe_instance(
        num_servers=9,
        eta=1 / 3,
        arrival_rate=lam,
        target_load=_param(params, "rho_bar", 0.7, float),
        model="llama2_7b",
        seed=_param(params, "instance_seed", seed, int),
        high_perf=_param(params, "high_perf", "random", str),
        eta_rounding="round",
        comm_reading=_param(params, "comm_reading", "paper", str),
    )
