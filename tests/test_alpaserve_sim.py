import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serveplan.alpaserve import (
    AlpaInstance,
    Cluster,
    Group,
    ParallelConfig,
    Placement,
    Simulator,
    TimeVaryingPlacement,
    get_model,
    latency_model_for,
    simulate,
)
from serveplan.alpaserve.reference import reference_simulate
from serveplan.errors import InputError
from serveplan.workloads import Workload, gamma_workload

P2 = ParallelConfig(2, 1)
P1 = ParallelConfig(1, 1)


def table_sim(table, slo, workload, **kw):
    """A simulator over an explicit (model, config, bs) -> stage latencies table."""

    def fn(m, c, bs):
        v = table.get((m, c, bs))
        return None if v is None else np.asarray(v, dtype=float)

    return Simulator(None, workload, latency_fn=fn, slo_s=slo, **kw)


TINY_TABLE = {(0, P2, 1): [1.0, 1.0], (1, P2, 1): [0.5, 0.5], (1, P1, 1): [2.0]}
TINY_SLO = [3.0, 2.5]
TINY_PLACEMENT = Placement((Group(P2, (0, 1)), Group(P1, (1,))))


def tiny_workload():
    return Workload(np.array([0.0, 0.1, 0.2, 0.3, 1.0, 1.2]), np.array([0, 1, 1, 0, 1, 0]), 2.0, 2)


@pytest.mark.parametrize("dispatch", ["earliest", "fewest_inflight"])
def test_hand_computed_two_models_two_groups(dispatch):
    # r0 m0 -> g0 stages end 1, 2 (ok); r1 m1 -> g1 (idle) ends 2.1 (latency 2.0 ok);
    # r2 m1 -> g0 (drains at 2 < 2.1): 1.5, 2.5 (latency 2.3 ok); r3 m0 -> g0: 2.5, 3.5 (3.2 > 3: drop);
    # r4 m1 -> g1 (2.1 < 2.5): 4.1 (3.1 > 2.5: drop); r5 m0 -> g0: 2.5, 3.5 (2.3 ok).
    sim = table_sim(TINY_TABLE, TINY_SLO, tiny_workload(), fixed_overhead_s=0.0, stage_penalty=0.0, dispatch=dispatch)
    r = sim.run(TINY_PLACEMENT)
    np.testing.assert_allclose(r.finish_s, [2.0, 2.1, 2.5, np.nan, np.nan, 3.5])
    assert r.good.tolist() == [True, True, True, False, False, True]
    assert r.group_requests.tolist() == [4, 2]
    assert r.model_requests.tolist() == [3, 3] and r.model_good.tolist() == [2, 2]
    assert r.attainment == pytest.approx(4 / 6)
    np.testing.assert_allclose(r.model_attainment, [2 / 3, 2 / 3])
    att, mg, mt, gc = sim.run_fast(TINY_PLACEMENT)
    assert att == pytest.approx(4 / 6) and mg.tolist() == [2, 2] and mt.tolist() == [3, 3] and gc.tolist() == [4, 2]
    assert r.latency_mean_s == pytest.approx(np.mean([2.0, 2.0, 2.3, 2.3]))


def test_overhead_and_penalty_are_applied():
    # one stage of 1.0 s on pp=2 becomes 1.0 * (1 + 0.1 * 2) = 1.2 s; overhead 0.5 s on top
    w = Workload(np.array([0.0]), np.array([0]), 1.0, 2)
    sim = table_sim(TINY_TABLE, [10.0, 10.0], w, fixed_overhead_s=0.5, stage_penalty=0.1)
    r = sim.run(TINY_PLACEMENT)
    assert r.finish_s[0] == pytest.approx(2 * 1.2 + 0.5)
    # the overhead alone can break the SLO: 2.4 + 0.5 > 2.8
    sim = table_sim(TINY_TABLE, [2.8, 10.0], w, fixed_overhead_s=0.5, stage_penalty=0.1)
    assert not sim.run(TINY_PLACEMENT).good[0]


