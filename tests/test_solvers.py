"""Every backend solves small MILPs with known optima, and all agree; statuses, limits, errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pyomo.environ as pyo
import pytest

from serveplan.errors import BackendUnavailableError, UnknownNameError
from serveplan.solvers import BACKENDS, Status, available_backends, compile_pyomo, get_backend, solve
from serveplan.solvers.subprocess_runner import solve_in_subprocess

CORE = ["highs", "scip", "cpsat", "highs-mathopt"]
OPTIONAL = ["gurobi", "cuopt"]


def knapsack() -> pyo.ConcreteModel:
    """max 10a+13b+7c+8d+5e  s.t. 4a+6b+3c+5d+2e <= 11 (binary): optimum 25 with a, b, ... checked by hand."""
    values = [10, 13, 7, 8, 5]
    weights = [4, 6, 3, 5, 2]
    m = pyo.ConcreteModel()
    m.I = pyo.RangeSet(0, 4)
    m.x = pyo.Var(m.I, domain=pyo.Binary)
    m.cap = pyo.Constraint(expr=sum(weights[i] * m.x[i] for i in m.I) <= 11)
    m.obj = pyo.Objective(expr=sum(values[i] * m.x[i] for i in m.I), sense=pyo.maximize)
    return m


def brute_force_knapsack() -> float:
    values = [10, 13, 7, 8, 5]
    weights = [4, 6, 3, 5, 2]
    best = 0
    for mask in range(32):
        w = sum(weights[i] for i in range(5) if mask >> i & 1)
        if w <= 11:
            best = max(best, sum(values[i] for i in range(5) if mask >> i & 1))
    return best


ASSIGN_COST = np.array([[9, 2, 7, 8], [6, 4, 3, 7], [5, 8, 1, 8], [7, 6, 9, 4]])


def assignment() -> pyo.ConcreteModel:
    n = ASSIGN_COST.shape[0]
    m = pyo.ConcreteModel()
    m.R = pyo.RangeSet(0, n - 1)
    m.x = pyo.Var(m.R, m.R, domain=pyo.Binary)
    m.row = pyo.Constraint(m.R, rule=lambda m, i: sum(m.x[i, j] for j in m.R) == 1)
    m.col = pyo.Constraint(m.R, rule=lambda m, j: sum(m.x[i, j] for i in m.R) == 1)
    m.obj = pyo.Objective(expr=sum(int(ASSIGN_COST[i, j]) * m.x[i, j] for i in m.R for j in m.R))
    return m


def brute_force_assignment() -> float:
    import itertools

    return min(sum(ASSIGN_COST[i, p[i]] for i in range(4)) for p in itertools.permutations(range(4)))


def infeasible() -> pyo.ConcreteModel:
    m = pyo.ConcreteModel()
    m.x = pyo.Var(domain=pyo.NonNegativeIntegers, bounds=(0, 10))
    m.y = pyo.Var(domain=pyo.NonNegativeIntegers, bounds=(0, 10))
    m.a = pyo.Constraint(expr=2 * m.x + 2 * m.y == 7)  # parity makes it infeasible over the integers
    m.obj = pyo.Objective(expr=m.x + m.y)
    return m


def unbounded() -> pyo.ConcreteModel:
    m = pyo.ConcreteModel()
    m.x = pyo.Var(domain=pyo.NonNegativeIntegers)
    m.y = pyo.Var(domain=pyo.NonNegativeReals)
    m.a = pyo.Constraint(expr=m.x - m.y <= 3)
    m.obj = pyo.Objective(expr=m.x + m.y, sense=pyo.maximize)
    return m


def hard_mkp(seed: int = 7, items: int = 120, dims: int = 15) -> pyo.ConcreteModel:
    """A seeded multidimensional knapsack that no backend closes in a couple of seconds."""
    rng = np.random.default_rng(seed)
    w = rng.integers(20, 100, size=(dims, items))
    v = w.sum(axis=0) // dims + rng.integers(0, 30, size=items)
    cap = w.sum(axis=1) // 2
    m = pyo.ConcreteModel()
    m.I = pyo.RangeSet(0, items - 1)
    m.D = pyo.RangeSet(0, dims - 1)
    m.x = pyo.Var(m.I, domain=pyo.Binary)
    m.cap = pyo.Constraint(m.D, rule=lambda m, d: sum(int(w[d, i]) * m.x[i] for i in m.I) <= int(cap[d]))
    m.obj = pyo.Objective(expr=sum(int(v[i]) * m.x[i] for i in m.I), sense=pyo.maximize)
    return m


def test_core_backends_available():
    assert set(CORE) <= set(available_backends())


@pytest.mark.parametrize("backend", CORE)
def test_knapsack_optimum(backend):
    m = knapsack()
    res = solve(m, backend, threads=1, time_limit_s=30)
    assert res.status == Status.OPTIMAL
    assert res.objective == pytest.approx(brute_force_knapsack())
    assert res.bound == pytest.approx(brute_force_knapsack(), rel=1e-6)
    assert res.gap == pytest.approx(0.0, abs=1e-6)
    assert res.solver == backend and res.solver_version
    chosen = sum(v * pyo.value(m.x[i]) for i, v in enumerate([10, 13, 7, 8, 5]))
    assert chosen == pytest.approx(res.objective)


@pytest.mark.parametrize("backend", CORE)
def test_assignment_optimum(backend):
    m = assignment()
    res = solve(m, backend, threads=1)
    assert res.status == Status.OPTIMAL
    assert res.objective == pytest.approx(brute_force_assignment())
    x = np.array([[pyo.value(m.x[i, j]) for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(x.sum(axis=0), 1)
    np.testing.assert_allclose(x.sum(axis=1), 1)


@pytest.mark.parametrize("backend", CORE)
def test_infeasible(backend):
    res = solve(infeasible(), backend)
    assert res.status == Status.INFEASIBLE
    assert res.objective is None


@pytest.mark.parametrize("backend", CORE)
def test_unbounded(backend):
    res = solve(unbounded(), backend)
    assert res.status == Status.UNBOUNDED
    assert res.objective is None


def test_all_backends_agree_on_random_milps():
    rng = np.random.default_rng(3)
    for _ in range(3):
        n, k = 8, 3
        w = rng.integers(1, 10, size=(k, n))
        v = rng.integers(1, 20, size=n)
        cap = w.sum(axis=1) // 2
        objs = []
        for backend in CORE:
            m = pyo.ConcreteModel()
            m.x = pyo.Var(range(n), domain=pyo.NonNegativeIntegers, bounds=(0, 2))
            m.c = pyo.ConstraintList()
            for d in range(k):
                m.c.add(sum(int(w[d, i]) * m.x[i] for i in range(n)) <= int(cap[d]))
            m.o = pyo.Objective(expr=sum(int(v[i]) * m.x[i] for i in range(n)), sense=pyo.maximize)
            objs.append(solve(m, backend).objective)
        assert max(objs) - min(objs) < 1e-6, objs


@pytest.mark.parametrize("backend", CORE)
def test_time_limit_returns_incumbent_and_bound(backend):
    limit = 2.0
    res = solve(hard_mkp(), backend, time_limit_s=limit, threads=1)
    assert res.status == Status.FEASIBLE, res.message
    assert res.objective is not None and res.bound is not None
    assert res.bound >= res.objective - 1e-6  # maximisation: the bound is above the incumbent
    assert res.gap is not None and res.gap > 0
    assert res.wall_s <= 1.1 * limit + 0.25, res.wall_s  # stops within 10 % of the limit (plus clock granularity)
    assert res.time_limit_s == limit and res.threads == 1


def test_subprocess_runner_hard_kill_and_result():
    res = solve_in_subprocess(knapsack(), "highs", time_limit_s=20)
    assert res.status == Status.OPTIMAL and res.objective == pytest.approx(brute_force_knapsack())
    # A solve given no solver-side limit is killed at the hard limit and reported as no solution in time.
    killed = solve_in_subprocess(hard_mkp(seed=11, items=200, dims=25), "scip", hard_limit_s=3.0)
    assert killed.status == Status.NO_SOLUTION_IN_TIME
    assert killed.info.get("killed") is True
    assert killed.wall_s < 10


def test_compile_keeps_sense_and_bounds():
    lp, _cols = compile_pyomo(knapsack())
    assert lp.maximize and lp.num_cols == 5 and lp.num_rows == 1
    assert lp.integer.all() and (lp.col_ub == 1).all()
    x = np.array([1, 0, 1, 0, 1], dtype=float)
    assert lp.objective_value(x) == 22
    assert lp.max_violation(x) == 0
    assert lp.max_violation(np.ones(5)) == pytest.approx(20 - 11)


@pytest.mark.parametrize("backend", OPTIONAL)
def test_optional_backend_unavailable_is_clear(backend):
    ok, _reason = BACKENDS[backend].available()
    if ok:
        pytest.skip(f"{backend} is installed here; its solve is covered by the agreement tests on a GPU/licensed host")
    with pytest.raises(
        BackendUnavailableError, match=rf"backend '{backend}' is not available: pip install serveplan\["
    ):
        get_backend(backend)


def test_unknown_backend():
    with pytest.raises(UnknownNameError, match="unknown solver backend"):
        get_backend("cplex")


def test_ortools_and_highspy_in_one_process():
    """Both libhighs users load in one fresh process, in either order, and solve (the SONAME clash)."""
    for first, second in (
        ("highspy", "ortools.math_opt.python.mathopt"),
        ("ortools.math_opt.python.mathopt", "highspy"),
    ):
        code = textwrap.dedent(f"""
            import importlib
            importlib.import_module({first!r}); importlib.import_module({second!r})
            import pyomo.environ as pyo
            from serveplan.solvers import solve
            m = pyo.ConcreteModel(); m.x = pyo.Var(domain=pyo.Binary); m.y = pyo.Var(domain=pyo.Binary)
            m.c = pyo.Constraint(expr=m.x + m.y <= 1); m.o = pyo.Objective(expr=m.x + 2 * m.y, sense=pyo.maximize)
            print([solve(m, b).objective for b in ("highs", "highs-mathopt", "scip", "cpsat")])
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().endswith("[2.0, 2.0, 2.0, 2.0]")


def test_cpsat_with_continuous_variables_is_not_claimed_optimal():
    """CP-SAT discretises continuous variables: its answer is a feasible point, never a claimed optimum."""
    m = pyo.ConcreteModel()
    m.y = pyo.Var(bounds=(0, 10))
    m.x = pyo.Var(domain=pyo.Binary)
    m.c = pyo.Constraint(expr=m.y <= 0.5 + 0.25 * m.x)
    m.o = pyo.Objective(expr=m.y, sense=pyo.maximize)
    res = solve(m, "cpsat")
    assert res.status == Status.FEASIBLE and res.bound is None
    assert res.objective == pytest.approx(0.75, abs=1e-4)
    assert res.info["continuous_variables"] == 1 and res.info["continuous_grid"] <= 1e-4
    # A pure-integer model keeps CP-SAT's own optimality proof.
    assert solve(knapsack(), "cpsat").status == Status.OPTIMAL


@pytest.mark.parametrize("backend", CORE)
def test_presolve_off_is_honoured_and_agrees(backend):
    res = solve(assignment(), backend, presolve=False)
    assert res.status == Status.OPTIMAL
    assert res.objective == pytest.approx(brute_force_assignment())
