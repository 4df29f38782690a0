"""PETALS, BPRR (CG-BP, WS-RR, MILP) and JFFC-only baselines; the path-routing simulator; the evaluator."""

from __future__ import annotations

import numpy as np
import pytest

import heuristics.chain_baselines_methods  # noqa: F401  (registers petals, bprr, jffc_only)
import serveplan.chain.experiments_serving  # noqa: F401  (registers the simulate evaluator)
from formulations.chain_bprr import brute_force_bprr, solve_bprr_milp
from heuristics.bprr import WsRrRouter, cg_bp, default_R, solve_bprr
from heuristics.jffc_only import jffc_only_solution, solve_jffc_only
from heuristics.petals import (
    PetalsOptions,
    PetalsRouter,
    choose_best_start,
    petals_num_blocks,
    petals_placement,
    should_choose_other_blocks,
    solve_petals,
)
from serveplan.chain.instance import ChainInstance, Server
from serveplan.chain.path_simulator import ServerState, simulate_paths
from serveplan.chain.placement import Placement
from serveplan.registry import Budget, get_evaluator, get_method


def inst(memories, comm, compute, L, s_m=1.0, s_c=0.25, lam=0.5):
    servers = tuple(
        Server(f"s{j}", float(m), float(c), float(p))
        for j, (m, c, p) in enumerate(zip(memories, comm, compute, strict=True))
    )
    return ChainInstance(servers, L, s_m, s_c, lam)


# ---------------------------------------------------------------------------------------------------
# PETALS


def test_choose_best_start_lexicographic_vs_sum():
    # windows of 2: (0,5) sum 5, (1,5) sum 6, (1,1) sum 2. Lexicographic: sorted (0,5) < (1,1) -> start 0.
    tp = np.array([0.0, 5.0, 1.0, 1.0])
    assert choose_best_start(tp, 2) == 0
    assert choose_best_start(tp, 2, "sum") == 2
    # ties go to the smallest start
    assert choose_best_start(np.zeros(5), 3) == 0
    # the least-served block dominates: window [2,3] holds the only block with throughput 0.5
    assert choose_best_start(np.array([3.0, 2.0, 0.5, 4.0]), 2) == 1


def test_petals_block_count_formula():
    # (M - autograd) / (s_m + slots_per_block * s_c) = (3.5 - 0.5) / (1 + 2 * 0.25) = 2
    i = inst([3.5, 2.0, 10.0], [1, 1, 1], [0.1, 0.1, 0.1], L=4)
    opts = PetalsOptions(autograd_gb=0.5)
    np.testing.assert_array_equal(petals_num_blocks(i, opts), [2, 1, 4])
    capped = PetalsOptions(autograd_gb=0.5, low_perf_block_cap=1)
    # low-perf = less memory than the largest server
    i2 = inst([10.0, 10.0, 8.0], [1, 1, 1], [0.1, 0.1, 0.3], L=4)
    np.testing.assert_array_equal(petals_num_blocks(i2, capped), [4, 4, 1])


def test_petals_join_order_hand_worked():
    # three equal servers with 2 blocks each, L = 4. In join order: the first takes blocks 1-2 (all windows tie
    # at zero throughput -> smallest start), the second blocks 3-4 (its window is the only all-zero one), the
    # third blocks 1-2 again (every window now has throughputs (t, t): tie -> smallest start).
    i = inst([3.0, 3.0, 3.0], [1, 1, 1], [0.1, 0.1, 0.1], L=4)
    opts = PetalsOptions(autograd_gb=0.0, rebalance=False)
    for seed in range(4):
        order = list(np.random.default_rng(seed).permutation(3))
        p = petals_placement(i, opts, seed)
        assert p.num_blocks == (2, 2, 2)
        assert p.first_block[order[0]] == 1
        assert p.first_block[order[1]] == 3
        assert p.first_block[order[2]] == 1


def test_petals_heterogeneous_join_hand_worked():
    # L = 3; server 0 hosts 2 blocks (throughput min(1/(0.1*1.5), 1/1) = 1), server 1 one block
    # (min(1/(0.1*1), 1/0.5) = 2). Join order [0, 1]: server 0 takes blocks 1-2, server 1 the empty block 3.
    i = inst([3.0, 1.5], [1.0, 0.5], [0.1, 0.1], L=3)
    opts = PetalsOptions(autograd_gb=0.0, rebalance=False)
    seed = next(s for s in range(50) if list(np.random.default_rng(s).permutation(2)) == [0, 1])
    p = petals_placement(i, opts, seed)
    assert p == Placement((1, 3), (2, 1))
    # join order [1, 0]: server 1 takes block 1; server 0's windows: (2, 0) sorted (0, 2) vs (0, 0) -> blocks 2-3
    seed = next(s for s in range(50) if list(np.random.default_rng(s).permutation(2)) == [1, 0])
    assert petals_placement(i, opts, seed) == Placement((2, 1), (2, 1))