def test_time_varying_placement_flushes_queues():
    # same placement twice, switching at t=1.0: r4 (m1, t=1.0) now sees idle clocks and is served by g0
    sim = table_sim(TINY_TABLE, TINY_SLO, tiny_workload(), fixed_overhead_s=0.0, stage_penalty=0.0)
    tv = TimeVaryingPlacement((0.0, 1.0), (TINY_PLACEMENT, TINY_PLACEMENT))
    r = sim.run(tv)
    np.testing.assert_allclose(r.finish_s, [2.0, 2.1, 2.5, np.nan, 2.0, 3.5])
    assert r.group_requests.tolist() == [3, 1, 2, 0]


def test_unplaced_model_and_missing_profile_are_misses():
    w = tiny_workload()
    sim = table_sim(TINY_TABLE, TINY_SLO, w, fixed_overhead_s=0.0, stage_penalty=0.0)
    r = sim.run(Placement((Group(P1, (1,)),)))  # model 0 nowhere
    assert r.model_good[0] == 0 and r.model_requests[0] == 3
    r = sim.run(Placement((Group(P1, (0, 1)),)))  # model 0 has no (1,1) profile
    assert r.model_good[0] == 0 and r.group_requests[0] == 6
    assert sim.run(Placement(())).attainment == 0.0


def test_pipeline_throughput_is_one_over_max_stage():
    n = 200
    w = Workload(np.zeros(n), np.zeros(n, np.int32), 1.0, 1)
    p4 = ParallelConfig(4, 1)
    sim = table_sim({(0, p4, 1): [0.1, 0.3, 0.2, 0.1]}, [1e9], w, fixed_overhead_s=0.0, stage_penalty=0.0)
    r = sim.run(Placement((Group(p4, (0,)),)))
    np.testing.assert_allclose(np.diff(r.finish_s), 0.3)
    assert r.finish_s[0] == pytest.approx(0.7)
    assert (n - 1) / (r.finish_s[-1] - r.finish_s[0]) == pytest.approx(1 / 0.3)


def md1_mean(lam, d):
    return d + lam * d * d / (2 * (1 - lam * d))


@pytest.mark.parametrize("stages", [[0.1], [0.05, 0.05], [0.02, 0.05, 0.03]])
def test_low_load_matches_md1(stages):
    # M/D/1 (digest 1.4): W = D + lambda D^2 / (2 (1 - lambda D)); a 2-stage equal pipeline:
    # W = D_s + lambda D_m^2 / (2 (1 - lambda D_m)) (the second stage never waits). For unequal
    # deterministic stages the same holds with D_m the slowest stage (Friedman 1965: a tandem of
    # deterministic servers delays like its bottleneck alone).
    lam, dur = 4.0, 20000.0
    c = ParallelConfig(len(stages), 1)
    w = gamma_workload([lam], 1.0, dur, seed=3)
    sim = table_sim({(0, c, 1): stages}, [1e9], w, fixed_overhead_s=0.0, stage_penalty=0.0)
    r = sim.run(Placement((Group(c, (0,)),)))
    dm, ds = max(stages), sum(stages)
    expected = ds - dm + md1_mean(lam, dm)
    assert r.attainment == 1.0
    assert r.latency_mean_s == pytest.approx(expected, rel=0.02)


def test_two_dedicated_gpus_match_md1_split():
    # W_simple = sum over the two GPUs of their M/D/1 waits weighted by traffic share (p = 0.3)
    lam, d, p, dur = 6.0, 0.1, 0.3, 20000.0
    w = gamma_workload([p * lam, (1 - p) * lam], 1.0, dur, seed=5)
    table = {(0, P1, 1): [d], (1, P1, 1): [d]}
    sim = table_sim(table, [1e9, 1e9], w, fixed_overhead_s=0.0, stage_penalty=0.0)
    r = sim.run(Placement((Group(P1, (0,)), Group(P1, (1,)))))
    expected = p * md1_mean(p * lam, d) + (1 - p) * md1_mean((1 - p) * lam, d)
    assert r.latency_mean_s == pytest.approx(expected, rel=0.02)


