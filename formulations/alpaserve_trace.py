"""Trace-exact MILP for AlpaServe placement on small traces (exact_formulations.md C; docs/formulations_alpaserve.md).

Decides jointly, for a given request trace: the group configuration of every device slot, which models each
group hosts, and where (and whether) each request is served, maximising the number of requests that finish
within their SLO under the simulator's latency semantics (:mod:`serveplan.alpaserve.simulator`): stage latencies
multiplied by ``1 + stage_penalty * pp``, per-stage FCFS recursion ``t_k = max(t_{k-1}, c_k) + lat_k``, finish =
last stage + ``fixed_overhead_s``, a request counts iff ``finish - arrival <= slo``.

Two rule sets (``rules``):

``"offline"`` (upper bound)
    Any request may be sent to any group hosting its model, or dropped, by a clairvoyant dispatcher; every group
    serves its requests FCFS on every stage **in arrival order** (no overtaking). The optimum is an upper bound on
    the simulated good count of every placement in the slot/config space (the simulator's run is one feasible
    point), attained by an offline dispatcher. Slots are ordered by config index (valid: relabelling slots is a
    symmetry here).
``"simulator"`` (exact)
    The simulator's own online rules are constraints: dispatch to the hosting group with the smallest last-stage
    clock (ties to the lower slot index), accept iff the tentative finish meets the SLO, otherwise drop without
    consuming anything. Every simulator run is feasible, so the optimum is at least the best simulated good count
    over all placements (ordered groups) in the slot/config space, and it equals it unless some decision is an
    exact tie the model may resolve either way: a tentative finish exactly at the deadline (within ``eps_s``,
    default 0, and the solver's feasibility tolerance), or two *used* groups with exactly equal last-stage clocks.
    Ties between idle groups (the common case: every group is idle at the start) follow the simulator's
    lower-index rule exactly. Only empty slots are ordered last (group order matters to that rule, so no other
    symmetry is broken).

Big-M values come from the trace: no time exceeds ``H = max_r(a_r + slo_r) + max stage-latency sum``, and
offline FCFS pairs (r', r) get ``M = a_r' + slo_r' - overhead - a_r`` (pairs with M <= 0 need no constraint).
Size: offline O(R^2_overlap G S) rows; simulator O(R G^2 + R G S) rows, O(R G S) binaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo

from serveplan.alpaserve.cluster import Group, ParallelConfig, Placement
from serveplan.alpaserve.simulator import Simulator
from serveplan.errors import InputError
from serveplan.workloads.workload import Workload

RULES = ("offline", "simulator")


@dataclass
class LatencyTables:
    """The simulator's effective per-stage latencies and per-GPU weights for a list of configs.

    ``lat[m, c, k]``: penalised stage latency (0 for ``k >= pp``; NaN where the model cannot run ``c``);
    ``weight[m, c]``: per-GPU weight bytes (inf where it cannot); ``overhead_s``: fixed per-request overhead.
    """

    configs: list[ParallelConfig]
    lat: np.ndarray
    weight: np.ndarray
    overhead_s: float
    budget_bytes: float

    @property
    def num_stages(self) -> int:
        """Stages after padding (the largest pp)."""
        return self.lat.shape[2]

    def placeable(self, m: int, c: int) -> bool:
        """Whether model ``m`` can run and fits alone under config ``c``."""
        return bool(np.isfinite(self.weight[m, c]) and self.weight[m, c] <= self.budget_bytes)

    def slo_ok(self, m: int, c: int, slo_s: float) -> bool:
        """Whether a request of ``m`` alone on an idle ``c`` group meets ``slo_s``."""
        return self.placeable(m, c) and float(np.nansum(self.lat[m, c])) + self.overhead_s <= slo_s


def latency_tables(instance, configs: list[ParallelConfig], simulator: Simulator | None = None) -> LatencyTables:
    """Effective latency/weight tables using the simulator's own latency function, penalty and overhead."""
    sim = simulator if simulator is not None else Simulator(instance, instance.train)
    n_models = len(instance.models)
    S = max(c.pp for c in configs)
    lat = np.zeros((n_models, len(configs), S))
    weight = np.full((n_models, len(configs)), np.inf)
    for j, c in enumerate(configs):
        mult = 1.0 + sim.stage_penalty * c.pp
        for m, spec in enumerate(instance.models):
            stages = sim.latency_fn(m, c, 1)
            if stages is None or c.pp > spec.num_layers:
                lat[m, j, :] = np.nan
                continue
            lat[m, j, : c.pp] = np.asarray(stages, dtype=float) * mult
            weight[m, j] = instance.latency.max_stage_weight_bytes(spec, c)
    return LatencyTables(list(configs), lat, weight, sim.fixed_overhead_s, instance.cluster.memory_budget_bytes)


