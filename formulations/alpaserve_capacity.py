"""The reference code's capacity-per-rate ILPs (digest 2.4), as baselines: ``sr-ilp`` and ``mp-ilp``.

Both maximise ``min_tol + 1e-4 * sum_tol`` where ``tol_i = capacity_i / rate_i`` is model i's serving capacity
relative to its request rate (rates from the train workload; models without requests are left out of the min).
They ignore queueing, burstiness and the SLO attainment the simulator measures (see docs/formulations_alpaserve.md).

**Selective replication** (:func:`build_sr_model`): binary ``p[i, j]`` (model i on GPU j);
memory ``sum_i p[i, j] weight_i <= budget``; capacity_i = ``sum_j p[i, j] / latency_i`` (single-GPU throughput).
Decoded as one ``(1, 1)`` group per GPU.

**Model parallelism** (:func:`build_mp_model`): ``N`` slots, each of config empty / ``(pp, 1)`` with ``pp`` in
``{1, 2, 4, 8}`` (sizes 0, 1, 2, 4, 8; every device used: ``sum size = N``); binary ``p[i, j]``, ``s[j, k]`` and
their product ``pxs[i, j, k]``; memory as in the reference, ``sum_i p[i, j] weight_i / budget <= sum_k s[j, k]
size_k`` (weights spread evenly over the group); capacity_i = ``sum_{j,k} pxs[i, j, k] f[i, k]`` with the
reference's capability ``f[i, k] = 0.99^pp (floor((slo_i - sum lat) / max lat) + 1)`` (requests that can be in
flight in the pipeline and still meet the SLO; 0 if one request alone misses it).
The even-split memory rule can overfill a GPU under the real per-stage weights; :func:`decode_mp` repairs such
a group by dropping its least-requested models until it fits, and reports how many it dropped.
"""

from __future__ import annotations

import math

import numpy as np
import pyomo.environ as pyo

from formulations.alpaserve_trace import latency_tables
from serveplan.alpaserve.cluster import Group, ParallelConfig, Placement
from serveplan.workloads.workload import Workload

MP_PIPELINES = (1, 2, 4, 8)
TOL_WEIGHT = 1e-4


def _rates(instance, workload: Workload | None) -> np.ndarray:
    wl = workload if workload is not None else instance.train
    return wl.counts() / max(wl.duration_s, 1e-9)


def build_sr_model(instance, workload: Workload | None = None) -> pyo.ConcreteModel:
    """Reference ``SelectiveReplicationILP``."""
    rates = _rates(instance, workload)
    tab = latency_tables(instance, [ParallelConfig(1, 1)])
    M, N = len(instance.models), instance.cluster.num_gpus
    lat = np.nan_to_num(tab.lat[:, 0, 0], nan=np.inf)
    fits = [i for i in range(M) if tab.placeable(i, 0)]
    active = [i for i in fits if rates[i] > 0]
    m = pyo.ConcreteModel(name="alpaserve_sr_capacity")
    m.tables = tab
    m.P = pyo.Set(initialize=[(i, j) for i in fits for j in range(N)], dimen=2)
    m.p = pyo.Var(m.P, domain=pyo.Binary)
    m.min_tol = pyo.Var(bounds=(0.0, None))
    m.memory = pyo.Constraint(
        range(N), rule=lambda m, j: sum(float(tab.weight[i, 0] / tab.budget_bytes) * m.p[i, j] for i in fits) <= 1
    )

    def tol(i):
        return sum(m.p[i, j] for j in range(N)) / float(lat[i] * rates[i])

    m.min_cap = pyo.Constraint(active, rule=lambda m, i: m.min_tol <= tol(i))
    m.obj = pyo.Objective(expr=m.min_tol + TOL_WEIGHT * sum(tol(i) for i in active), sense=pyo.maximize)
    m.num_gpus = N
    m.fits = fits
    return m


def decode_sr(instance, model: pyo.ConcreteModel) -> Placement:
    """One ``(1, 1)`` group per GPU with its models."""
    groups = []
    for j in range(model.num_gpus):
        hosted = tuple(i for i in model.fits if pyo.value(model.p[i, j]) > 0.5)
        groups.append(Group(ParallelConfig(1, 1), hosted))
    return Placement(tuple(groups))


def capability(lat_stages: np.ndarray, slo_s: float, pp: int) -> float:
    """Reference ``compute_capability``: in-flight requests meeting the SLO, times ``0.99^pp``."""
    total, worst = float(lat_stages.sum()), float(lat_stages.max())
    if not np.isfinite(total) or total > slo_s:
        return 0.0
    return (math.floor((slo_s - total) / worst) + 1) * 0.99**pp


