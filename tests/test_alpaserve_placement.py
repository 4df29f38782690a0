"""AlpaServe placement heuristics: memory, determinism, beam(1) = greedy, bounds by brute force, baselines."""

from __future__ import annotations

import numpy as np
import pytest
from test_alpaserve_milp import brute_force_best, tiny_instance

from heuristics.alpaserve_ablations import equal_groups, round_robin
from heuristics.alpaserve_greedy import SelectionContext, beam_selection, fast_greedy, greedy_selection
from heuristics.alpaserve_search import PlacementSearch, device_splits, group_partitions, model_buckets
from heuristics.clockwork import clockwork_pp
from heuristics.selective_replication import selective_replication
from serveplan.alpaserve.cluster import Cluster, ParallelConfig, TimeVaryingPlacement
from serveplan.alpaserve.instance import AlpaInstance
from serveplan.alpaserve.latency import latency_model_for
from serveplan.alpaserve.model import get_model
from serveplan.alpaserve.simulator import Simulator
from serveplan.alpaserve.verify import verify
from serveplan.errors import InputError
from serveplan.registry import Budget, run_method
from serveplan.workloads.arrivals import gamma_workload, power_law_rates

MIXED = ("bert-1.3b", "bert-2.6b", "bert-6.7b", "moe-1.3b")


def instance(n_gpus=8, names=MIXED * 2, rate=20.0, cv=3.0, dur=60.0, seed=0, slo_scale=5.0, budget_gb=13.0):
    models = tuple(get_model(n) for n in names)
    lm = latency_model_for("v100-16gb")
    slo = [slo_scale * lm.single_gpu_latency_s(m) for m in models]
    rates = power_law_rates(rate, len(models))
    train = gamma_workload(rates, cv, dur, seed, stream=1)
    test = gamma_workload(rates, cv, dur, seed, stream=0)
    return AlpaInstance(Cluster(n_gpus, memory_budget_gb=budget_gb), models, slo, lm, train, test)


def assert_within_memory(inst, placement):
    report = verify(inst, placement)
    assert report.ok, report.violations
    assert max(report.memory_bytes_per_group, default=0.0) <= inst.cluster.memory_budget_bytes


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("budget_gb", [6.0, 13.0])
def test_selectors_never_exceed_memory(seed, budget_gb):
    inst = instance(seed=seed, budget_gb=budget_gb)
    ctx = SelectionContext(inst, Simulator(inst, inst.train))
    for configs in group_partitions(inst.cluster, 8):
        assert_within_memory(inst, fast_greedy(ctx, configs).placement)
    configs = [ParallelConfig(2, 2), ParallelConfig(4, 1)]
    assert_within_memory(inst, greedy_selection(ctx, configs).placement)
    assert_within_memory(inst, beam_selection(ctx, configs, 2).placement)
    assert_within_memory(inst, PlacementSearch(inst, inst.train).run().placement)
    assert_within_memory(inst, selective_replication(inst).placement)
    assert_within_memory(inst, round_robin(inst))


