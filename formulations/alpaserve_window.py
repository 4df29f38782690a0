"""Window (fluid) MILP for AlpaServe placement at scale (exact_formulations.md D; docs/formulations_alpaserve.md).

Time is cut into windows ``w`` of length ``window_s``; ``D[m, w]`` is the number of requests of model m arriving
in window w (from the trace). Device slots choose a config (or none), host models within the per-GPU memory
budget, and serve a fluid amount ``v[m, g, c, w]`` of each model's demand in each window, limited by the
slot's stage throughput:

    maximise   sum v  (+ rho * sum y in mode "fluid" when replica_bonus > 0: a tie-break towards more replicas)
    s.t.       sum_c z[g, c] <= 1,   sum_{g,c} size_c z[g, c] <= N,   size(g) >= size(g+1)   (slot order)
               y[m, g, c] <= z[g, c],   sum_m weight[m, c] y[m, g, c] <= budget * z[g, c]
               v[m, g, c, w] <= D[m, w] y[m, g, c],   sum_{g,c} v[m, g, c, w] <= D[m, w]
               sum_m lat[m, c, k] v[m, g, c, w] <= cap_w z[g, c]     for every stage k ("bound")
               sum_m maxlat[m, c] v[m, g, c, w] <= cap_w z[g, c]     (bottleneck stage; "fluid")
               v, y only for (m, c) where one request alone meets the SLO on an idle group

Modes:

``"bound"`` (a relaxation): ``cap_w = window_s + d_max``, ``d_max = max_m slo_m - overhead``. Every accepted request
    arriving in window w is processed on each stage inside ``[t_w, t_w + window_s + d_max)``, FCFS occupations of a
    stage are disjoint, so the simulator's accepted counts (for any placement in the slot/config space, any
    dispatch) are a feasible ``v`` and the optimum bounds the best simulated good count from above.
``"fluid"`` (the decision model, default): ``cap_w = utilisation * window_s`` on the bottleneck stage. It ignores
    queueing inside a window and spill-over between windows, so it is **not** a bound; its placements are
    scored by the simulator.

Slot ``g`` (0-based) may only take configs of size ``<= N / (g + 1)`` (implied by the non-increasing slot sizes);
this keeps the model small at 64 GPUs.
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo

from formulations.alpaserve_trace import LatencyTables, latency_tables
from serveplan.alpaserve.cluster import Group, ParallelConfig, Placement
from serveplan.errors import InputError
from serveplan.workloads.workload import Workload

MODES = ("fluid", "bound")


def window_demand(workload: Workload, window_s: float) -> np.ndarray:
    """Requests per (model, window) with windows ``[k window_s, (k+1) window_s)``."""
    n_win = max(
        1,
        int(
            np.ceil(
                max(workload.duration_s, float(workload.arrival_s[-1]) if workload.num_requests else 0.0) / window_s
                + 1e-12
            )
        ),
    )
    w = np.minimum((workload.arrival_s // window_s).astype(int), n_win - 1)
    D = np.zeros((workload.num_models, n_win))
    np.add.at(D, (workload.model_id, w), 1.0)
    return D


def build_model(
    instance,
    workload: Workload | None = None,
    *,
    mode: str = "fluid",
    window_s: float | None = None,
    max_windows: int = 12,
    configs: list[ParallelConfig] | None = None,
    utilisation: float = 1.0,
    replica_bonus: float = 0.0,
    space: str = "slots",
    only_partition: int | None = None,
) -> pyo.ConcreteModel:
    """Build the window MILP.

    Parameters
    ----------
    instance : AlpaInstance
        Cluster, models, SLOs, latency model.
    workload : Workload, optional
        Trace the demand comes from (default ``instance.train``).
    mode : {"fluid", "bound"}
        Decision model or relaxation (module docstring).
    window_s : float, optional
        Window length; default: the busiest windows of ``duration / max_windows`` seconds.
    max_windows : int
        With ``window_s`` unset: cut the trace into windows of 5 x the largest SLO and keep the
        ``max_windows`` busiest (in "bound" mode every window is kept; the bound then covers all requests).
    configs : list of ParallelConfig, optional
        Candidate configs (default: Algorithm 2's, ``pp <= 8``, ``op <= 4``).
    utilisation : float
        Fraction of each window's time the bottleneck stage may be busy ("fluid" mode).
    replica_bonus : float
        Objective weight per hosted replica relative to one served request ("fluid" mode only). Default 0: with a
        positive bonus HiGHS finds good incumbents much later (measured: 56 s instead of 7 s to optimality on
        16 GPUs / 8 models); ``milp:window`` fills the leftover memory after decoding instead.
    space : {"slots", "partitions"}
        ``"slots"``: every slot chooses any config (sizes non-increasing; the joint space). ``"partitions"``:
        one of Algorithm 2's group partitions (:func:`heuristics.alpaserve_search.group_partitions`: equal groups
        sharing a config plus the remainder's pipelines) is chosen; far fewer binaries and far less symmetry, so
        it scales further, at the price of AlpaServe's restricted space.
    only_partition : int, optional
        With ``space="partitions"``: build only that partition's groups (index into
        :func:`heuristics.alpaserve_search.group_partitions`), for :func:`num_partitions`-way decomposition: the
        partitions-space optimum is the largest of the per-partition optima.
    """
    if mode not in MODES:
        raise InputError("unknown mode", field="mode", value=mode, hint=f"use one of {MODES}")
    wl = workload if workload is not None else instance.train
    configs = list(configs) if configs is not None else instance.cluster.parallel_configs(max_pp=8, max_op=4)
    tab = latency_tables(instance, configs)
    N = instance.cluster.num_gpus
    slo = instance.slo_array()
    M = len(instance.models)
    C = len(configs)
    if window_s is None:
        window_s = 5.0 * float(slo.max())
    D_all = window_demand(wl, window_s)
    if mode == "fluid" and D_all.shape[1] > max_windows:
        busiest = np.sort(np.argsort(-D_all.sum(axis=0), kind="stable")[:max_windows])
    else:
        busiest = np.arange(D_all.shape[1])
    D = D_all[:, busiest]
    W = D.shape[1]
    d_max = float(slo.max()) - tab.overhead_s
    cap = window_s + d_max if mode == "bound" else utilisation * window_s

    sizes = [c.size for c in configs]
    partition_of: list[int] = []  # space "partitions": the partition each slot belongs to
    if space == "partitions":
        from heuristics.alpaserve_search import group_partitions

        parts = group_partitions(instance.cluster, N)
        extra = sorted({c for p in parts for c in p} - set(configs), key=lambda c: (c.size, c.pp))
        if extra:  # remainder pipelines outside the candidate list
            configs = configs + extra
            tab = latency_tables(instance, configs)
            sizes = [c.size for c in configs]
            C = len(configs)
        slot_cfg = []
        for pi, p in enumerate(parts):
            if only_partition is not None and pi != only_partition:
                continue
            for c in p:
                slot_cfg.append((len(slot_cfg), configs.index(c)))
                partition_of.append(pi)
        if not slot_cfg:
            raise InputError("no such partition", field="only_partition", value=only_partition)
        G = len(slot_cfg)
    elif space == "slots":
        G = N // min(sizes)
        slot_cfg = [(g, c) for g in range(G) for c in range(C) if sizes[c] * (g + 1) <= N]
    else:
        raise InputError("unknown space", field="space", value=space, hint="slots or partitions")
    serve = [(i, c) for i in range(M) for c in range(C) if tab.slo_ok(i, c, slo[i])]
    by_c: dict[int, list[int]] = {}
    for i, c in serve:
        by_c.setdefault(c, []).append(i)
    YI = [(i, g, c) for (g, c) in slot_cfg for i in by_c.get(c, [])]
    VI = [(i, g, c, w) for (i, g, c) in YI for w in range(W) if D[i, w] > 0]

    m = pyo.ConcreteModel(name=f"alpaserve_window_{mode}")
    m.tables = tab
    m.mode = mode
    m.window_s = window_s
    m.windows = busiest
    m.demand = D
    m.SC = pyo.Set(initialize=slot_cfg, dimen=2)
    m.YI = pyo.Set(initialize=YI, dimen=3)
    m.VI = pyo.Set(initialize=VI, dimen=4)
    m.z = pyo.Var(m.SC, domain=pyo.Binary)
    m.y = pyo.Var(m.YI, domain=pyo.Binary)
    m.v = pyo.Var(m.VI, bounds=lambda m, i, g, c, w: (0.0, float(D[i, w])))
    m.num_slots = G

    cfg_of: dict[int, list[int]] = {}
    for g, c in slot_cfg:
        cfg_of.setdefault(g, []).append(c)
    if space == "partitions":
        # one of Algorithm 2's partitions is chosen; all its groups exist together
        n_part = max(partition_of) + 1
        m.lam = pyo.Var(range(n_part), domain=pyo.Binary)
        if only_partition is not None:
            for p in range(n_part):
                m.lam[p].fix(1 if p == only_partition else 0)
        m.one_partition = pyo.Constraint(expr=sum(m.lam[p] for p in range(n_part)) <= 1)
        m.partition_link = pyo.Constraint(m.SC, rule=lambda m, g, c: m.z[g, c] == m.lam[partition_of[g]])
    else:
        m.one_config = pyo.Constraint(list(cfg_of), rule=lambda m, g: sum(m.z[g, c] for c in cfg_of[g]) <= 1)
        m.devices = pyo.Constraint(expr=sum(sizes[c] * m.z[g, c] for g, c in slot_cfg) <= N)
        m.slot_order = pyo.Constraint(
            [g for g in range(G - 1) if g + 1 in cfg_of],
            rule=lambda m, g: (
                sum(sizes[c] * m.z[g, c] for c in cfg_of[g]) >= sum(sizes[c] * m.z[g + 1, c] for c in cfg_of[g + 1])
            ),
        )
    m.host = pyo.Constraint(m.YI, rule=lambda m, i, g, c: m.y[i, g, c] <= m.z[g, c])
    m.memory = pyo.Constraint(
        [(g, c) for g, c in slot_cfg if by_c.get(c)],
        rule=lambda m, g, c: sum(tab.weight[i, c] / tab.budget_bytes * m.y[i, g, c] for i in by_c[c]) <= m.z[g, c],
    )
    m.serve_hosted = pyo.Constraint(m.VI, rule=lambda m, i, g, c, w: m.v[i, g, c, w] <= float(D[i, w]) * m.y[i, g, c])
    v_by_iw: dict[tuple[int, int], list[tuple[int, int]]] = {}
    v_by_gcw: dict[tuple[int, int, int], list[int]] = {}
    for i, g, c, w in VI:
        v_by_iw.setdefault((i, w), []).append((g, c))
        v_by_gcw.setdefault((g, c, w), []).append(i)
    m.demand_limit = pyo.Constraint(
        list(v_by_iw), rule=lambda m, i, w: sum(m.v[i, g, c, w] for g, c in v_by_iw[(i, w)]) <= float(D[i, w])
    )
    if mode == "bound":
        rows = [(g, c, w, k) for (g, c, w) in v_by_gcw for k in range(configs[c].pp)]
        m.capacity = pyo.Constraint(
            rows,
            rule=lambda m, g, c, w, k: (
                sum(float(tab.lat[i, c, k]) * m.v[i, g, c, w] for i in v_by_gcw[(g, c, w)]) <= cap * m.z[g, c]
            ),
        )
        m.obj = pyo.Objective(expr=sum(m.v[idx] for idx in VI), sense=pyo.maximize)
    else:
        maxlat = np.nan_to_num(tab.lat, nan=0.0).max(axis=2)
        m.capacity = pyo.Constraint(
            list(v_by_gcw),
            rule=lambda m, g, c, w: (
                sum(float(maxlat[i, c]) * m.v[i, g, c, w] for i in v_by_gcw[(g, c, w)]) <= cap * m.z[g, c]
            ),
        )
        m.obj = pyo.Objective(
            expr=sum(m.v[idx] for idx in VI) + replica_bonus * sum(m.y[idx] for idx in YI), sense=pyo.maximize
        )
    return m


def num_partitions(instance) -> int:
    """How many group partitions ``space="partitions"`` chooses from."""
    from heuristics.alpaserve_search import group_partitions

    return len(group_partitions(instance.cluster, instance.cluster.num_gpus))


def served_requests(model: pyo.ConcreteModel) -> float:
    """The incumbent's fluid served requests (the objective without the replica tie-break)."""
    return float(sum(pyo.value(model.v[idx]) for idx in model.VI))


def decode(instance, model: pyo.ConcreteModel) -> Placement:
    """Configured slots (in slot order) with the models they host."""
    tab: LatencyTables = model.tables
    chosen: dict[int, int] = {}
    for g, c in model.SC:
        if pyo.value(model.z[g, c]) > 0.5:
            chosen[g] = c
    hosted: dict[int, list[int]] = {g: [] for g in chosen}
    for i, g, c in model.YI:
        if chosen.get(g) == c and pyo.value(model.y[i, g, c]) > 0.5:
            hosted[g].append(i)
    return Placement(tuple(Group(tab.configs[chosen[g]], tuple(sorted(hosted[g]))) for g in sorted(chosen)))
