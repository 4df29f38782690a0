"""Executable checks of proofs/alpaserve_milp_relations.md (what the AlpaServe MILPs optimise)."""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
import pytest

from formulations import alpaserve_trace
from serveplan.alpaserve.cluster import Cluster, Group, Placement
from serveplan.alpaserve.instance import AlpaInstance
from serveplan.alpaserve.latency import latency_model_for
from serveplan.alpaserve.model import get_model
from serveplan.alpaserve.simulator import Simulator
from serveplan.alpaserve.verify import verify
from serveplan.solvers import solve
from serveplan.workloads.arrivals import gamma_workload, power_law_rates


def tiny_instance(seed: int, rate: float = 6.0, dur: float = 3.0, slo_scale: float = 2.0) -> AlpaInstance:
    models = (get_model("bert-1.3b"), get_model("bert-2.6b"))
    lm = latency_model_for("v100-16gb")
    slo = [slo_scale * lm.single_gpu_latency_s(m) for m in models]
    wl = gamma_workload(power_law_rates(rate, 2), 3.0, dur, seed, stream=1)
    return AlpaInstance(Cluster(2, memory_budget_gb=13.0), models, slo, lm, wl, wl)


def own_simulation(tab, groups: list[tuple[int, tuple[int, ...]]], arr, mid, slo):
    """The simulator's documented rules, written here: per request (group, accepted, stage start times).

    ``groups``: (config index, hosted models) in dispatch order.
    """
    S = tab.num_stages
    clocks = np.zeros((len(groups), S))
    out = []
    for r in range(arr.size):
        i = int(mid[r])
        hosts = [g for g, (_, models) in enumerate(groups) if i in models]
        if not hosts:
            out.append((None, False, None))
            continue
        g = min(hosts, key=lambda h: (clocks[h, S - 1], h))  # earliest last-stage drain, ties lower index
        c = groups[g][0]
        lat = np.nan_to_num(tab.lat[i, c])
        t = float(arr[r])
        starts, finish = np.zeros(S), np.zeros(S)
        for k in range(S):
            starts[k] = max(t, clocks[g, k])
            t = starts[k] + lat[k]
            finish[k] = t
        ok = t + tab.overhead_s <= arr[r] + slo[i]
        if ok:
            clocks[g] = finish
        out.append((g, ok, starts))
    return out


def _random_groups(rng, inst, tab, configs):
    """A random placement in the MILP's slot/config space: groups as (config index, models)."""
    n = inst.cluster.num_gpus
    budget = tab.budget_bytes
    while True:
        groups, used = [], 0
        for _ in range(n):
            options = [c for c in range(len(configs)) if used + configs[c].size <= n]
            if not options:
                break
            c = int(rng.choice(options))
            models = tuple(i for i in range(len(inst.models)) if tab.placeable(i, c) and rng.random() < 0.7)
            if sum(tab.weight[i, c] for i in models) <= budget:
                groups.append((c, models))
                used += configs[c].size
        if groups:
            return groups


def _assign_point(model, tab, groups, sim_out, arr, mid, slo):
    """Set the offline MILP's variables to the point the proof builds from a simulator run."""
    G, S = model.num_slots, tab.num_stages
    order = sorted(range(len(groups)), key=lambda g: -groups[g][0])  # slot order: config index non-increasing
    slot_of = {g: s for s, g in enumerate(order)}
    for v in model.component_data_objects(pyo.Var):
        if v.parent_component() is not model.s:
            v.set_value(0)
    for g, (c, models) in enumerate(groups):
        s = slot_of[g]
        model.z[s, c].set_value(1)
        for i in models:
            if (i, s, c) in model.YI:
                model.y[i, s, c].set_value(1)
    for r, g, k in model.s:
        model.s[r, g, k].set_value(float(arr[r]))
    good = 0
    for r, (g, ok, starts) in enumerate(sim_out):
        if not ok:
            continue
        good += 1
        s, c = slot_of[g], groups[g][0]
        model.x[r, s, c].set_value(1)
        pp = tab.configs[c].pp
        last_finish = starts[pp - 1] + tab.lat[int(mid[r]), c, pp - 1]
        for k in range(S):
            model.s[r, s, k].set_value(float(starts[k]) if k < pp else float(last_finish))
    assert len(groups) <= G
    return good


