"""Exact chain MILPs against an independent brute force on tiny instances.

The brute force below shares no code with ``formulations``: it enumerates every placement (each server unused
or hosting any range), every chain of each placement by its own depth-first search, and every capacity vector
(branch and bound over integer capacities, which is exhaustive: it only cuts branches that provably cannot
beat the incumbent or reach the rate).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from formulations import chain_bpca, chain_cache, chain_simplified
from serveplan.chain.instance import ChainInstance, Server
from serveplan.chain.placement import Chain, Placement
from serveplan.chain.verify import verify
from serveplan.errors import InputError
from serveplan.registry import Budget, get_method, run_method
from serveplan.solvers import Status, solve

TOL = 1e-9


# ------------------------------------------------------------------------------------------------ instances
def tiny_instance(seed: int, J: int, L: int, lam: float | None = None) -> ChainInstance:
    rng = np.random.default_rng(seed)
    servers = tuple(
        Server(
            f"s{j}",
            float(rng.choice([2.0, 2.5, 3.0, 4.0, 5.0])),
            float(np.round(rng.uniform(0.0, 1.0), 3)),
            float(np.round(rng.uniform(0.1, 1.0), 3)),
        )
        for j in range(J)
    )
    # lambda relative to the rate of every server running the whole model once: a mix of easy, tight, infeasible
    base = sum(1.0 / (s.comm_time_s + s.compute_time_s * L) for s in servers)
    rate = float(np.round(rng.uniform(0.1, 1.6) * base, 3)) if lam is None else lam
    return ChainInstance(servers, L, 1.0, 0.25, rate, 0.7, name=f"tiny{seed}")


# ------------------------------------------------------------------------------------------------ brute force
def bf_slots(inst: ChainInstance, j: int, m: int) -> int:
    q = (inst.servers[j].memory_gb - inst.block_memory_gb * m) / inst.cache_memory_gb
    return math.floor(q + 1e-9 * max(1.0, abs(q)))


def bf_chains(inst: ChainInstance, first: list[int], count: list[int]) -> list[tuple[tuple[int, int], ...]]:
    """All chains as ((server, blocks processed), ...), by DFS over 'next unprocessed block'."""
    L, J = inst.num_blocks, inst.num_servers
    out = []

    def walk(nb: int, path: list[tuple[int, int]], seen: set[int]) -> None:
        if nb == L + 1:
            out.append(tuple(path))
            return
        for j in range(J):
            if count[j] and j not in seen and first[j] <= nb <= first[j] + count[j] - 1:
                end = first[j] + count[j] - 1
                walk(end + 1, [*path, (j, end - nb + 1)], seen | {j})

    walk(1, [], set())
    return out


def bf_time(inst: ChainInstance, chain: tuple[tuple[int, int], ...]) -> float:
    return sum(inst.servers[j].comm_time_s + inst.servers[j].compute_time_s * b for j, b in chain)


def bf_min_capacity(inst: ChainInstance, chains, slots: list[int], best: float) -> float:
    """min sum c s.t. sum c/T >= R, per-server slots; returns min(best, found). Exhaustive branch and bound."""
    R = inst.arrival_rate / inst.target_load
    items = sorted(((bf_time(inst, ch), ch) for ch in chains), key=lambda x: x[0])
    res = list(slots)
    result = [best]

    def cap(ch) -> int:
        return min(res[j] // b for j, b in ch)

    def dfs(k: int, total: int, rate: float) -> None:
        if rate >= R * (1 - TOL):
            result[0] = min(result[0], total)
            return
        if k == len(items) or total >= result[0]:
            return
        # every further job server adds at most 1/T_k (items sorted by T): need at least this many more
        t_fast = items[k][0]
        if total + math.ceil((R * (1 - TOL) - rate) * t_fast - 1e-12) >= result[0]:
            return
        if rate + sum(max(cap(ch), 0) / t for t, ch in items[k:]) < R * (1 - TOL):
            return
        t, ch = items[k]
        for c in range(max(cap(ch), 0), -1, -1):
            for j, b in ch:
                res[j] -= b * c
            dfs(k + 1, total + c, rate + c / t)
            for j, b in ch:
                res[j] += b * c

    dfs(0, 0, 0.0)
    return result[0]


def bf_bpca(inst: ChainInstance) -> float:
    """Optimal BPCA value by enumerating all placements (math.inf if infeasible)."""
    L, J = inst.num_blocks, inst.num_servers
    per_server = []
    for j in range(J):
        opts = [(0, 0)]
        for m in range(1, L + 1):
            if bf_slots(inst, j, m) >= 0:
                opts += [(a, m) for a in range(1, L - m + 2)]
        per_server.append(opts)
    best = math.inf
    for combo in itertools.product(*per_server):
        first = [a for a, _ in combo]
        count = [m for _, m in combo]
        chains = bf_chains(inst, first, count)
        if not chains:
            continue
        slots = [bf_slots(inst, j, count[j]) if count[j] else 0 for j in range(J)]
        best = bf_min_capacity(inst, chains, slots, best)
    return best


def bf_blocks(inst: ChainInstance, c: int) -> list[int]:
    out = []
    for s in inst.servers:
        q = s.memory_gb / (inst.block_memory_gb + inst.cache_memory_gb * c)
        out.append(min(math.floor(q + 1e-9 * max(1.0, q)), inst.num_blocks))
    return out


def bf_simplified(inst: ChainInstance, c: int) -> float:
    """min number of disjoint covering server groups reaching sum 1/T >= R/c (math.inf if none)."""
    J, L = inst.num_servers, inst.num_blocks
    m = bf_blocks(inst, c)
    t = [s.comm_time_s + s.compute_time_s * m[j] for j, s in enumerate(inst.servers)]
    target = inst.arrival_rate / inst.target_load / c
    best = math.inf
    for labels in itertools.product(range(J + 1), repeat=J):  # label 0: unused
        groups: dict[int, list[int]] = {}
        for j, g in enumerate(labels):
            if g:
                groups.setdefault(g, []).append(j)
        if any(sum(m[j] for j in g) < L for g in groups.values()):
            continue
        rate = sum(1.0 / sum(t[j] for j in g) for g in groups.values())
        if rate >= target * (1 - TOL):
            best = min(best, len(groups))
    return best


def random_placement(inst: ChainInstance, rng: np.random.Generator) -> Placement:
    """Servers in random order take consecutive random-size ranges, wrapping to block 1 after block L."""
    L, J = inst.num_blocks, inst.num_servers
    first, count = [0] * J, [0] * J
    a = 1
    for j in rng.permutation(J):
        fits = [m for m in range(1, L + 1) if bf_slots(inst, int(j), m) >= m]
        if not fits:
            continue
        m = int(rng.choice(fits))
        a = min(a, L - m + 1)
        first[j], count[j] = a, m
        a = a + m if a + m <= L else 1
    return Placement(tuple(first), tuple(count))


def objective_of(value: float | None) -> float:
    return math.inf if value is None else round(value)


SIZES = [(2, 2), (3, 2), (3, 3), (4, 2), (2, 4), (4, 3), (3, 4), (4, 4), (4, 4), (3, 3), (3, 3), (4, 3), (4, 4), (4, 4)]
CASES = [(seed, J, L) for seed, (J, L) in enumerate(SIZES)]


# ------------------------------------------------------------------------------------------------ BPCA
@pytest.mark.parametrize(("seed", "J", "L"), CASES)
def test_bpca_enumerate_equals_brute_force(seed, J, L):
    inst = tiny_instance(seed, J, L)
    expected = bf_bpca(inst)
    out = chain_bpca.solve_bpca(inst, mode="enumerate")
    if math.isinf(expected):
        assert out.status == Status.INFEASIBLE
        return
    assert out.status == Status.OPTIMAL
    assert objective_of(out.objective) == expected
    report = verify(inst, out.solution)
    assert report.ok, report.violations
    assert out.solution.total_capacity == expected


@pytest.mark.parametrize(("seed", "J", "L"), CASES)
def test_bpca_colgen_closes_to_the_optimum(seed, J, L):
    inst = tiny_instance(seed, J, L)
    expected = bf_bpca(inst)
    out = chain_bpca.solve_bpca(inst, mode="colgen")
    # tiny instances: the reduced-cost enumeration always fits, so column generation must close exactly
    if math.isinf(expected):
        assert out.status == Status.INFEASIBLE
        return
    assert out.status == Status.OPTIMAL
    assert objective_of(out.objective) == expected
    assert out.bound == pytest.approx(expected)
    assert verify(inst, out.solution).ok
    assert out.info["lagrangian_bound"] <= expected + 1e-6


def test_bpca_infeasible_is_a_status():
    inst = tiny_instance(3, 3, 3, lam=100.0)
    assert math.isinf(bf_bpca(inst))
    assert chain_bpca.solve_bpca(inst, mode="enumerate").status == Status.INFEASIBLE
    assert chain_bpca.solve_bpca(inst, mode="colgen").status == Status.INFEASIBLE
    # no server can hold even one block: no path at all, still a solver status
    none_fit = ChainInstance((Server("a", 0.5, 0.1, 0.1),), 2, 1.0, 0.25, 1.0, 0.7)
    assert chain_bpca.solve_bpca(none_fit).status == Status.INFEASIBLE


# ------------------------------------------------------------------------------------------------ cache ILP
@pytest.mark.parametrize("seed", range(10))
def test_cache_ilp_equals_brute_force(seed):
    rng = np.random.default_rng(1000 + seed)
    J, L = int(rng.integers(2, 5)), int(rng.integers(2, 5))
    inst = tiny_instance(1000 + seed, J, L)
    inst = inst.with_arrival_rate(round(0.4 * inst.arrival_rate, 3))  # one fixed placement carries less
    placement = random_placement(inst, rng)
    chains = bf_chains(inst, list(placement.first_block), list(placement.num_blocks))
    slots = [bf_slots(inst, j, placement.num_blocks[j]) if placement.num_blocks[j] else 0 for j in range(J)]
    expected = bf_min_capacity(inst, chains, slots, math.inf)
    objs = [Chain(tuple(j for j, _ in ch), tuple(b for _, b in ch)) for ch in chains]
    model = chain_cache.build_model(inst, placement, objs)
    res = solve(model, "highs")
    if math.isinf(expected):
        assert res.status == Status.INFEASIBLE
        return
    assert res.status == Status.OPTIMAL
    assert objective_of(res.objective) == expected
    sol = chain_cache.decode(inst, model)
    assert verify(inst, sol).ok
    assert sol.total_capacity == expected


def test_cache_ilp_rejects_a_chain_off_the_placement():
    inst = tiny_instance(0, 2, 2)
    placement = Placement((1, 2), (1, 1))
    with pytest.raises(InputError, match=r"routing graph|block L"):
        chain_cache.build_model(inst, placement, [Chain((1, 0), (1, 1))])


# ------------------------------------------------------------------------------------------------ simplified
@pytest.mark.parametrize(
    ("seed", "J", "L"), [(s, J, L) for s, (J, L) in enumerate([(3, 3), (4, 3), (4, 4), (4, 2), (4, 4)])]
)
@pytest.mark.parametrize("c", [1, 2, 3])
def test_simplified_equals_brute_force(seed, J, L, c):
    inst = tiny_instance(200 + seed, J, L)
    expected = bf_simplified(inst, c)
    model = chain_simplified.build_model(inst, c)
    res = solve(model, "highs")
    if math.isinf(expected):
        assert res.status == Status.INFEASIBLE
        return
    assert res.status == Status.OPTIMAL
    assert objective_of(res.objective) == expected
    sol = chain_simplified.decode(inst, model)
    report = verify(inst, sol)
    assert report.ok, report.violations
    assert sol.total_capacity == c * expected


def test_simplified_never_beats_bpca():
    """c |K| of the simplified optimum is a feasible BPCA value, so it is >= the BPCA optimum."""
    inst = tiny_instance(7, 4, 3, lam=0.6)
    best = bf_bpca(inst)
    for c in (1, 2, 3):
        k = bf_simplified(inst, c)
        if not math.isinf(k):
            assert c * k >= best


# ------------------------------------------------------------------------------------------------ backends
@pytest.mark.parametrize("backend", ["highs", "scip", "cpsat"])
def test_backends_agree(backend):
    for seed, J, L in [(2, 3, 3), (5, 4, 3), (101, 3, 3)]:
        inst = tiny_instance(seed, J, L)
        expected = bf_bpca(inst)
        out = chain_bpca.solve_bpca(inst, backend=backend)
        if math.isinf(expected):
            assert out.status == Status.INFEASIBLE
        else:
            assert out.status == Status.OPTIMAL
            assert objective_of(out.objective) == expected
            assert verify(inst, out.solution).ok
        c = 2
        want = bf_simplified(inst, c)
        res = solve(chain_simplified.build_model(inst, c), backend)
        assert objective_of(res.objective) == want if not math.isinf(want) else res.status == Status.INFEASIBLE
    inst = tiny_instance(2, 3, 3)
    placement = Placement((1, 2, 1), (1, 2, 3))
    chains = [Chain((0, 1), (1, 2)), Chain((2,), (3,))]
    res = solve(chain_cache.build_model(inst, placement, chains), backend)
    slots = [bf_slots(inst, j, placement.num_blocks[j]) for j in range(3)]
    bf = [((0, 1), (1, 2)), ((2, 3),)]
    expected = bf_min_capacity(inst, bf, slots, math.inf)
    assert objective_of(res.objective) == expected if not math.isinf(expected) else res.status == Status.INFEASIBLE


# ------------------------------------------------------------------------------------------------ registry
def test_registered_methods_verify_their_solutions():
    inst = tiny_instance(2, 3, 3)
    for name in ("milp:bpca", "milp:cache", "milp:simplified"):
        method, _ = get_method("chain", name)
        assert method.kind == "exact"
    r = run_method("chain", "milp:bpca", inst)
    assert r.status == "optimal" and r.verified and r.solve["status"] == "optimal"
    assert r.objective == pytest.approx(bf_bpca(inst))
    r = run_method("chain", "milp:bpca", inst, Budget(options={"mode": "colgen"}))
    assert r.status in ("optimal", "feasible") and r.verified
    r = run_method("chain", "milp:cache", inst)
    assert r.status in ("optimal", "infeasible")
    assert r.verified == (r.status == "optimal")
    placement = Placement((1, 2, 1), (1, 2, 3))
    r = run_method("chain", "milp:cache", inst, Budget(options={"placement": placement.to_dict()}))
    assert r.info["num_chains"] == len(bf_chains(inst, [1, 2, 1], [1, 2, 3]))
    r = run_method("chain", "milp:simplified", inst, Budget(options={"c": 2}))
    want = bf_simplified(inst, 2)
    assert (r.status == "infeasible") if math.isinf(want) else (r.objective == 2 * want and r.verified)
    r = run_method("chain", "milp:bpca", tiny_instance(3, 3, 3, lam=100.0))
    assert r.status == "infeasible" and r.solution is None and not r.verified


@pytest.mark.parametrize("seed", range(300, 324))
def test_bpca_random_sweep_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    inst = tiny_instance(seed, int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    expected = bf_bpca(inst)
    for mode in ("enumerate", "colgen"):
        out = chain_bpca.solve_bpca(inst, mode=mode)
        assert objective_of(out.objective) == expected
        assert out.status == (Status.INFEASIBLE if math.isinf(expected) else Status.OPTIMAL)
        if out.solution is not None:
            assert verify(inst, out.solution).ok


def test_cli_solves_with_the_exact_methods(tmp_path, capsys):
    import json

    from serveplan.cli import main

    inst = tiny_instance(2, 3, 3)
    path = tmp_path / "inst.json"
    inst.save_json(path)
    expected = bf_bpca(inst)
    for extra in (["-o", "mode=colgen"], ["-o", "mode=enumerate", "--backend", "scip"]):
        assert main(["solve", "chain", "--instance", str(path), "--method", "milp:bpca", "--json", *extra]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["status"] == "optimal" and out["verified"] and out["objective"] == pytest.approx(expected)
    assert main(["solve", "chain", "--instance", str(path), "--method", "milp:simplified", "-o", "c=2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["objective"] == pytest.approx(2 * bf_simplified(inst, 2))
    # a malformed option is a one-line input error (exit 2), not a traceback
    assert main(["solve", "chain", "--instance", str(path), "--method", "milp:bpca", "-o", "max_paths=x"]) == 2
    assert "max_paths" in capsys.readouterr().err


@pytest.mark.parametrize(("seed", "J", "L"), CASES[:6])
def test_column_generation_master_lp_equals_the_pyomo_relaxation(seed, J, L):
    from formulations.chain_bpca import _MasterLP, link_keys
    from formulations.chain_paths import enumerate_paths, useful_segments

    inst = tiny_instance(seed, J, L)
    paths = enumerate_paths(inst)
    segments = useful_segments(inst)
    master = _MasterLP(inst, segments, link_keys(segments))
    for phase_one in (True, False):
        model = chain_bpca.build_model(inst, paths, segments=segments, relax=True, phase_one=phase_one)
        res = solve(model, "highs")
        got = master.solve(paths, phase_one)
        if res.status == Status.INFEASIBLE:
            assert got is None
        else:
            assert got is not None
            assert got[0] == pytest.approx(res.objective, abs=1e-7)


@pytest.mark.parametrize(("seed", "J", "L"), CASES)
def test_bpca_colgen_stopped_early_reports_valid_bounds(seed, J, L):
    """With too few rounds to converge, the answer is an incumbent plus a bound that must still be valid."""
    inst = tiny_instance(seed, J, L)
    expected = bf_bpca(inst)
    out = chain_bpca.solve_bpca(inst, mode="colgen", max_iterations=2)
    if math.isinf(expected):
        assert out.solution is None and out.status in (Status.INFEASIBLE, Status.NO_SOLUTION_IN_TIME)
        return
    assert out.status != Status.INFEASIBLE
    if out.bound is not None:
        assert out.bound <= expected + 1e-9
    if out.solution is not None:
        assert objective_of(out.objective) >= expected
        assert verify(inst, out.solution).ok
    if out.status == Status.OPTIMAL:
        assert objective_of(out.objective) == expected


@pytest.mark.parametrize("num_servers", [6, 20])
def test_cache_ilp_never_needs_more_job_servers_than_gca(num_servers):
    """GCA's own allocation (trimmed to its job-server count) is feasible for the ILP over GCA's chains."""
    from heuristics.c_tuning import tune_c
    from heuristics.gca import gca
    from serveplan.chain.builders import synthetic_instance

    inst = synthetic_instance(num_servers, 12, arrival_rate=4.0, seed=num_servers)
    tuning = tune_c(inst, "lower")
    assert tuning.best_c is not None
    placement = tuning.placement_run.placement
    alloc = gca(inst, placement)
    needed = alloc.job_servers_needed(inst.required_rate)
    assert needed is not None
    r = run_method("chain", "milp:cache", inst, Budget(options={"c": tuning.best_c}))
    assert r.status == "optimal" and r.verified
    assert r.objective <= needed + 1e-9
    assert r.info["num_chains"] == len(alloc.chains) >= 5


@pytest.mark.slow
@pytest.mark.parametrize("num_servers", [6, 8, 10])
def test_colgen_and_enumeration_agree_on_benchmark_instances(num_servers):
    from serveplan.chain.bench_milp import bench_instance

    inst = bench_instance(num_servers)
    full = chain_bpca.solve_bpca(inst, mode="enumerate", backend="scip", time_limit_s=120, max_paths=50_000)
    cg = chain_bpca.solve_bpca(inst, mode="colgen", time_limit_s=120)
    assert full.status == cg.status == Status.OPTIMAL
    assert full.objective == pytest.approx(cg.objective)
    assert verify(inst, full.solution).ok and verify(inst, cg.solution).ok
