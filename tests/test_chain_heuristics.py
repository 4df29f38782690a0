"""GBP-CR, GCA, c tuning, random placements and the registered chain methods."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heuristics.c_tuning import tune_c
from heuristics.gbp_cr import gbp_cr, max_blocks, max_reservation
from heuristics.gca import gca
from heuristics.random_placement import random_placements
from serveplan.chain.experiments import tiny_instance
from serveplan.chain.instance import ChainInstance, Server
from serveplan.chain.placement import (
    Chain,
    ChainSolution,
    Placement,
    chains_of_placement,
    residual_slots,
    service_time_s,
)
from serveplan.chain.verify import verify
from serveplan.registry import Budget, run_method

EPS = 1e-3


def paper_example(arrival_rate: float = 0.45) -> ChainInstance:
    servers = tuple(Server(f"j{l}", 3.0 if l == 2 else 2.0, 2.0 if l == 2 else 1.0, l * EPS) for l in range(1, 6))
    return ChainInstance(servers, 3, 1.0, 0.1, arrival_rate)


# -- the paper's worked example ------------------------------------------------------------------


def test_gbp_cr_on_the_paper_example():
    inst = paper_example()
    run = gbp_cr(inst, 1)
    np.testing.assert_array_equal(max_blocks(inst, 1), [1, 2, 1, 1, 1])
    assert run.placement == Placement((1, 2, 1, 2, 3), (1, 2, 1, 1, 1))
    assert run.chains == (Chain((0, 1), (1, 2)), Chain((2, 3, 4), (1, 1, 1)))
    assert run.chain_bound_times_s == pytest.approx((3 + 5 * EPS, 3 + 12 * EPS))
    assert run.num_needed == 2 and run.surrogate == 2


def test_gca_reproduces_the_paper_example_exactly():
    inst = paper_example()
    result = gca(inst, gbp_cr(inst, 1).placement)
    assert result.chains == (Chain((0, 1), (1, 2)), Chain((0, 3, 4), (1, 1, 1)), Chain((2, 3, 4), (1, 1, 1)))
    assert result.capacities == (5, 5, 5)
    assert result.service_times_s == pytest.approx((3 + 5 * EPS, 3 + 10 * EPS, 3 + 12 * EPS))
    assert result.total_rate == pytest.approx(5 / (3 + 5 * EPS) + 5 / (3 + 10 * EPS) + 5 / (3 + 12 * EPS))
    np.testing.assert_array_equal(result.residual_slots, [0, 0, 5, 0, 0])
    sol = ChainSolution(gbp_cr(inst, 1).placement, result.chains, result.capacities)
    assert verify(inst, sol).ok


# -- GBP-CR flags -----------------------------------------------------------------------------------


def test_last_server_flag_shift_vs_truncate():
    servers = tuple(Server(f"s{j}", 4.0, 1.0, 0.1) for j in range(4))  # 3 blocks each at c=1 (s_m=1, s_c=0.25)
    inst = ChainInstance(servers, 5, 1.0, 0.25, 0.05)
    shift = gbp_cr(inst, 1, last_server="shift")
    trunc = gbp_cr(inst, 1, last_server="truncate")
    assert shift.placement.first_block[:2] == (1, 3) and shift.placement.num_blocks[:2] == (3, 3)
    assert trunc.placement.first_block[:2] == (1, 4) and trunc.placement.num_blocks[:2] == (3, 2)
    assert shift.chains[0].blocks == (3, 2) == trunc.chains[0].blocks


def test_stop_rule_flag():
    servers = tuple(Server(f"s{j}", 4.0, 1.0, 0.1) for j in range(6))
    inst = ChainInstance(servers, 3, 1.0, 0.25, 0.05)  # one chain per server at c=1
    rate = gbp_cr(inst, 1, stop_rule="rate")
    every = gbp_cr(inst, 1, stop_rule="max_chains")
    assert len(rate.chains) == rate.num_needed == 1
    assert len(every.chains) == 6 and every.num_needed == 1
    assert sum(1 for m in rate.placement.num_blocks if m) == 1


def test_gbp_cr_infeasible_reasons():
    inst = ChainInstance((Server("a", 2.0, 1.0, 0.1),), 3, 1.0, 0.1, 0.1)
    run = gbp_cr(inst, 1)
    assert not run.feasible and "fewer than L=3" in run.reason and math.isinf(run.surrogate)
    slow = ChainInstance((Server("a", 9.0, 10.0, 1.0),), 3, 1.0, 0.1, 5.0)
    run = gbp_cr(slow, 1)
    assert not run.feasible and "below lambda/(rho_bar c)" in run.reason


# -- GBP-CR optimality under equal memory (Theorem "GBP-CR optimality") vs brute force --------------


def brute_force_min_chains(t: np.ndarray, m: np.ndarray, L: int, target: float) -> int | None:
    """Fewest disjoint groups, each with sum m >= L, whose rates sum_k 1/sum_{j in k} t_j reach target."""
    J = len(t)
    for K in range(1, J + 1):
        found = False

        def assign(j: int, sums_t: list[float], sums_m: list[int]) -> None:
            nonlocal found
            if found:
                return
            if j == J:
                if all(sm >= L for sm in sums_m) and sum(1 / s for s in sums_t) >= target * (1 - 1e-12):
                    found = True
                return
            assign(j + 1, sums_t, sums_m)  # server unused
            for k in range(len(sums_t)):
                sums_t[k] += t[j]
                sums_m[k] += m[j]
                assign(j + 1, sums_t, sums_m)
                sums_t[k] -= t[j]
                sums_m[k] -= m[j]
                if sums_m[k] == 0:  # symmetric empty groups: try only the first
                    break

        assign(0, [0.0] * K, [0] * K)
        if found:
            return K
    return None


@pytest.mark.parametrize("seed", range(40))
def test_gbp_cr_optimal_for_equal_memory(seed):
    rng = np.random.default_rng(seed)
    J = int(rng.integers(3, 8))
    L = int(rng.integers(2, 5))
    c = int(rng.integers(1, 3))
    probe = tiny_instance(J, L, equal_memory=True, seed=seed)
    # put the rate target somewhere between "one chain suffices" and "all servers are not enough"
    all_chains = gbp_cr(probe, c, stop_rule="max_chains")
    reachable = c * sum(1 / t for t in all_chains.chain_bound_times_s) or 1.0  # 1.0: blocks do not fit
    lam = probe.target_load * reachable * float(rng.uniform(0.15, 1.1))
    inst = probe.with_arrival_rate(lam)
    run = gbp_cr(inst, c)
    m = max_blocks(inst, c)
    t = inst.comm_time_s + inst.compute_time_s * m
    best = brute_force_min_chains(t, m, L, inst.required_rate / c)
    assert run.num_needed == best


def test_gbp_cr_never_beats_brute_force_with_unequal_memory():
    # with unequal memory GBP-CR is a heuristic: it must never beat the brute-force optimum
    for seed in range(15):
        inst = tiny_instance(5, 3, arrival_rate=0.6, seed=seed)
        run = gbp_cr(inst, 1)
        m = max_blocks(inst, 1)
        t = inst.comm_time_s + inst.compute_time_s * m
        best = brute_force_min_chains(t, m, 3, inst.required_rate)
        if run.feasible:
            assert best is not None and run.num_needed >= best


# -- GCA against path enumeration -----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_gca_chains_are_fastest_and_exhaust_the_graph(seed):
    inst = tiny_instance(6, 4, arrival_rate=0.3, seed=seed)
    runs = random_placements(inst, 1, 1, seed=seed, stop_rule="max_chains")
    placement = runs[0].placement if runs else gbp_cr(inst, 1, stop_rule="max_chains").placement
    all_chains = chains_of_placement(inst, placement)
    result = gca(inst, placement)
    residual = residual_slots(inst, placement).astype(int)
    for chain, cap in zip(result.chains, result.capacities, strict=True):
        assert chain in all_chains and cap >= 1
        # the chain is the fastest among those whose every link still fits
        fits = [ch for ch in all_chains if all(residual[j] >= b for j, b in zip(ch.servers, ch.blocks, strict=True))]
        assert service_time_s(inst, chain) == pytest.approx(min(service_time_s(inst, ch) for ch in fits))
        assert cap == min(residual[j] // b for j, b in zip(chain.servers, chain.blocks, strict=True))
        for j, b in zip(chain.servers, chain.blocks, strict=True):
            residual[j] -= b * cap
    # termination: no chain of the placement fits any more
    for ch in all_chains:
        assert any(residual[j] < b for j, b in zip(ch.servers, ch.blocks, strict=True))
    np.testing.assert_array_equal(residual, result.residual_slots)


def test_gca_job_servers_needed():
    inst = paper_example()
    result = gca(inst, gbp_cr(inst, 1).placement)
    need = result.job_servers_needed(inst.required_rate)
    # 0.45/0.7 = 0.643 jobs/s; each job server of k1 gives 1/3.005: two are needed
    assert need == 2
    assert result.job_servers_needed(100.0) is None


# -- c tuning -----------------------------------------------------------------------------------------


def test_surrogate_tuning_is_the_argmin_of_c_times_k():
    inst = tiny_instance(6, 4, arrival_rate=0.5, seed=4)
    tuning = tune_c(inst, "surrogate")
    values = {c: gbp_cr(inst, c).surrogate for c in range(1, max_reservation(inst) + 1)}
    best = min(values.values())
    assert tuning.best_c == min(c for c, v in values.items() if v == best)


@pytest.mark.parametrize("criterion", ["lower", "upper"])
def test_bound_tuning_picks_the_smallest_bound(criterion):
    inst = tiny_instance(6, 3, arrival_rate=0.4, seed=7)
    tuning = tune_c(inst, criterion)
    eligible = [s for s in tuning.scores if s.eligible]
    assert tuning.best_c is not None and eligible
    assert tuning.best_c == min(eligible, key=lambda s: (s.score(criterion), s.c)).c
    for s in eligible:
        assert s.lower_s <= s.upper_s + 1e-12


def test_tuning_reports_why_nothing_works():
    too_small = ChainInstance(tuple(Server(f"s{j}", 1.2, 1.0, 0.1) for j in range(2)), 3, 1.0, 0.1, 0.1)
    tuning = tune_c(too_small, "lower")
    assert tuning.best_c is None and "cannot all be placed" in tuning.reason and "fewer than L=3" in tuning.reason
    overloaded = tiny_instance(4, 3, arrival_rate=500.0, seed=1)
    tuning = tune_c(overloaded, "surrogate")
    assert tuning.best_c is None and "too high" in tuning.reason and "jobs/s" in tuning.reason


def test_random_placements_are_seeded_and_feasible():
    inst = tiny_instance(6, 3, arrival_rate=0.3, seed=2)
    a = random_placements(inst, 1, 5, seed=9)
    b = random_placements(inst, 1, 5, seed=9)
    assert [r.placement for r in a] == [r.placement for r in b] and len(a) == 5
    for run in a:
        assert run.feasible
        sol = ChainSolution(run.placement, run.chains, (run.c,) * len(run.chains))
        assert verify(inst, sol).ok
    assert min(r.surrogate for r in a) >= brute_force_floor(inst, 1)


def brute_force_floor(inst: ChainInstance, c: int) -> float:
    m = max_blocks(inst, c)
    t = inst.comm_time_s + inst.compute_time_s * m
    best = brute_force_min_chains(t, m, inst.num_blocks, inst.required_rate / c)
    return math.inf if best is None else c * best


# -- registered methods --------------------------------------------------------------------------------

METHOD_CASES = [
    ("gbp_cr+gca", {}),
    ("gbp_cr+gca", {"criterion": "upper"}),
    ("gbp_cr+gca", {"criterion": "surrogate", "allocation": "trimmed"}),
    ("gbp_cr+gca", {"last_server": "truncate", "stop_rule": "max_chains"}),
    ("gbp_cr+gca:1", {}),
    ("gbp_cr", {}),
    ("gbp_cr", {"last_server": "truncate"}),
    ("gbp_cr:2", {"stop_rule": "max_chains"}),
    ("random", {}),
    ("random", {"gca": "true"}),
]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    J=st.integers(2, 7),
    L=st.integers(1, 5),
    lam=st.floats(0.05, 2.0),
    case=st.sampled_from(METHOD_CASES),
)
def test_every_heuristic_output_passes_verify(seed, J, L, lam, case):
    name, options = case
    inst = tiny_instance(J, L, arrival_rate=lam, seed=seed)
    res = run_method("chain", name, inst, Budget(seed=seed, options=options))
    assert res.status in ("feasible", "infeasible")
    if res.status == "feasible":
        assert res.verified, res.violations
        assert res.objective == res.solution.total_capacity
        assert res.info["lower_response_s"] <= res.info["upper_response_s"] + 1e-9
    else:
        assert res.solution is None and res.info["reason"]


def test_methods_on_a_ripe_instance():
    from serveplan.chain.builders import ripe_instance

    inst = ripe_instance(num_servers=20, eta=0.2, seed=0)
    results = {m: run_method("chain", m, inst, Budget(seed=1)) for m in ("gbp_cr+gca", "gbp_cr", "random")}
    for res in results.values():
        assert res.status == "feasible" and res.verified
    # GCA adds capacity on the same placement family: its lower bound is no worse than disjoint chains at c*
    assert results["gbp_cr+gca"].info["lower_response_s"] <= results["gbp_cr"].info["upper_response_s"] + 1e-9
    assert run_method("chain", "random", inst, Budget(seed=1)).solution == results["random"].solution


def test_trimmed_allocation_meets_target_with_fewer_job_servers():
    inst = paper_example()
    full = run_method("chain", "gbp_cr+gca:1", inst, Budget())
    trimmed = run_method("chain", "gbp_cr+gca:1", inst, Budget(options={"allocation": "trimmed"}))
    assert trimmed.verified and full.verified
    assert trimmed.objective == full.info["gca_job_servers_needed"] == 2 < full.objective == 15


def test_bad_options_are_input_errors():
    from serveplan.errors import InputError

    inst = paper_example()
    with pytest.raises(InputError, match="last_server"):
        run_method("chain", "gbp_cr", inst, Budget(options={"last_server": "left"}))
    with pytest.raises(InputError, match=r"options\.c"):
        run_method("chain", "gbp_cr", inst, Budget(options={"c": "zero"}))


def test_bench_rows_have_the_documented_columns():
    from serveplan.chain.bench import bench_heuristics, markdown_table

    rows = bench_heuristics(sizes=((30, 10),), repeats=1)
    assert [r["step"] for r in rows] == ["gbp_cr", "gca", "gbp_cr+gca:7", "tune:surrogate", "gbp_cr+gca"]
    assert rows[0]["ratio_vs_gbp_cr"] == 1.0 and all(r["seconds"] >= 0 for r in rows)
    assert all(r["cores"] and r["cpu"] for r in rows)
    assert markdown_table(rows).count("\n") == len(rows) + 1


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 1000),
    J=st.integers(5, 25),
    eta=st.sampled_from([0.0, 0.1, 0.2, 0.4]),
    lam=st.floats(0.05, 1.0),
    high_perf=st.sampled_from(["random", "lowest_rtt"]),
    comm=st.sampled_from(["paper", "author_code"]),
    case=st.sampled_from(METHOD_CASES),
)
def test_heuristics_verify_on_ripe_instances(seed, J, eta, lam, high_perf, comm, case):
    from serveplan.chain.builders import ripe_instance

    inst = ripe_instance(J, eta, lam, seed=seed, high_perf=high_perf, comm_reading=comm)
    name, options = case
    res = run_method("chain", name, inst, Budget(seed=seed, options={**options, "c_max": 40}))
    if res.status == "feasible":
        assert res.verified, res.violations
    else:
        assert res.solution is None and res.info["reason"]


@pytest.mark.parametrize("seed", range(3))
def test_gbp_cr_beats_100_random_placements_with_equal_memory(seed):
    # the paper's GBP-CR unit test (a): eta = 0 gives equal memory, where GBP-CR is optimal
    from serveplan.chain.builders import ripe_instance

    inst = ripe_instance(20, 0.0, 0.2, seed=seed)
    c = 7
    ours = gbp_cr(inst, c)
    assert ours.feasible
    draws = random_placements(inst, c, 100, seed=seed)
    assert len(draws) == 100
    assert ours.surrogate <= min(r.surrogate for r in draws)
    best = run_method("chain", "random:7", inst, Budget(seed=seed, options={"samples": 100}))
    assert best.verified and best.info["surrogate_job_servers"] == min(r.surrogate for r in draws)


def test_paper_example_file_solves_as_in_the_paper(capsys):
    from pathlib import Path

    from serveplan.cli import main

    path = Path(__file__).resolve().parents[1] / "examples" / "chain_paper_gca_example.json"
    assert main(["solve", "chain", "--instance", str(path), "-o", "c=1", "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert [ch["capacity"] for ch in data["solution"]["chains"]] == [5, 5, 5]
    assert [ch["servers"] for ch in data["solution"]["chains"]] == [[0, 1], [0, 3, 4], [2, 3, 4]]


def test_tuning_table_has_the_three_curves():
    inst = tiny_instance(6, 3, arrival_rate=0.4, seed=7)
    tuning = tune_c(inst, "lower")
    rows = tuning.table(inst.arrival_rate)
    assert [r["c"] for r in rows] == [float(s.c) for s in tuning.scores]
    best = next(r for r in rows if r["c"] == tuning.best_c)
    assert best["eligible"] == 1.0 and best["lower_response_s"] <= best["upper_response_s"]
    assert best["surrogate_response_s"] == pytest.approx(best["c"] * best["K"] / inst.arrival_rate)