def test_fast_greedy_fills_memory():
    inst = instance(n_gpus=4, names=("bert-1.3b",) * 4)
    ctx = SelectionContext(inst, Simulator(inst, inst.train))
    sel = fast_greedy(ctx, [ParallelConfig(1, 1)] * 4)
    w = inst.latency.max_stage_weight_bytes(inst.models[0], ParallelConfig(1, 1))
    per_gpu = min(4, int(inst.cluster.memory_budget_bytes // w))
    assert all(len(g.models) == per_gpu for g in sel.placement.groups)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_beam_width_one_equals_plain_greedy(seed):
    inst = instance(n_gpus=4, names=MIXED, rate=12.0, dur=30.0, seed=seed, slo_scale=3.0)
    ctx = SelectionContext(inst, Simulator(inst, inst.train))
    for configs in ([ParallelConfig(1, 1)] * 4, [ParallelConfig(2, 1)] * 2, [ParallelConfig(2, 2)]):
        a = greedy_selection(ctx, configs)
        b = beam_selection(ctx, configs, 1)
        assert a.placement == b.placement
        assert a.score == b.score


def test_wider_beam_is_not_worse_than_its_first_step():
    inst = instance(n_gpus=4, names=MIXED, rate=12.0, dur=30.0, seed=5, slo_scale=3.0)
    ctx = SelectionContext(inst, Simulator(inst, inst.train))
    configs = [ParallelConfig(1, 1)] * 4
    # the best-ever rule makes every beam at least as good as the empty placement
    assert (
        beam_selection(ctx, configs, 3).score
        >= ctx.simulate(
            __import__("heuristics.alpaserve_greedy", fromlist=["WorkingPlacement"]).WorkingPlacement.empty(configs)
        )[1]
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_heuristics_never_beat_brute_force(seed):
    inst = tiny_instance(seed)
    from formulations.alpaserve_trace import default_configs

    best, _ = brute_force_best(inst, default_configs(inst))
    sim = Simulator(inst, inst.train)
    for name in ("greedy", "beam:2", "search", "search_flat", "sr", "round_robin", "greedy_group:2"):
        res = run_method("alpaserve", name, inst, Budget())
        assert res.verified, (name, res.violations)
        good = int(sim.run(res.solution).model_good.sum())
        assert good <= best, name
        assert res.objective == pytest.approx(good / inst.train.num_requests)


def test_sr_builds_only_single_gpu_groups():
    inst = instance(n_gpus=6)
    p = selective_replication(inst).placement
    assert len(p.groups) == 6
    assert all(g.config == ParallelConfig(1, 1) for g in p.groups)
    res = run_method("alpaserve", "sr", inst, Budget())
    assert all(g.config.size == 1 for g in res.solution.groups)


def test_clockwork_is_a_verified_oracle_time_varying_placement():
    inst = instance(n_gpus=4, dur=60.0)
    tvp = clockwork_pp(inst, 20.0)
    assert isinstance(tvp, TimeVaryingPlacement)
    assert tvp.start_times_s[0] == 0.0
    assert all(g.config.size == 1 for p in tvp.placements for g in p.groups)
    res = run_method("alpaserve", "clockwork++:20", inst, Budget())
    assert res.verified and res.info["oracle"] is True and res.info["fitted_to"] == "test"
    # fitted to the test trace, it serves the test trace at least as well as static SR fitted to train
    sr = run_method("alpaserve", "sr", inst, Budget())
    assert res.info["test_attainment"] >= sr.info["test_attainment"] - 0.02


def test_ablations_shapes():
    inst = instance(n_gpus=8)
    p = round_robin(inst)
    assert [g.config for g in p.groups] == [ParallelConfig(4, 1)] * 2
    assert_within_memory(inst, p)
    eq = equal_groups(inst, ParallelConfig(2, 2))
    assert len(eq.groups) == 2 and all(len(g.models) == 1 for g in eq.groups)
    res = run_method("alpaserve", "greedy_group:2", inst, Budget())
    assert all(g.config == ParallelConfig(2, 1) for g in res.solution.groups)
    res = run_method("alpaserve", "equal:2x1", inst, Budget())
    assert res.verified and all(len(g.models) == 1 for g in res.solution.groups)


def test_group_partitions_match_the_reference_enumeration():
    parts = group_partitions(Cluster(64), 64)
    assert len(parts) == 12
    assert max(c.size for p in parts for c in p) == 32
    thirteen = group_partitions(Cluster(16), 13)
    # size-4 groups: 3 regular groups plus the remainder 1 as a pure pipeline
    assert [ParallelConfig(4, 1)] * 3 + [ParallelConfig(1, 1)] in thirteen


def test_buckets_and_splits():
    inst = instance(names=("bert-6.7b", "bert-1.3b", "bert-2.6b", "moe-1.3b"))
    buckets = model_buckets(inst)
    assert buckets == [[0], [1, 2, 3]]
    splits = device_splits(16, [1.0, 3.0], [0.4, 0.15])
    assert all(sum(s) == 16 and min(s) >= 1 for s in splits)
    assert len(splits) < 100


def test_bucket_search_memo_and_pruning_match_the_reference_loop():
    inst = instance(n_gpus=8, names=("bert-6.7b", "bert-1.3b", "bert-2.6b", "moe-1.3b") * 2, rate=25.0, dur=60.0)
    fast = PlacementSearch(inst, inst.train).run()
    memo = PlacementSearch(inst, inst.train, prune_monotone=False).run()
    ref = PlacementSearch(inst, inst.train, reference_loop=True).run()
    assert fast.attainment >= ref.attainment - 1e-12
    assert memo.attainment >= ref.attainment - 1e-12
    assert fast.num_simulations <= ref.num_simulations


def test_results_are_deterministic():
    inst = instance(seed=3)
    for name in ("search", "sr", "greedy_group:4", "round_robin"):
        a = run_method("alpaserve", name, inst, Budget(seed=1))
        b = run_method("alpaserve", name, inst, Budget(seed=1))
        assert a.solution == b.solution and a.objective == b.objective
    c = run_method("alpaserve", "clockwork++:30", inst, Budget())
    d = run_method("alpaserve", "clockwork++:30", inst, Budget())
    assert c.solution == d.solution


def test_methods_report_train_attainment():
    inst = instance(n_gpus=4, names=MIXED)
    res = run_method("alpaserve", "search", inst, Budget())
    sim = Simulator(inst, inst.train).run(res.solution)
    assert res.objective == pytest.approx(sim.attainment)
    assert 0.0 <= res.info["test_attainment"] <= 1.0
    assert np.isfinite(res.wall_s)


def test_beam_stops_at_the_time_limit_with_a_verified_placement():
    inst = instance(n_gpus=8, seed=2)
    res = run_method("alpaserve", "beam:3", inst, Budget(time_limit_s=0.0))
    assert res.verified and res.info["stopped_at_time_limit"] is True
    full = run_method("alpaserve", "greedy", instance(n_gpus=4, names=MIXED, dur=20.0), Budget())
    assert full.info["stopped_at_time_limit"] is False


def test_threads_do_not_change_the_answer():
    """Parallel candidate evaluation reduces in the serial order: same placement, score and simulation count."""
    inst = instance(n_gpus=8, seed=4)
    for name in ("search", "search_flat", "greedy", "beam:2"):
        one = run_method("alpaserve", name, inst, Budget(threads=1))
        three = run_method("alpaserve", name, inst, Budget(threads=3))
        assert one.solution == three.solution and one.objective == three.objective, name
        assert one.info["num_simulations"] == three.info["num_simulations"], name
    with pytest.raises(InputError, match="threads"):
        SelectionContext(inst, Simulator(inst, inst.train), threads=0)