def build_mp_model(instance, workload: Workload | None = None) -> pyo.ConcreteModel:
    """Reference ``ModelParallelismILP`` (pure-pipeline group configs of 1, 2, 4, 8 GPUs)."""
    rates = _rates(instance, workload)
    N = instance.cluster.num_gpus
    configs = [ParallelConfig(pp, 1) for pp in MP_PIPELINES if pp <= N]
    tab = latency_tables(instance, configs)
    M = len(instance.models)
    slo = instance.slo_array()
    total_w = np.array([float(m.weight_bytes) for m in instance.models])
    f = np.zeros((M, len(configs)))
    for i in range(M):
        for k, c in enumerate(configs):
            if tab.placeable(i, k):
                f[i, k] = capability(tab.lat[i, k, : c.pp], float(slo[i]), c.pp)
    active = [i for i in range(M) if rates[i] > 0]
    K = range(len(configs))
    m = pyo.ConcreteModel(name="alpaserve_mp_capacity")
    m.tables = tab
    m.configs = configs
    m.num_slots = N
    m.p = pyo.Var(range(M), range(N), domain=pyo.Binary)
    m.s = pyo.Var(range(N), K, domain=pyo.Binary)  # no s picked = the empty config
    m.pxs = pyo.Var(range(M), range(N), K, domain=pyo.Binary)
    m.min_tol = pyo.Var(bounds=(0.0, None))
    m.one = pyo.Constraint(range(N), rule=lambda m, j: sum(m.s[j, k] for k in K) <= 1)
    m.devices = pyo.Constraint(expr=sum(configs[k].size * m.s[j, k] for j in range(N) for k in K) == N)
    m.memory = pyo.Constraint(
        range(N),
        rule=lambda m, j: (
            sum(float(total_w[i] / tab.budget_bytes) * m.p[i, j] for i in range(M))
            <= sum(configs[k].size * m.s[j, k] for k in K)
        ),
    )
    m.lin_p = pyo.Constraint(range(M), range(N), K, rule=lambda m, i, j, k: m.pxs[i, j, k] <= m.p[i, j])
    m.lin_s = pyo.Constraint(range(M), range(N), K, rule=lambda m, i, j, k: m.pxs[i, j, k] <= m.s[j, k])
    m.lin_ps = pyo.Constraint(
        range(M), range(N), K, rule=lambda m, i, j, k: m.pxs[i, j, k] >= m.p[i, j] + m.s[j, k] - 1
    )

    def tol(i):
        return sum(float(f[i, k]) * m.pxs[i, j, k] for j in range(N) for k in K) / float(rates[i])

    m.min_cap = pyo.Constraint(active, rule=lambda m, i: m.min_tol <= tol(i))
    m.obj = pyo.Objective(expr=m.min_tol + TOL_WEIGHT * sum(tol(i) for i in active), sense=pyo.maximize)
    return m


def decode_mp(instance, model: pyo.ConcreteModel, workload: Workload | None = None) -> tuple[Placement, int]:
    """Non-empty slots as groups; groups over the real per-GPU budget are repaired. Returns (placement, dropped)."""
    tab = model.tables
    counts = (workload if workload is not None else instance.train).counts()
    groups, dropped = [], 0
    for j in range(model.num_slots):
        ks = [k for k in range(len(model.configs)) if pyo.value(model.s[j, k]) > 0.5]
        if not ks:
            continue
        k = ks[0]
        hosted = [i for i in range(len(instance.models)) if pyo.value(model.p[i, j]) > 0.5 and tab.placeable(i, k)]
        dropped += sum(1 for i in range(len(instance.models)) if pyo.value(model.p[i, j]) > 0.5) - len(hosted)
        hosted.sort(key=lambda i: (-counts[i], i))
        while hosted and sum(tab.weight[i, k] for i in hosted) > tab.budget_bytes:
            hosted.pop()
            dropped += 1
        groups.append(Group(model.configs[k], tuple(sorted(hosted))))
    return Placement(tuple(groups)), dropped


def build_model(instance, workload: Workload | None = None, *, variant: str = "mp") -> pyo.ConcreteModel:
    """The common entry point: ``variant="mp"`` (``mp-ilp``, default) or ``"sr"`` (``sr-ilp``)."""
    if variant == "mp":
        model = build_mp_model(instance, workload)
    elif variant == "sr":
        model = build_sr_model(instance, workload)
    else:
        from serveplan.errors import InputError

        raise InputError("unknown capacity ILP variant", field="variant", value=variant, hint="mp or sr")
    model.variant = variant
    return model


def decode(instance, model: pyo.ConcreteModel) -> Placement:
    """The placement of either variant (the model parallel one repaired to fit the real per-GPU weights)."""
    if getattr(model, "variant", "mp") == "sr":
        return decode_sr(instance, model)
    return decode_mp(instance, model)[0]