def _violations(model, tol=1e-7):
    bad = []
    for con in model.component_data_objects(pyo.Constraint, active=True):
        body = pyo.value(con.body)
        scale = 1.0 + max(
            abs(pyo.value(con.lower)) if con.has_lb() else 0, abs(pyo.value(con.upper)) if con.has_ub() else 0
        )
        if con.has_lb() and body < pyo.value(con.lower) - tol * scale:
            bad.append((con.name, body, pyo.value(con.lower)))
        if con.has_ub() and body > pyo.value(con.upper) + tol * scale:
            bad.append((con.name, body, pyo.value(con.upper)))
    for v in model.component_data_objects(pyo.Var):
        if (v.lb is not None and v.value < v.lb - 1e-9) or (v.ub is not None and v.value > v.ub + 1e-9):
            bad.append((v.name, v.value, (v.lb, v.ub)))
    return bad


@pytest.mark.parametrize("seed", [0, 2])
def test_every_simulator_run_is_a_feasible_point_of_the_offline_milp(seed):
    inst = tiny_instance(seed)
    configs = alpaserve_trace.default_configs(inst)
    model = alpaserve_trace.build_model(inst, rules="offline", configs=configs)
    tab = model.tables
    arr, mid, slo = inst.train.arrival_s, inst.train.model_id.astype(int), inst.slo_array()
    sim = Simulator(inst, inst.train)
    rng = np.random.default_rng(seed)
    goods = []
    for _ in range(8):
        groups = _random_groups(rng, inst, tab, configs)
        placement = Placement(tuple(Group(configs[c], models) for c, models in groups))
        assert verify(inst, placement).ok
        out = own_simulation(tab, groups, arr, mid, slo)
        good = _assign_point(model, tab, groups, out, arr, mid, slo)
        assert good == int(sim.run(placement).model_good.sum())  # own rules == project simulator
        assert _violations(model) == []
        assert pyo.value(model.obj) == pytest.approx(good)
        goods.append(good)
    assert max(goods) > 0


def test_offline_optimum_bounds_simulator_rule_optimum():
    inst = tiny_instance(5)
    configs = alpaserve_trace.default_configs(inst)
    off = alpaserve_trace.build_model(inst, rules="offline", configs=configs)
    sim_rules = alpaserve_trace.build_model(inst, rules="simulator", configs=configs)
    r_off = solve(off, time_limit_s=60)
    r_sim = solve(sim_rules, time_limit_s=60)
    assert r_off.status == "optimal" and r_sim.status == "optimal"
    p = alpaserve_trace.decode(inst, sim_rules)
    best_sim = int(Simulator(inst, inst.train).run(p).model_good.sum())
    assert round(r_sim.objective) == best_sim
    assert r_off.objective >= best_sim - 1e-6
    # ... and above every placement of this 2-GPU cluster in the MILP's config space
    tab = off.tables
    sim = Simulator(inst, inst.train)
    hosts = [(), (0,), (1,), (0, 1)]

    def ok(c, h):
        return all(tab.placeable(i, c) for i in h) and sum(tab.weight[i, c] for i in h) <= tab.budget_bytes

    candidates = [[(c, h)] for c in range(len(configs)) for h in hosts if ok(c, h)]
    singles = [c for c in range(len(configs)) if configs[c].size == 1]
    candidates += [[(c1, h1), (c2, h2)] for c1 in singles for c2 in singles for h1 in hosts for h2 in hosts]
    checked = 0
    for groups in candidates:
        if all(ok(c, h) for c, h in groups) and sum(configs[c].size for c, _ in groups) <= inst.cluster.num_gpus:
            good = int(sim.run(Placement(tuple(Group(configs[c], h) for c, h in groups))).model_good.sum())
            assert r_off.objective >= good - 1e-6
            checked += 1
    assert checked > 4