def default_configs(instance, max_group_size: int | None = None) -> list[ParallelConfig]:
    """Every valid power-of-two config of the cluster (up to ``max_group_size``) that some model fits."""
    n = instance.cluster.num_gpus
    limit = n if max_group_size is None else min(n, max_group_size)
    out = []
    for c in instance.cluster.parallel_configs(max_pp=limit, max_op=limit):
        if c.size > limit:
            continue
        if any(
            c.pp <= spec.num_layers
            and instance.latency.max_stage_weight_bytes(spec, c) <= instance.cluster.memory_budget_bytes
            for spec in instance.models
        ):
            out.append(c)
    return out


def interval_cuts(
    arr: np.ndarray, mid: np.ndarray, slo: np.ndarray, tab: LatencyTables, servable
) -> list[tuple[int, int, tuple[int, ...], float]]:
    """Capacity cuts ``(config, stage, requests, length)`` from the trace.

    For every interval ``[a_i, a_j + slo_j - overhead]`` (i, j requests) and every config c and stage k: the
    requests whose whole window ``[a_r, a_r + slo_r - overhead]`` lies inside can occupy stage k of one group
    with config c for at most the interval's length, because FCFS stage occupations are disjoint and an
    accepted request is processed inside its window. Only cuts that can bind (total latency above the length)
    are returned. O(R^2 C S) candidates.
    """
    ovh = tab.overhead_s
    R = arr.size
    lo = arr
    hi = arr + slo[mid] - ovh
    out = []
    seen = set()
    for c in range(len(tab.configs)):
        ok = np.array([servable(int(mid[r]), c) for r in range(R)], dtype=bool)
        for i in range(R):
            for j in range(R):
                t1, t2 = lo[i], hi[j]
                if t2 <= t1:
                    continue
                inside = tuple(int(r) for r in np.flatnonzero(ok & (lo >= t1) & (hi <= t2)))
                if len(inside) < 2 or (c, inside) in seen:
                    continue
                seen.add((c, inside))
                for k in range(tab.num_stages):
                    need = float(sum(tab.lat[int(mid[r]), c, k] for r in inside))
                    if need > t2 - t1 + 1e-9:
                        out.append((c, k, inside, float(t2 - t1)))
    return out


