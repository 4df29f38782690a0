"""Trace-exact MILP against brute force, window and capacity MILPs on small instances."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from formulations import alpaserve_trace
from serveplan.alpaserve.cluster import Cluster, Group, Placement
from serveplan.alpaserve.instance import AlpaInstance
from serveplan.alpaserve.latency import latency_model_for
from serveplan.alpaserve.model import get_model
from serveplan.alpaserve.simulator import Simulator
from serveplan.alpaserve.verify import verify
from serveplan.registry import Budget, run_method
from serveplan.solvers import solve
from serveplan.workloads.arrivals import gamma_workload, power_law_rates


def tiny_instance(
    seed: int, n_gpus: int = 2, names=("bert-1.3b", "bert-2.6b"), rate=4.0, cv=3.0, dur=4.0, slo_scale=2.5
):
    models = tuple(get_model(n) for n in names)
    lm = latency_model_for("v100-16gb")
    slo = [slo_scale * lm.single_gpu_latency_s(m) for m in models]
    rates = power_law_rates(rate, len(models))
    train = gamma_workload(rates, cv, dur, seed, stream=1)
    test = gamma_workload(rates, cv, dur, seed, stream=0)
    return AlpaInstance(Cluster(n_gpus, memory_budget_gb=13.0), models, slo, lm, train, test)


def brute_force_best(instance, configs):
    """Best simulated good count over every ordered list of non-empty groups (written independently of the MILP)."""
    sim = Simulator(instance, instance.train)
    n = instance.cluster.num_gpus
    budget = instance.cluster.memory_budget_bytes
    subsets = {}
    for c in configs:
        ok = []
        for size in range(1, len(instance.models) + 1):
            for sub in itertools.combinations(range(len(instance.models)), size):
                if (
                    all(c.pp <= instance.models[i].num_layers for i in sub)
                    and sum(instance.latency.max_stage_weight_bytes(instance.models[i], c) for i in sub) <= budget
                ):
                    ok.append(sub)
        subsets[c] = ok
    best = 0
    best_p = Placement(())

    def rec(prefix, used):
        nonlocal best, best_p
        if prefix:
            p = Placement(tuple(prefix))
            good = int(sim.run(p).model_good.sum())
            if good > best:
                best, best_p = good, p
        for c in configs:
            if used + c.size > n:
                continue
            for sub in subsets[c]:
                rec([*prefix, Group(c, sub)], used + c.size)

    rec([], 0)
    return best, best_p


def three_model_instance(seed):
    return tiny_instance(seed, n_gpus=3, names=("bert-1.3b", "bert-2.6b", "moe-1.3b"), rate=3.0)


CASES = [
    (tiny_instance, 0),
    (tiny_instance, 2),
    (tiny_instance, 10),
    (three_model_instance, 0),
    (three_model_instance, 2),
]
SLOW_CASES = [(tiny_instance, 1), (tiny_instance, 8), (three_model_instance, 3), (three_model_instance, 10)]


@pytest.mark.parametrize(("make", "seed"), CASES + [pytest.param(*c, marks=pytest.mark.slow) for c in SLOW_CASES])
def test_trace_milp_simulator_rules_equals_brute_force(make, seed):
    inst = make(seed)
    configs = alpaserve_trace.default_configs(inst)
    best, _ = brute_force_best(inst, configs)
    m = alpaserve_trace.build_model(inst, rules="simulator", configs=configs)
    res = solve(m, time_limit_s=60)
    assert res.status == "optimal"
    assert round(res.objective) == best
    p = alpaserve_trace.decode(inst, m)
    assert verify(inst, p).ok
    assert int(Simulator(inst, inst.train).run(p).model_good.sum()) == best


@pytest.mark.parametrize(("make", "seed"), CASES)
def test_trace_milp_offline_is_an_upper_bound(make, seed):
    inst = make(seed)
    configs = alpaserve_trace.default_configs(inst)
    best, _ = brute_force_best(inst, configs)
    m = alpaserve_trace.build_model(inst, rules="offline", configs=configs)
    res = solve(m, time_limit_s=60)
    assert res.status == "optimal"
    assert res.objective >= best - 1e-6
    p = alpaserve_trace.decode(inst, m)
    assert verify(inst, p).ok


@pytest.mark.parametrize(("make", "seed"), CASES[:3])
def test_window_bound_is_an_upper_bound(make, seed):
    from formulations import alpaserve_window

    inst = make(seed)
    configs = alpaserve_trace.default_configs(inst)
    best, _ = brute_force_best(inst, configs)
    m = alpaserve_window.build_model(inst, mode="bound", configs=configs, window_s=1.0)
    res = solve(m, time_limit_s=60)
    assert res.status == "optimal"
    assert res.objective >= best - 1e-6
    assert verify(inst, alpaserve_window.decode(inst, m)).ok


def test_registered_milps_decode_verify_and_simulate():
    inst = tiny_instance(0)
    for name in (
        "milp:trace",
        "milp:trace_offline",
        "milp:window",
        "milp:window_bound",
        "ilp:capacity",
        "ilp:sr_capacity",
    ):
        res = run_method("alpaserve", name, inst, Budget(time_limit_s=30))
        assert res.status == "optimal", name
        assert res.verified, (name, res.violations)
        assert 0.0 <= res.info["train_attainment"] <= 1.0
        assert res.bound is not None and res.gap is not None
    exact = run_method("alpaserve", "milp:trace", inst, Budget(time_limit_s=30))
    assert round(exact.objective) == exact.info["train_good"]
    for name in ("search", "greedy", "sr"):
        assert run_method("alpaserve", name, inst, Budget()).info["train_attainment"] * inst.train.num_requests <= (
            exact.objective + 1e-6
        )


def test_window_demand_counts_every_request():
    from formulations.alpaserve_window import window_demand

    inst = tiny_instance(4)
    D = window_demand(inst.train, 0.7)
    assert D.sum() == inst.train.num_requests
    np.testing.assert_array_equal(D.sum(axis=1), inst.train.counts())


def test_capacity_milp_on_larger_instance_is_verified():
    inst = tiny_instance(0, n_gpus=4, names=("bert-1.3b", "bert-2.6b", "bert-6.7b"), rate=8.0, dur=20.0)
    res = run_method("alpaserve", "ilp:capacity", inst, Budget(time_limit_s=20))
    assert res.status in ("optimal", "feasible") and res.verified
    res = run_method("alpaserve", "milp:window", inst, Budget(time_limit_s=20))
    assert res.status in ("optimal", "feasible") and res.verified


def test_window_partition_space_and_memory_fill():
    inst = tiny_instance(0, n_gpus=4, names=("bert-1.3b", "bert-2.6b"), rate=6.0, dur=20.0)
    res = run_method("alpaserve", "milp:window", inst, Budget(time_limit_s=30, options={"space": "partitions"}))
    assert res.status == "optimal" and res.verified
    sizes = {g.config.size for g in res.solution.groups}
    assert len(sizes - {1}) <= 1  # Algorithm 2's partitions: one regular size (plus remainder pipelines)
    assert res.info["train_attainment"] >= res.info["unfilled_train_attainment"] - 0.05
    unfilled = run_method("alpaserve", "milp:window", inst, Budget(time_limit_s=30, options={"fill": "false"}))
    assert unfilled.verified and "unfilled_train_attainment" not in unfilled.info


def test_window_decomposition_matches_the_partition_space_optimum():
    inst = tiny_instance(0, n_gpus=4, names=("bert-1.3b", "bert-2.6b"), rate=6.0, dur=20.0)
    joint = run_method("alpaserve", "milp:window", inst, Budget(time_limit_s=30, options={"space": "partitions"}))
    dec = run_method("alpaserve", "milp:window", inst, Budget(time_limit_s=30, options={"space": "decompose"}))
    assert joint.status == dec.status == "optimal"
    assert dec.objective == pytest.approx(joint.objective, abs=1e-6)
    assert dec.verified and len(dec.info["partitions"]) > 1


def test_capacity_module_entry_points():
    from formulations import alpaserve_capacity

    inst = tiny_instance(0)
    for variant in ("mp", "sr"):
        m = alpaserve_capacity.build_model(inst, variant=variant)
        assert solve(m, time_limit_s=20).status == "optimal"
        assert verify(inst, alpaserve_capacity.decode(inst, m)).ok


def test_window_milp_backends_agree():
    """The window MILP's memory rows are normalised by the budget, so SCIP's presolve sees sane coefficients."""
    from serveplan.registry import get_family
    from serveplan.solvers import compile_pyomo, solve_lp

    inst = get_family("alpaserve", "synthetic").fn(
        {"models": "s3_small", "num_gpus": 8, "cv": 4, "duration": 60, "rate": 10}, 0
    )
    from formulations import alpaserve_window

    lp, _ = compile_pyomo(alpaserve_window.build_model(inst, max_windows=4))
    assert np.abs(lp.A.data).max() < 1e4
    objs = {}
    for backend in ("highs", "scip"):
        res, x = solve_lp(lp, backend, time_limit_s=60, threads=1)
        assert res.status == "optimal", (backend, res.message)
        assert lp.max_violation(x) < 1e-6
        objs[backend] = res.objective
    assert objs["highs"] == pytest.approx(objs["scip"], rel=1e-6)
