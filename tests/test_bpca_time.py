"""The time-expanded BPCA model (model B) against model A and the independent brute force on tiny instances.

Checks the claims of proofs/bpca_time_expanded.md: on grid-aligned instances B is exact (equal to A and to the
brute force); otherwise the down-rounded optimum <= the optimum <= the up-rounded value; every decomposed flow
path has exactly its sink's grid time; decoded solutions pass the independent verifier with the true times.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_chain_milp import CASES, bf_bpca, bf_time, objective_of, tiny_instance

from formulations import chain_bpca, chain_bpca_time
from formulations.chain_paths import Segment, segment_time_s, useful_segments
from serveplan.chain.instance import ChainInstance, Server
from serveplan.chain.verify import verify
from serveplan.errors import InputError
from serveplan.registry import Budget, get_method, run_method
from serveplan.solvers import Status, solve

STEP = 0.25  # a binary fraction: grid times are exact in floating point


def aligned_instance(seed: int, J: int, L: int, step: float = STEP) -> ChainInstance:
    """A tiny instance whose times are multiples of ``step`` (so every segment time lies on the grid)."""
    rng = np.random.default_rng(1000 + seed)
    servers = tuple(
        Server(
            f"s{j}",
            float(rng.choice([2.0, 2.5, 3.0, 4.0, 5.0])),
            step * int(rng.integers(0, 5)),
            step * int(rng.integers(1, 5)),
        )
        for j in range(J)
    )
    base = sum(1.0 / (s.comm_time_s + s.compute_time_s * L) for s in servers)
    rate = float(np.round(rng.uniform(0.1, 1.6) * base, 3))
    return ChainInstance(servers, L, 1.0, 0.25, rate, 0.7, name=f"aligned{seed}")


ALIGNED = [(seed, J, L) for seed, (J, L) in enumerate([(2, 2), (3, 2), (3, 3), (4, 2), (2, 4), (4, 3), (3, 4), (4, 4)])]


@pytest.mark.parametrize(("seed", "J", "L"), ALIGNED)
def test_grid_aligned_model_is_exact(seed, J, L):
    inst = aligned_instance(seed, J, L)
    expected = bf_bpca(inst)
    a = chain_bpca.solve_bpca(inst)
    assert objective_of(a.objective) == expected
    for step in (STEP, STEP / 2):
        out = chain_bpca_time.solve_bpca_time(inst, step_s=step)
        assert out.info["exact_grid"]
        if math.isinf(expected):
            assert out.status == Status.INFEASIBLE and out.solution is None
            continue
        assert out.status == Status.OPTIMAL
        assert out.objective == expected == out.bound
        report = verify(inst, out.solution)
        assert report.ok, report.violations
        assert out.solution.total_capacity == expected


def test_decimal_grid_counts_as_aligned():
    # 0.7 / 0.1 is 6.999999999999999 in floating point: the grid tolerance must still put it on the grid.
    servers = (Server("a", 4.0, 0.1, 0.3), Server("b", 3.0, 0.2, 0.6), Server("c", 2.5, 0.0, 0.2))
    inst = ChainInstance(servers, 3, 1.0, 0.25, 2.0, 0.7)
    assert chain_bpca_time.on_grid(inst, 0.1)
    out = chain_bpca_time.solve_bpca_time(inst, step_s=0.1)
    assert out.info["exact_grid"]
    assert out.status == Status.OPTIMAL and out.objective == bf_bpca(inst)
    assert verify(inst, out.solution).ok


@pytest.mark.parametrize(("seed", "J", "L"), CASES)
@pytest.mark.parametrize("steps", [5, 40])
def test_rounding_brackets_the_optimum(seed, J, L, steps):
    inst = tiny_instance(seed, J, L)
    expected = bf_bpca(inst)
    a = chain_bpca.solve_bpca(inst)
    assert objective_of(a.objective) == expected
    out = chain_bpca_time.solve_bpca_time(inst, steps=steps)
    if math.isinf(expected):
        assert out.status == Status.INFEASIBLE
        return
    down, up = out.info["down"], out.info["up"]
    assert down["status"] == "optimal"
    assert down["objective"] <= expected + 1e-6
    assert out.bound is not None and out.bound <= expected
    if up["status"] == "optimal":
        assert up["objective"] >= expected - 1e-6
        assert out.objective == round(up["objective"]) >= expected
        report = verify(inst, out.solution)
        assert report.ok, report.violations
        assert out.solution.total_capacity == out.objective
        assert out.status == (Status.OPTIMAL if out.objective == out.bound else Status.FEASIBLE)
    else:
        assert up["status"] == "infeasible"
        assert out.status == Status.NO_SOLUTION_IN_TIME and "refine" in out.info["reason"]
    if out.status == Status.OPTIMAL:
        assert out.objective == expected


def test_coarse_grid_without_solution_reports_its_bound():
    # One step over the longest chain: every chain rounds up to at least that time; the rate cannot be reached
    # although BPCA is feasible, and the down-rounded bound is still valid.
    inst = tiny_instance(7, 4, 4)
    expected = bf_bpca(inst)
    out = chain_bpca_time.solve_bpca_time(inst, steps=1)
    assert out.status == Status.NO_SOLUTION_IN_TIME and out.solution is None
    assert out.info["up"]["status"] == "infeasible"
    assert out.bound is not None and out.bound <= expected


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rounding", ["up", "down"])
def test_decomposed_paths_have_their_sink_grid_time(seed, rounding):
    inst = tiny_instance(seed, 4, 3, lam=1.0 + seed)
    step = chain_bpca_time.grid_step_s(inst, steps=17)
    model = chain_bpca_time.build_model(inst, step, rounding)
    res = solve(model)
    if not res.status.has_solution:
        assert res.status == Status.INFEASIBLE
        return
    arcs = model.bpca_arcs
    flows = [round(model.x[i].value) for i in range(len(arcs))]
    paths = chain_bpca_time.decompose_flow(arcs, flows, inst.num_blocks)
    assert sum(c for _, _, c in paths) == round(res.objective)
    rebuilt = dict.fromkeys(range(len(arcs)), 0)
    index = {(a.segment, a.start): i for i, a in enumerate(arcs)}
    for segs, k, c in paths:
        assert c >= 1
        t = 0
        for s in segs:
            t_next = t + chain_bpca_time.grid_units(segment_time_s(inst, s), step, rounding)
            rebuilt[index[(s, t)]] += c
            t = t_next
        assert t == k  # the path's grid time is its sink's
        true_time = bf_time(inst, tuple((s.server, s.num_blocks) for s in segs))
        assert (true_time <= k * step * (1 + 1e-9)) if rounding == "up" else (true_time >= k * step * (1 - 1e-9))
    assert [rebuilt[i] for i in range(len(arcs))] == flows
    if rounding == "up":
        assert verify(inst, chain_bpca_time.decode(inst, model)).ok


def test_decompose_flow_by_hand():
    a, b, c = Segment(0, 1, 1), Segment(1, 2, 2), Segment(2, 1, 2)
    arcs = [
        chain_bpca_time.Arc(a, 0, 1),
        chain_bpca_time.Arc(b, 1, 3),
        chain_bpca_time.Arc(c, 0, 2),
    ]
    paths = sorted(chain_bpca_time.decompose_flow(arcs, [2, 2, 3], 2), key=lambda p: p[1])
    assert paths == [((c,), 2, 3), ((a, b), 3, 2)]


def test_infeasible_instances_are_a_status():
    inst = tiny_instance(3, 3, 3, lam=100.0)
    assert math.isinf(bf_bpca(inst))
    assert chain_bpca_time.solve_bpca_time(inst).status == Status.INFEASIBLE
    assert chain_bpca_time.solve_bpca_time(inst, step_s=0.001).status == Status.INFEASIBLE
    none_fit = ChainInstance((Server("a", 0.5, 0.1, 0.1),), 2, 1.0, 0.25, 1.0, 0.7)
    assert useful_segments(none_fit) == []
    assert chain_bpca_time.solve_bpca_time(none_fit).status == Status.INFEASIBLE
    r = run_method("chain", "milp:bpca-time", inst)
    assert r.status == "infeasible" and r.solution is None and not r.verified


def test_registered_method_and_its_parameters():
    method, _ = get_method("chain", "milp:bpca-time")
    assert method.kind == "exact"
    inst = aligned_instance(2, 3, 3)
    expected = bf_bpca(inst)
    r = run_method("chain", "milp:bpca-time", inst, Budget(options={"step_s": str(STEP)}))
    assert r.status == "optimal" and r.verified and r.objective == expected and r.info["exact_grid"]
    r = run_method("chain", "milp:bpca-time:30", tiny_instance(2, 3, 3))
    assert r.info["step_s"] == pytest.approx(chain_bpca_time.grid_step_s(tiny_instance(2, 3, 3), steps=30))
    assert r.verified and r.bound <= bf_bpca(tiny_instance(2, 3, 3)) <= r.objective
    with pytest.raises(InputError):
        run_method("chain", "milp:bpca-time:abc", inst)
    with pytest.raises(InputError):
        run_method("chain", "milp:bpca-time", inst, Budget(options={"step_s": "-1"}))
    with pytest.raises(InputError):
        chain_bpca_time.build_model(inst, STEP, "sideways")


@pytest.mark.parametrize("backend", ["scip", "cpsat"])
def test_backends_agree_on_an_aligned_instance(backend):
    inst = aligned_instance(5, 4, 3)
    expected = bf_bpca(inst)
    out = chain_bpca_time.solve_bpca_time(inst, step_s=STEP, backend=backend)
    assert out.status == Status.OPTIMAL and out.objective == expected
    assert verify(inst, out.solution).ok


def test_finer_grids_never_loosen_a_dyadic_bracket():
    # Halving the step refines the grid (every old grid point stays one), so the bracket can only tighten.
    inst = tiny_instance(5, 4, 3)
    expected = bf_bpca(inst)
    step = chain_bpca_time.grid_step_s(inst, steps=8)
    prev_lo, prev_hi = -math.inf, math.inf
    for halvings in range(4):
        out = chain_bpca_time.solve_bpca_time(inst, step_s=step / 2**halvings)
        lo = out.bound
        hi = math.inf if out.objective is None else out.objective
        assert prev_lo <= lo <= expected <= hi <= prev_hi
        prev_lo, prev_hi = lo, hi


def test_benchmark_comparison_runs_and_agrees():
    from serveplan.chain.bench_milp import bench_time_expanded, time_expanded_table

    rows = bench_time_expanded(sizes=[4], steps=[10], time_limit_s=30.0)
    assert [(r["instance"], r["model"]) for r in rows] == [
        ("general", "A"),
        ("general", "B-up"),
        ("general", "B-down"),
        ("aligned", "A"),
        ("aligned", "B-exact"),
    ]
    a, up, down, a_aligned, exact = rows
    assert down["objective"] <= a["objective"] <= up["objective"]
    assert exact["objective"] == a_aligned["objective"]
    assert all(r["rows"] > 0 and r["cols"] > 0 and r["nonzeros"] > 0 for r in rows)
    assert time_expanded_table(rows).count("\n") == len(rows) + 1


def test_refinement_closes_the_bracket_monotonically():
    # Starting from one step (no up-rounded solution at all), halving the step tightens the bracket round by round
    # (proofs/bpca_time_expanded.md (iv)) until it closes at the brute-force optimum.
    inst = tiny_instance(7, 4, 4)
    expected = bf_bpca(inst)
    out = chain_bpca_time.solve_bpca_time(inst, steps=1, refine=12)
    assert out.status == Status.OPTIMAL and out.objective == out.bound == expected
    assert verify(inst, out.solution).ok
    rounds = out.info["rounds"]
    assert 1 < len(rounds) <= 13
    assert rounds[0]["up"]["status"] == "infeasible"
    steps = [r["step_s"] for r in rounds]
    assert steps == [steps[0] / 2**i for i in range(len(rounds))]
    downs = [r["down"]["objective"] for r in rounds]
    ups = [r["up"]["objective"] for r in rounds if r["up"]["objective"] is not None]
    assert downs == sorted(downs) and all(d <= expected + 1e-6 for d in downs)
    assert ups == sorted(ups, reverse=True) and all(u >= expected - 1e-6 for u in ups)
    r = run_method("chain", "milp:bpca-time:1", inst, Budget(options={"refine": "12"}))
    assert r.status == "optimal" and r.verified and r.objective == expected
    with pytest.raises(InputError):
        chain_bpca_time.solve_bpca_time(inst, refine=-1)


def test_cli_solves_with_the_time_expanded_method(tmp_path, capsys):
    import json

    from serveplan.cli import main

    inst = aligned_instance(3, 4, 2)
    path = tmp_path / "inst.json"
    inst.save_json(path)
    args = ["solve", "chain", "--instance", str(path), "--method", "milp:bpca-time", "--json"]
    assert main([*args, "-o", f"step_s={STEP}"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "optimal" and out["verified"] and out["objective"] == bf_bpca(inst)
    # a malformed option is a one-line input error (exit 2), not a traceback
    assert main([*args, "-o", "refine=x"]) == 2
    assert "refine" in capsys.readouterr().err


@pytest.mark.parametrize("seed", range(400, 440))
def test_random_sweep_bracket_and_exactness(seed):
    rng = np.random.default_rng(seed)
    J, L = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    for inst, kwargs in (
        (tiny_instance(seed, J, L), {"steps": int(rng.integers(2, 80))}),
        (aligned_instance(seed, J, L), {"step_s": STEP / int(rng.choice([1, 2, 4]))}),
    ):
        expected = bf_bpca(inst)
        out = chain_bpca_time.solve_bpca_time(inst, **kwargs)
        if math.isinf(expected):
            assert out.status in (Status.INFEASIBLE, Status.NO_SOLUTION_IN_TIME) and out.solution is None
            continue
        assert out.bound is not None and out.bound <= expected
        if out.solution is not None:
            assert verify(inst, out.solution).ok and out.objective >= expected
        if out.info["exact_grid"]:
            assert out.status == Status.OPTIMAL and out.objective == expected