def build_model(
    instance,
    workload: Workload | None = None,
    *,
    rules: str = "simulator",
    configs: list[ParallelConfig] | None = None,
    num_slots: int | None = None,
    eps_s: float = 0.0,
    max_requests: int = 400,
) -> pyo.ConcreteModel:
    """Build the trace MILP (maximise requests served within SLO).

    Parameters
    ----------
    instance : AlpaInstance
        Cluster, models, SLOs, latency model.
    workload : Workload, optional
        The trace (default ``instance.train``).
    rules : {"simulator", "offline"}
        Exact simulator rules, or the offline upper bound (module docstring).
    configs : list of ParallelConfig, optional
        Candidate group configs (default :func:`default_configs`).
    num_slots : int, optional
        Device slots (default: number of GPUs divided by the smallest config size).
    eps_s : float
        A dropped request must miss its deadline by at least this much (seconds; default 0). A positive value
        makes the drop rule strict but cuts off simulator runs with a request missing by less than ``eps_s``.
    max_requests : int
        Refuse larger traces (the model grows quadratically).

    Returns
    -------
    pyomo.ConcreteModel
        With ``m.tables``, ``m.slots``, ``m.rules`` attached for :func:`decode`.
    """
    if rules not in RULES:
        raise InputError("unknown rule set", field="rules", value=rules, hint=f"use one of {RULES}")
    wl = workload if workload is not None else instance.train
    if wl.num_requests > max_requests:
        raise InputError(
            "trace too long for the trace-exact MILP",
            field="workload",
            value=wl.num_requests,
            hint=f"at most {max_requests} requests (use milp:window for larger traces)",
        )
    configs = list(configs) if configs is not None else default_configs(instance)
    if not configs:
        raise InputError("no config can host any model", field="configs")
    tab = latency_tables(instance, configs)
    N = instance.cluster.num_gpus
    G = num_slots if num_slots is not None else N // min(c.size for c in configs)
    S = tab.num_stages
    C = len(configs)
    M = len(instance.models)
    arr = wl.arrival_s
    mid = wl.model_id.astype(int)
    slo = instance.slo_array()
    R = arr.size
    offline = rules == "offline"

    m = pyo.ConcreteModel(name=f"alpaserve_trace_{rules}")
    m.rules = rules
    m.tables = tab
    m.num_slots = G
    m.G = pyo.RangeSet(0, G - 1)
    m.C = pyo.RangeSet(0, C - 1)
    m.K = pyo.RangeSet(0, S - 1)
    # a (model, config) pair may be hosted: offline only where one request alone meets its SLO
    host = [
        (i, c) for i in range(M) for c in range(C) if (tab.slo_ok(i, c, slo[i]) if offline else tab.placeable(i, c))
    ]
    host_by_model: dict[int, list[int]] = {}
    for i, c in host:
        host_by_model.setdefault(i, []).append(c)

    m.z = pyo.Var(m.G, m.C, domain=pyo.Binary)
    m.YI = pyo.Set(initialize=[(i, g, c) for (i, c) in host for g in range(G)], dimen=3)
    m.y = pyo.Var(m.YI, domain=pyo.Binary)
    m.one_config = pyo.Constraint(m.G, rule=lambda m, g: sum(m.z[g, c] for c in m.C) <= 1)
    m.devices = pyo.Constraint(expr=sum(configs[c].size * m.z[g, c] for g in m.G for c in m.C) <= N)
    m.host_needs_config = pyo.Constraint(m.YI, rule=lambda m, i, g, c: m.y[i, g, c] <= m.z[g, c])
    by_gc: dict[tuple[int, int], list[int]] = {}
    for i, c in host:
        for g in range(G):
            by_gc.setdefault((g, c), []).append(i)
    m.memory = pyo.Constraint(
        list(by_gc),
        rule=lambda m, g, c: (
            sum(tab.weight[i, c] / tab.budget_bytes * m.y[i, g, c] for i in by_gc[(g, c)]) <= m.z[g, c]
        ),
    )
    if offline:
        _config_order = [(g, g + 1) for g in range(G - 1)]
        m.slot_order = pyo.Constraint(
            _config_order,
            rule=lambda m, g, h: sum((c + 1) * m.z[g, c] for c in m.C) >= sum((c + 1) * m.z[h, c] for c in m.C),
        )
        _build_offline(m, tab, arr, mid, slo, host_by_model, G, S)
    else:
        m.slot_order = pyo.Constraint(
            [(g, g + 1) for g in range(G - 1)],
            rule=lambda m, g, h: sum(m.z[g, c] for c in m.C) >= sum(m.z[h, c] for c in m.C),
        )
        _build_simulator(m, tab, arr, mid, slo, host_by_model, G, S, eps_s)
    m.requests = R
    return m


def _build_offline(m, tab: LatencyTables, arr, mid, slo, host_by_model, G: int, S: int) -> None:
    ovh = tab.overhead_s
    R = arr.size
    XI = [(r, g, c) for r in range(R) for c in host_by_model.get(int(mid[r]), []) for g in range(G)]
    m.XI = pyo.Set(initialize=XI, dimen=3)
    m.x = pyo.Var(m.XI, domain=pyo.Binary)
    x_by_rg: dict[tuple[int, int], list[int]] = {}
    for r, g, c in XI:
        x_by_rg.setdefault((r, g), []).append(c)
    served = sorted({r for r, _, _ in XI})
    m.serve_link = pyo.Constraint(m.XI, rule=lambda m, r, g, c: m.x[r, g, c] <= m.y[int(mid[r]), g, c])
    m.serve_once = pyo.Constraint(
        served, rule=lambda m, r: sum(m.x[r, g, c] for g in range(G) for c in x_by_rg.get((r, g), [])) <= 1
    )
    RG = sorted(x_by_rg)
    m.s = pyo.Var(
        [(r, g, k) for r, g in RG for k in range(S)],
        bounds=lambda m, r, g, k: (float(arr[r]), float(arr[r] + slo[mid[r]])),
    )

    def L(r, g, k):
        i = int(mid[r])
        return sum(float(tab.lat[i, c, k]) * m.x[r, g, c] for c in x_by_rg[(r, g)])

    def X(r, g):
        return sum(m.x[r, g, c] for c in x_by_rg[(r, g)])

    m.chain = pyo.Constraint(
        [(r, g, k) for r, g in RG for k in range(1, S)],
        rule=lambda m, r, g, k: m.s[r, g, k] >= m.s[r, g, k - 1] + L(r, g, k - 1),
    )
    m.deadline = pyo.Constraint(
        RG,
        rule=lambda m, r, g: m.s[r, g, S - 1] + L(r, g, S - 1) + ovh * X(r, g) <= float(arr[r] + slo[mid[r]]),
    )
    pairs = []
    for r2, g in RG:
        for r1 in range(r2):
            if (r1, g) not in x_by_rg:
                continue
            big = float(arr[r1] + slo[mid[r1]] - ovh - arr[r2])
            if big > 0:
                pairs.extend((r1, r2, g, k, big) for k in range(S))
    m.FI = pyo.Set(initialize=[p[:4] for p in pairs], dimen=4)
    bigs = {p[:4]: p[4] for p in pairs}
    m.fcfs = pyo.Constraint(
        m.FI,
        rule=lambda m, r1, r2, g, k: (
            m.s[r2, g, k] >= m.s[r1, g, k] + L(r1, g, k) - bigs[(r1, r2, g, k)] * (2 - X(r1, g) - X(r2, g))
        ),
    )
    cuts = interval_cuts(arr, mid, slo, tab, lambda i, c: c in host_by_model.get(i, []))
    m.capacity_cut = pyo.Constraint(
        [(n, g) for n in range(len(cuts)) for g in range(G)],
        rule=lambda m, n, g: (
            sum(float(tab.lat[int(mid[r]), cuts[n][0], cuts[n][1]]) * m.x[r, g, cuts[n][0]] for r in cuts[n][2])
            <= cuts[n][3]
        ),
    )
    m.obj = pyo.Objective(expr=sum(m.x[idx] for idx in XI), sense=pyo.maximize)