def random_case(rng, n_models=4, n_groups=3, n_req=400, batch=1):
    configs = [P1, P2, ParallelConfig(4, 1), ParallelConfig(2, 2)]
    table = {}
    for m in range(n_models):
        for c in configs:
            if rng.random() < 0.15:
                continue  # some (model, config) pairs cannot run
            base = rng.uniform(0.01, 0.2, size=c.pp)
            for b in range(1, batch + 1):
                table[(m, c, b)] = (base * b**0.8).tolist()
    groups = []
    for _ in range(n_groups):
        c = configs[rng.integers(len(configs))]
        k = int(rng.integers(0, n_models + 1))
        groups.append(Group(c, tuple(int(x) for x in rng.choice(n_models, size=k, replace=False))))
    arr = np.sort(rng.uniform(0, 20, size=n_req))
    arr[5:9] = arr[5]  # ties
    w = Workload(arr, rng.integers(0, n_models, size=n_req), 20.0, n_models)
    slo = rng.uniform(0.05, 1.0, size=n_models)
    return table, Placement(tuple(groups)), w, slo


@pytest.mark.parametrize("dispatch", ["earliest", "fewest_inflight"])
@pytest.mark.parametrize("batch", [1, 4])
def test_compiled_kernel_equals_python_reference(dispatch, batch):
    rng = np.random.default_rng(11)
    for _ in range(15):
        table, placement, w, slo = random_case(rng, batch=batch)
        if rng.random() < 0.4:
            other = random_case(rng)[1]
            placement = TimeVaryingPlacement((0.0, float(rng.uniform(2, 18))), (placement, other))
        kw = {"fixed_overhead_s": 0.011, "stage_penalty": 0.009, "dispatch": dispatch, "max_batch_size": batch}
        fin_ref, good_ref, counts_ref = reference_simulate(w, placement, table, slo, **kw)
        r = table_sim(table, slo, w, **kw).run(placement)
        np.testing.assert_array_equal(r.good, good_ref)
        np.testing.assert_allclose(r.finish_s, fin_ref, rtol=0, atol=1e-12)
        assert r.group_requests.tolist() == counts_ref
        # the kernel's latency sums (re-timed batch members included) match the per-request output
        lat = fin_ref[good_ref] - w.arrival_s[good_ref]
        if lat.size:
            assert r.latency_mean_s == pytest.approx(lat.mean(), rel=1e-9)
            m0 = w.model_id[good_ref] == 0
            if m0.any():
                assert r.model_latency_mean_s[0] == pytest.approx(lat[m0].mean(), rel=1e-9)


def test_batching_serves_more_at_high_load():
    # bs=2 costs 1.2x one request, so batching raises capacity from 10/s to ~16.7/s
    c = P1
    table = {(0, c, 1): [0.1], (0, c, 2): [0.12]}
    w = gamma_workload([14.0], 1.0, 500.0, seed=2)
    unbatched = table_sim(table, [1.0], w, fixed_overhead_s=0.0, stage_penalty=0.0).run(Placement((Group(c, (0,)),)))
    batched = table_sim(table, [1.0], w, fixed_overhead_s=0.0, stage_penalty=0.0, max_batch_size=2).run(
        Placement((Group(c, (0,)),))
    )
    assert batched.attainment > unbatched.attainment + 0.1