def test_petals_rebalancing_moves_a_server_off_a_covered_block():
    # L = 2, both one-block servers on block 1: block 2 has throughput 0, so server 1 should move.
    starts = {0: 0, 1: 0}
    lengths = np.array([1, 1])
    thr = np.array([1.0, 1.0])
    rng = np.random.default_rng(0)
    assert should_choose_other_blocks(1, starts, lengths, thr, 2, rng)
    assert not should_choose_other_blocks(1, {0: 0, 1: 1}, lengths, thr, 2, rng)


def test_petals_router_avoids_full_server():
    # two whole-model servers; the faster one (0) has no free cache -> the penalty sends the request to 1
    i = inst([10.0, 10.0], [0.1, 0.2], [0.1, 0.1], L=2)
    p = Placement((1, 1), (2, 2))
    router = PetalsRouter(i, p, penalty_s=100.0)
    state = ServerState(np.array([4, 4]), np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64), [{}, {}])
    assert router.route(0.0, 0, state).servers == (0,)
    state.assigned[0] = 3  # only 1 slot left, the request needs 2
    r = router.route(0.0, 0, state)
    assert r.servers == (1,) and r.blocks == (2,) and r.not_before_s == 0.0


def test_path_simulator_waits_for_cache_hand_checked():
    # one server, 2 slots, each request needs 1 slot (L = 1), service time = size * (0.5 + 0.5 * 1) = 1
    i = inst([10.0], [0.5], [0.5], L=1)
    router = PetalsRouter(i, Placement((1,), (1,)), penalty_s=0.0)
    res = simulate_paths([0.0, 0.0, 0.0, 0.5], np.ones(4), i.comm_time_s, i.compute_time_s, [2], router)
    np.testing.assert_allclose(res.start_s, [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(res.finish_s, [1.0, 1.0, 2.0, 2.0])


def test_solve_petals_method_verifies():
    i = inst([6.0, 6.0, 4.0, 4.0], [0.5, 0.6, 0.7, 0.8], [0.1, 0.1, 0.2, 0.2], L=4)
    r = solve_petals(i, Budget(seed=3, options={"autograd_gb": 0.5}), None)
    assert r.status == "feasible" and r.verified
    assert r.info["routing"] == "petals"
    m = np.array(r.solution.placement.num_blocks)
    np.testing.assert_array_equal(r.info["slot_capacity"], 2 * m)


# ---------------------------------------------------------------------------------------------------
# BPRR


def test_cg_bp_hand_worked():
    # L = 2, R = 1: m_j = floor(M / (1 + 0.25)) = 1 for M = 1.5. Sessions s_j = floor((1.5 - 1) / 0.25) = 2.
    # Server 0 has the smaller amortized time, goes first: phase 1, all Tb equal -> block 1. Server 1: only
    # windows with Cb < R count -> block 2. Server 2 (phase 2, all Cb = 2): sorted-Cb ties -> block 1.
    i = inst([1.5, 1.5, 1.5], [0.1, 0.2, 0.3], [0.1, 0.1, 0.1], L=2)
    res = cg_bp(i, 1)
    assert res.feasible
    assert res.placement == Placement((1, 2, 1), (1, 1, 1))
    np.testing.assert_array_equal(res.block_capacity, [4, 2])


def test_cg_bp_infeasible_when_capacity_short():
    i = inst([1.5], [0.1], [0.1], L=2)
    assert not cg_bp(i, 1).feasible


def test_ws_rr_wait_and_planned_start():
    i = inst([10.0, 10.0], [0.1, 0.3], [0.1, 0.1], L=2)
    p = Placement((1, 1), (2, 2))
    router = WsRrRouter(i, p)
    state = ServerState(np.array([2, 8]), np.zeros(2, dtype=np.int64), np.array([2, 0]), [{7: (2, 5.0)}, {}])
    # server 0 is full until the estimated release at t=5: wait 5 - 1 = 4, plus 0.3 -> cost 4.3 vs 0.5 on 1
    assert WsRrRouter.wait_s(1.0, 2, state, 0) == pytest.approx(4.0)
    r = router.route(1.0, 0, state)
    assert r.servers == (1,) and r.not_before_s == 1.0
    # make server 1 slow: waiting for server 0 wins and the start is planned at the release time
    slow = WsRrRouter(inst([10.0, 10.0], [0.1, 9.0], [0.1, 0.1], L=2), p)
    r = slow.route(1.0, 0, state)
    assert r.servers == (0,) and r.not_before_s == pytest.approx(5.0)
    assert WsRrRouter.quantise(2.5) == 3.0 and WsRrRouter.quantise(0.0) == 0.0


def test_bprr_method_and_default_R():
    i = inst([6.0, 6.0, 4.0, 4.0], [0.5, 0.6, 0.7, 0.8], [0.1, 0.1, 0.2, 0.2], L=4, lam=1.0)
    assert default_R(i) >= 1
    r = solve_bprr(i, Budget(), "2")
    assert r.info["R"] == 2 and r.info["routing"] == "ws_rr"
    assert r.verified == r.info["cg_bp_feasible"]
    method, param = get_method("chain", "bprr:3")
    assert param == "3" and method.kind == "baseline"


@pytest.mark.parametrize("seed", [0, 1])
def test_bprr_milp_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    i = inst(rng.choice([1.5, 2.5, 3.5], 3), rng.uniform(0.1, 1, 3), rng.uniform(0.1, 1, 3), L=3)
    out = solve_bprr_milp(i, 2)
    assert out.solve.status == "optimal"
    assert out.objective == pytest.approx(brute_force_bprr(i, 2), rel=1e-6)
    # the decoded routes realise the objective
    total = sum(
        sum(i.comm_time_s[j] + i.compute_time_s[j] * b for j, b in zip(ch.servers, ch.blocks, strict=True))
        for ch in out.routes
    )
    assert total == pytest.approx(out.objective, rel=1e-6)


# ---------------------------------------------------------------------------------------------------
# JFFC only


def test_jffc_only_capacities_match_paper_testbed():
    # LLaMA-2-7B (L = 32, s_m = 0.4375, s_c = 0.0336) on 3 x 40 GB + 6 x 20 GB: 3 x 24 + 6 x 5 = 102 job slots
    i = inst([40.0] * 3 + [20.0] * 6, [1.0] * 9, [0.02] * 9, L=32, s_m=0.4375, s_c=0.0336)
    sol = jffc_only_solution(i)
    assert sol.capacities == (24, 24, 24, 5, 5, 5, 5, 5, 5)
    assert sol.total_capacity == 102
    assert all(len(ch.servers) == 1 and ch.blocks == (32,) for ch in sol.chains)


def test_jffc_only_infeasible_without_big_server():
    i = inst([2.0, 2.0], [1.0, 1.0], [0.1, 0.1], L=4)
    r = solve_jffc_only(i, Budget(), None)
    assert r.status == "infeasible" and r.solution is None


# ---------------------------------------------------------------------------------------------------
# The simulate evaluator end to end


@pytest.mark.parametrize("name", ["petals", "bprr", "jffc_only", "gbp_cr+gca"])
def test_simulate_evaluator_runs_every_method(name):
    from serveplan.registry import run_method

    i = inst(
        [40.0, 40.0, 20.0, 20.0, 20.0],
        [1.0, 1.2, 0.9, 1.1, 1.3],
        [0.02, 0.02, 0.035, 0.035, 0.035],
        L=32,
        s_m=0.4375,
        s_c=0.0336,
        lam=2.0,
    )
    r = run_method("chain", name, i, Budget(seed=0, options={"autograd_gb": 0.61} if name == "petals" else {}))
    assert r.solution is not None
    ev = get_evaluator("chain", "simulate").fn
    m = ev(i, r, {"num_requests": 500}, 0)
    assert m["sim_requests"] == 450  # 10% warm-up dropped
    assert m["mean_response_s"] == pytest.approx(m["mean_waiting_s"] + m["mean_service_s"])
    assert m["mean_waiting_s"] >= 0 and m["p99_response_s"] >= m["median_response_s"]
    again = ev(i, r, {"num_requests": 500}, 0)
    assert again["mean_response_s"] == m["mean_response_s"]


def test_milp_bprr_method_registered_and_verified():
    from serveplan.registry import run_method

    rng = np.random.default_rng(3)
    i = inst(rng.choice([1.5, 2.5, 3.5], 3), rng.uniform(0.1, 1, 3), rng.uniform(0.1, 1, 3), L=3)
    r = run_method("chain", "milp:bprr", i, Budget(options={"R": 2}))
    assert r.status == "optimal" and r.verified
    assert sum(r.solution.capacities) == 2
    assert r.objective == pytest.approx(brute_force_bprr(i, 2), rel=1e-6)


def test_simulate_cli_end_to_end(tmp_path, capsys):
    import argparse
    import json

    from serveplan.chain.simulate_cli import register_simulate

    i = inst(
        [40.0, 40.0, 20.0, 20.0, 20.0],
        [1.0, 1.2, 0.9, 1.1, 1.3],
        [0.02, 0.02, 0.035, 0.035, 0.035],
        L=32,
        s_m=0.4375,
        s_c=0.0336,
        lam=2.0,
    )
    path = tmp_path / "inst.json"
    i.save_json(path)
    parser = argparse.ArgumentParser()
    register_simulate(parser.add_subparsers())
    records = tmp_path / "records.csv"
    args = parser.parse_args(
        [
            "chain",
            "--instance",
            str(path),
            "--method",
            "bprr",
            "-o",
            "R=2",
            "--num-requests",
            "300",
            "--json",
            "--records",
            str(records),
        ]
    )
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "bprr" and out["sim_requests"] == 270
    data = np.loadtxt(records, delimiter=",", skiprows=1)
    assert data.shape == (300, 4)
    np.testing.assert_array_less(data[:, 0] - 1e-12, data[:, 1])
    args = parser.parse_args(["chain", "--instance", str(path), "--num-requests", "300", "--load", "0.5"])
    assert args.func(args) == 0
    assert "Theorem 3.7 bounds" in capsys.readouterr().out


def reference_paths(arrival, sizes, comm, compute, cap, router):
    """Plain loop of the path simulator's semantics (scan waiting requests in order, start each that fits)."""
    import heapq

    n, J = len(arrival), len(cap)
    state = ServerState(np.array(cap), np.zeros(J, dtype=np.int64), np.zeros(J, dtype=np.int64), [{} for _ in cap])
    start, finish = np.full(n, np.nan), np.full(n, np.nan)
    routes, pending, events, i = {}, [], [], 0

    def scan(now):
        still = []
        for q in pending:
            r = routes[q]
            if r.not_before_s <= now and all(
                state.used[j] + b <= cap[j] for j, b in zip(r.servers, r.blocks, strict=True)
            ):
                for j, b in zip(r.servers, r.blocks, strict=True):
                    state.used[j] += b
                    state.holders[j][q] = (b, now + router.estimated_service_s(r))
                start[q] = now
                finish[q] = now + sizes[q] * sum(
                    comm[j] + compute[j] * b for j, b in zip(r.servers, r.blocks, strict=True)
                )
                heapq.heappush(events, (finish[q], 0, q))
            else:
                still.append(q)
        pending[:] = still

    while i < n or events:
        if events and (i >= n or events[0][0] <= arrival[i]):
            t, kind, q = heapq.heappop(events)
            if kind == 0:
                for j, b in zip(routes[q].servers, routes[q].blocks, strict=True):
                    state.used[j] -= b
                    state.assigned[j] -= b
                    del state.holders[j][q]
            scan(t)
            continue
        r = router.route(arrival[i], i, state)
        routes[i] = r
        est = max(arrival[i], r.not_before_s) + router.estimated_service_s(r)
        for j, b in zip(r.servers, r.blocks, strict=True):
            state.assigned[j] += b
            state.holders[j][i] = (b, est)
        pending.append(i)
        if r.not_before_s > arrival[i]:
            heapq.heappush(events, (r.not_before_s, 1, i))
        scan(arrival[i])
        i += 1
    return start, finish


@pytest.mark.parametrize("routing", ["petals", "ws_rr"])
def test_path_simulator_equals_plain_loop_under_overload(routing):
    # small cache pools and a high rate: dozens of requests wait, exercising the vectorised scan
    i = inst([6.0, 6.0, 4.0, 4.0, 4.0], [0.5, 0.6, 0.7, 0.8, 0.4], [0.1, 0.1, 0.2, 0.2, 0.3], L=4, lam=3.0)
    rng = np.random.default_rng(4)
    arrival = np.cumsum(rng.exponential(1 / 3.0, 600))
    sizes = rng.exponential(1.0, 600)
    if routing == "petals":
        r = solve_petals(i, Budget(seed=1, options={"autograd_gb": 0.5}), None)
        make = lambda: PetalsRouter(i, r.solution.placement, r.info["penalty_s"])  # noqa: E731
    else:
        r = solve_bprr(i, Budget(), "2")
        make = lambda: WsRrRouter(i, r.solution.placement)  # noqa: E731
    cap = np.asarray(r.info["slot_capacity"])
    got = simulate_paths(arrival, sizes, i.comm_time_s, i.compute_time_s, cap, make())
    start, finish = reference_paths(arrival, sizes, i.comm_time_s, i.compute_time_s, cap, make())
    assert np.nanmax(got.waiting_s) > 0
    np.testing.assert_allclose(got.start_s, start)
    np.testing.assert_allclose(got.finish_s, finish)