def _build_simulator(m, tab: LatencyTables, arr, mid, slo, host_by_model, G: int, S: int, eps: float) -> None:
    ovh = tab.overhead_s
    R = arr.size
    finite = np.nan_to_num(tab.lat, nan=0.0)
    H = float(np.max(arr + slo[mid]) + finite.sum(axis=2).max() + 1.0) if R else 1.0
    C = len(tab.configs)
    RG = [(r, g) for r in range(R) for g in range(G) if host_by_model.get(int(mid[r]))]
    rs = sorted({r for r, _ in RG})
    m.RG = pyo.Set(initialize=RG, dimen=2)
    RGK = [(r, g, k) for r, g in RG for k in range(S)]
    m.ch = pyo.Var(m.RG, domain=pyo.Binary)  # request r is dispatched to slot g
    m.acc = pyo.Var(m.RG, domain=pyo.Binary)  # ... and accepted there
    m.w = pyo.Var(RGK, domain=pyo.Binary)  # which term of the max is active
    m.T = pyo.Var(RGK, bounds=(0.0, H))  # tentative stage finish of r at g
    # clock of slot g, stage k, just before request rs[j] (j = len(rs): after the last)
    m.clk = pyo.Var(range(len(rs) + 1), range(G), range(S), bounds=(0.0, H))
    for g in range(G):
        for k in range(S):
            m.clk[0, g, k].fix(0.0)
    pos = {r: j for j, r in enumerate(rs)}

    def Y(i, g):
        return sum(m.y[i, g, c] for c in host_by_model.get(i, []))

    def L(r, g, k):
        i = int(mid[r])
        return sum(float(finite[i, c, k]) * m.z[g, c] for c in range(C) if tab.placeable(i, c))

    def prev(r, g, k):
        return float(arr[r]) if k == 0 else m.T[r, g, k - 1]

    m.dispatch_host = pyo.Constraint(m.RG, rule=lambda m, r, g: m.ch[r, g] <= Y(int(mid[r]), g))
    m.dispatch_once = pyo.Constraint(rs, rule=lambda m, r: sum(m.ch[r, g] for g in range(G)) <= 1)
    m.dispatch_some = pyo.Constraint(m.RG, rule=lambda m, r, h: sum(m.ch[r, g] for g in range(G)) >= Y(int(mid[r]), h))
    last = S - 1
    argmin = [(r, g, h) for r in rs for g in range(G) for h in range(G) if g != h]
    m.dispatch_min = pyo.Constraint(
        argmin,
        rule=lambda m, r, g, h: (
            m.clk[pos[r], g, last] <= m.clk[pos[r], h, last] + H * (2 - m.ch[r, g] - Y(int(mid[r]), h))
        ),
    )
    # the only ties that occur in practice are between idle slots (clock 0 here, -inf in the simulator): the
    # lower index wins, so a later slot may be chosen only if every earlier hosting slot has been used, and a
    # used slot's last clock is at least the smallest single-request latency
    lmin = float(finite.sum(axis=2)[finite.sum(axis=2) > 0].min()) if np.any(finite > 0) else 1.0
    m.dispatch_idle_tie = pyo.Constraint(
        [(r, g, h) for (r, g, h) in argmin if h < g],
        rule=lambda m, r, g, h: m.clk[pos[r], h, last] >= lmin * (m.ch[r, g] + Y(int(mid[r]), h) - 1),
    )
    m.t_prev = pyo.Constraint(RGK, rule=lambda m, r, g, k: m.T[r, g, k] >= prev(r, g, k) + L(r, g, k))
    m.t_clock = pyo.Constraint(RGK, rule=lambda m, r, g, k: m.T[r, g, k] >= m.clk[pos[r], g, k] + L(r, g, k))
    m.w_link = pyo.Constraint(RGK, rule=lambda m, r, g, k: m.w[r, g, k] <= m.ch[r, g])
    m.t_max_a = pyo.Constraint(
        RGK, rule=lambda m, r, g, k: m.T[r, g, k] <= prev(r, g, k) + L(r, g, k) + H * (1 - m.w[r, g, k])
    )
    m.t_max_b = pyo.Constraint(
        RGK,
        rule=lambda m, r, g, k: m.T[r, g, k] <= m.clk[pos[r], g, k] + L(r, g, k) + H * (1 - m.ch[r, g] + m.w[r, g, k]),
    )
    m.acc_link = pyo.Constraint(m.RG, rule=lambda m, r, g: m.acc[r, g] <= m.ch[r, g])
    m.acc_meets = pyo.Constraint(
        m.RG,
        rule=lambda m, r, g: m.T[r, g, last] + ovh <= float(arr[r] + slo[mid[r]]) + H * (1 - m.acc[r, g]),
    )
    m.drop_misses = pyo.Constraint(
        m.RG,
        rule=lambda m, r, g: (
            m.T[r, g, last] + ovh >= float(arr[r] + slo[mid[r]]) + eps - H * (1 - m.ch[r, g] + m.acc[r, g])
        ),
    )
    # clock update: clk' = T if accepted else clk (slots that cannot receive r keep their clocks)
    upd = [(r, g, k) for r in rs for g in range(G) for k in range(S)]
    has = set(RG)

    def nxt(r, g, k):
        return m.clk[pos[r] + 1, g, k]

    def cur(r, g, k):
        return m.clk[pos[r], g, k]

    def acc(r, g):
        return m.acc[r, g] if (r, g) in has else 0.0

    m.clk_keep_lo = pyo.Constraint(upd, rule=lambda m, r, g, k: nxt(r, g, k) >= cur(r, g, k))
    m.clk_keep_hi = pyo.Constraint(upd, rule=lambda m, r, g, k: nxt(r, g, k) <= cur(r, g, k) + H * acc(r, g))
    m.clk_set_lo = pyo.Constraint(
        [u for u in upd if u[:2] in has],
        rule=lambda m, r, g, k: nxt(r, g, k) >= m.T[r, g, k] - H * (1 - m.acc[r, g]),
    )
    m.clk_set_hi = pyo.Constraint(
        [u for u in upd if u[:2] in has],
        rule=lambda m, r, g, k: nxt(r, g, k) <= m.T[r, g, k] + H * (1 - m.acc[r, g]),
    )
    # capacity cuts on accepted requests, active on the slot's chosen config (accepted => SLO met there)
    cuts = interval_cuts(arr, mid, slo, tab, lambda i, c: tab.slo_ok(i, c, slo[i]))

    def cut_rule(m, n, g):
        c, k, inside, length = cuts[n]
        lats = [float(tab.lat[int(mid[r]), c, k]) for r in inside]
        return sum(lt * m.acc[r, g] for lt, r in zip(lats, inside, strict=True) if (r, g) in has) <= length + (
            sum(lats) - length
        ) * (1 - m.z[g, c])

    m.capacity_cut = pyo.Constraint([(n, g) for n in range(len(cuts)) for g in range(G)], rule=cut_rule)
    m.obj = pyo.Objective(expr=sum(m.acc[r, g] for r, g in RG), sense=pyo.maximize)


def decode(instance, model: pyo.ConcreteModel) -> Placement:
    """The placement in the incumbent: configured slots in slot order, with the models they host.

    Slots with a config but no model are kept (they hold devices and, under the simulator rules, their order
    is the order the MILP reasoned about).
    """
    tab: LatencyTables = model.tables
    groups = []
    for g in range(model.num_slots):
        chosen = [c for c in range(len(tab.configs)) if pyo.value(model.z[g, c]) > 0.5]
        if not chosen:
            continue
        c = chosen[0]
        hosted = tuple(
            sorted(i for (i, gg, cc) in model.YI if gg == g and cc == c and pyo.value(model.y[i, gg, cc]) > 0.5)
        )
        groups.append(Group(tab.configs[c], hosted))
    return Placement(tuple(groups))