def test_batch_join_hand_computed():
    # r0 at 0 runs alone [0, 0.1]; r1 at 0.05 waits; r2 at 0.06 joins r1's batch (not started: starts 0.1)
    table = {(0, P1, 1): [0.1], (0, P1, 2): [0.15]}
    w = Workload(np.array([0.0, 0.05, 0.06]), np.zeros(3, np.int32), 1.0, 1)
    r = table_sim(table, [1.0], w, fixed_overhead_s=0.0, stage_penalty=0.0, max_batch_size=2).run(
        Placement((Group(P1, (0,)),))
    )
    np.testing.assert_allclose(r.finish_s, [0.1, 0.25, 0.25])


def test_instance_simulation_and_slo_below_fastest_gives_zero():
    models = (get_model("bert-1.3b"), get_model("bert-2.6b"))
    lm = latency_model_for("v100-16gb", profile=None)
    test = gamma_workload([3.0, 2.0], 2.0, 100.0, seed=0)
    train = gamma_workload([3.0, 2.0], 2.0, 100.0, seed=0, stream=1)
    slo = (5 * lm.single_gpu_latency_s(models[0]), 0.01)  # 10 ms: below any achievable latency
    inst = AlpaInstance(Cluster(4), models, slo, lm, train, test)
    r = simulate(inst, Placement((Group(ParallelConfig(2, 2), (0, 1)),)))
    assert r.model_good[1] == 0 and r.model_requests[1] > 0
    assert 0 < r.model_attainment[0] <= 1
    assert r.attainment == pytest.approx(r.model_good[0] / len(test))
    assert np.isfinite(r.latency_p99_s) and r.latency_p99_s >= r.latency_p90_s


def test_warmup_trimming_and_empty_trace():
    w = Workload(np.empty(0), np.empty(0, np.int32), 10.0, 2)
    r = table_sim(TINY_TABLE, TINY_SLO, w).run(TINY_PLACEMENT)
    assert r.attainment == 1.0 and np.isnan(r.latency_mean_s) and r.num_requests == 0
    sim = table_sim(TINY_TABLE, TINY_SLO, tiny_workload(), fixed_overhead_s=0.0, stage_penalty=0.0, warmup_s=0.15)
    r = sim.run(TINY_PLACEMENT)  # only r2 (0.2), r5 (1.2) lie in [0.15, 1.85] and are good
    assert r.latency_mean_s == pytest.approx(2.3)


def test_bad_simulator_input():
    w = tiny_workload()
    with pytest.raises(InputError, match="dispatch"):
        table_sim(TINY_TABLE, TINY_SLO, w, dispatch="random")
    with pytest.raises(InputError, match="number of models"):
        table_sim(TINY_TABLE, [1.0], w)
    with pytest.raises(InputError, match="model index"):
        table_sim(TINY_TABLE, TINY_SLO, w).run(Placement((Group(P1, (5,)),)))
    with pytest.raises(InputError, match="max_batch_size"):
        table_sim(TINY_TABLE, TINY_SLO, w, max_batch_size=0)


def test_benchmark_smoke_agrees_with_reference():
    from serveplan.alpaserve.bench import bench_simulator, markdown

    rows = bench_simulator(sizes=(3000,), reference_requests=500)
    thr = [r for r in rows if r["kind"] == "throughput"]
    assert len(thr) == 2 and all(r["agrees_with_reference"] for r in thr)
    assert all(0 < r["attainment"] <= 1 for r in thr)
    assert "| SR 64x(1,1) |" in markdown(rows)


def test_from_table_matches_latency_fn():
    table = {(m, c): v for (m, c, _), v in TINY_TABLE.items()}
    sim = Simulator.from_table(table, TINY_SLO, tiny_workload(), fixed_overhead_s=0.0, stage_penalty=0.0)
    np.testing.assert_allclose(sim.run(TINY_PLACEMENT).finish_s, [2.0, 2.1, 2.5, np.nan, np.nan, 3.5])


def test_paper_two_model_example_model_parallelism_wins():
    # AlpaServe section 3.1 / Fig. 2: two BERT-6.7B on two GPUs, 3 req/s in total, no SLO.
    lm = latency_model_for("v100-16gb", profile=None)
    m = get_model("bert-6.7b")
    simple = Placement((Group(P1, (0,)), Group(P1, (1,))))
    mp = Placement((Group(P2, (0, 1)),))
    means = {}
    for label, rates, cv in (("equal", [1.5, 1.5], 1.0), ("skewed", [0.6, 2.4], 1.0), ("bursty", [1.5, 1.5], 3.0)):
        w = gamma_workload(rates, cv, 20000.0, seed=1)
        inst = AlpaInstance(Cluster(2, memory_budget_gb=14.0), (m, m), (1e6, 1e6), lm, w, w)
        means[label] = [Simulator(inst).run(p).latency_mean_s for p in (simple, mp)]
        assert means[label][1] < means[label][0]
    # the simple placement's equal-rate mean is the M/D/1 form (with the 11 ms overhead and 1.009 penalty)
    d = lm.single_gpu_latency_s(m) * 1.009
    assert means["equal"][0] == pytest.approx(md1_mean(1.5, d) + 0.011, rel=0.03)
    # skew hurts dedicated GPUs, not the shared pipeline
    assert means["skewed"][0] > 3 * means["equal"][0]
    assert means["skewed"][1] == pytest.approx(means["equal"][1], rel=0.05)


def test_with_workload_reuses_tables_and_matches_a_fresh_simulator():
    sim = table_sim(TINY_TABLE, TINY_SLO, tiny_workload(), fixed_overhead_s=0.0, stage_penalty=0.0)
    sim.run(TINY_PLACEMENT)
    other = gamma_workload([2.0, 1.0], 2.0, 50.0, seed=4)
    again = sim.with_workload(other)
    assert again._lat is sim._lat
    fresh = table_sim(TINY_TABLE, TINY_SLO, other, fixed_overhead_s=0.0, stage_penalty=0.0)
    np.testing.assert_array_equal(again.run(TINY_PLACEMENT).good, fresh.run(TINY_PLACEMENT).good)
    # a config first met by the copy does not leak into the original's index
    again.run(Placement((Group(ParallelConfig(4, 1), (0,)),)))
    assert len(sim._cfg_index) == 2 and len(again._cfg_index) == 3
    assert sim.run(TINY_PLACEMENT).good.tolist() == [True, True, True, False, False, True]
    with pytest.raises(InputError, match="number of models"):
        sim.with_workload(gamma_workload([1.0], 1.0, 5.0, seed=0))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    batch=st.sampled_from([1, 3]),
    dispatch=st.sampled_from(["earliest", "fewest_inflight"]),
)
def test_simulator_invariants(seed, batch, dispatch):
    rng = np.random.default_rng(seed)
    table, placement, w, slo = random_case(rng, n_req=200, batch=batch)
    r = table_sim(table, slo, w, dispatch=dispatch, max_batch_size=batch).run(placement)
    lat = r.finish_s - w.arrival_s
    # good <=> served, and every good request met its SLO (overhead included); nothing finishes early
    assert np.array_equal(r.good, np.isfinite(r.finish_s))
    assert np.all(lat[r.good] <= slo[w.model_id[r.good]] + 1e-12)
    assert np.all(lat[r.good] >= 0.011)
    placed = {m for g in placement.groups for m in g.models}
    routed = np.isin(w.model_id, sorted(placed))
    assert r.group_requests.sum() == routed.sum()
    assert not r.good[~routed].any()
    assert r.model_good.sum() == r.good.sum() and 0.0 <= r.attainment <= 1.0


@pytest.mark.slow
def test_s3_scale_kernel_equals_reference():
    from serveplan.alpaserve.bench import bench_simulator

    rows = bench_simulator(sizes=(200_000,), reference_requests=50_000)
    assert all(r["agrees_with_reference"] for r in rows if r["kind"] == "throughput")
