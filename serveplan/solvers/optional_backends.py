"""Optional commercial / GPU backends: Gurobi (gurobipy) and NVIDIA cuOpt.

Both are imported lazily, only when used; when missing they report how to install them instead of
raising ImportError.
"""

from __future__ import annotations

import importlib.util
import math
import time

import numpy as np
import scipy.sparse as sp

from serveplan.solvers.backend import Backend, SolveOptions
from serveplan.solvers.result import SolveResult, Status
from serveplan.solvers.standard_form import LinearProblem


class GurobiBackend(Backend):
    """Gurobi through gurobipy's matrix API (needs a licence for models beyond the size-limited one)."""

    name = "gurobi"
    package = "gurobipy"
    install_hint = "pip install serveplan[gurobi]"
    description = "Gurobi (optional, licensed)"

    def solve(self, lp: LinearProblem, options: SolveOptions) -> tuple[SolveResult, np.ndarray | None]:
        """Solve with gurobipy."""
        import gurobipy as gp

        env = gp.Env(params={"OutputFlag": int(options.verbose)})
        m = gp.Model(env=env)
        if options.time_limit_s is not None:
            m.Params.TimeLimit = float(options.time_limit_s)
        if options.threads is not None:
            m.Params.Threads = int(options.threads)
        if options.rel_gap is not None:
            m.Params.MIPGap = float(options.rel_gap)
        m.Params.Seed = int(options.seed)
        if options.presolve is False:
            m.Params.Presolve = 0
        vtype = np.where(lp.integer, gp.GRB.INTEGER, gp.GRB.CONTINUOUS)
        x = m.addMVar(lp.num_cols, lb=lp.col_lb, ub=lp.col_ub, vtype=vtype)
        A = sp.csr_array(lp.A)
        up = np.isfinite(lp.row_ub)
        lo = np.isfinite(lp.row_lb)
        if up.any():
            m.addMConstr(A[up], x, "<", lp.row_ub[up])
        if lo.any():
            m.addMConstr(A[lo], x, ">", lp.row_lb[lo])
        m.setMObjective(None, lp.c, lp.c_offset, sense=gp.GRB.MAXIMIZE if lp.maximize else gp.GRB.MINIMIZE)
        start = time.perf_counter()
        m.optimize()
        wall = time.perf_counter() - start
        G = gp.GRB.Status
        code = m.Status
        has = m.SolCount > 0
        if code == G.OPTIMAL:
            status = Status.OPTIMAL
        elif code == G.INFEASIBLE:
            status = Status.INFEASIBLE
        elif code in (G.UNBOUNDED, G.INF_OR_UNBD):
            status = Status.UNBOUNDED
        elif code in (G.TIME_LIMIT, G.INTERRUPTED, G.NODE_LIMIT, G.SOLUTION_LIMIT):
            status = Status.FEASIBLE if has else Status.NO_SOLUTION_IN_TIME
        else:
            status = Status.ERROR
        objective = float(m.ObjVal) if has and status.has_solution else None
        bound = float(m.ObjBound) if lp.integer.any() and status.has_solution else objective
        xv = np.asarray(x.X, dtype=float) if objective is not None else None
        nodes = int(m.NodeCount) if lp.integer.any() else None
        return self.result(options, status, objective, bound, wall, nodes, f"gurobi status {code}"), xv


class CuOptBackend(Backend):
    """NVIDIA cuOpt (GPU) through its Python data-model API; needs an NVIDIA GPU (compute capability >= 7.0)."""

    name = "cuopt"
    package = "cuopt-cu12"
    install_hint = "pip install serveplan[cuopt]  (needs an NVIDIA GPU with CUDA 12)"
    description = "NVIDIA cuOpt (optional, GPU)"

    def available(self) -> tuple[bool, str]:
        """CuOpt needs both the package and a visible NVIDIA GPU."""
        if importlib.util.find_spec("cuopt") is None:
            return False, "package 'cuopt' (cuopt-cu12 or cuopt-cu13) is not installed"
        try:
            import cuopt  # noqa: F401
        except Exception as exc:
            return False, f"cuopt failed to load: {exc}"
        return True, ""

    def version(self) -> str:
        """Version of whichever cuOpt wheel is installed."""
        import importlib.metadata

        for dist in ("cuopt-cu12", "cuopt-cu13", "cuopt"):
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
        return ""

    def solve(self, lp: LinearProblem, options: SolveOptions) -> tuple[SolveResult, np.ndarray | None]:
        """Solve on the GPU with cuOpt's MILP solver."""
        from cuopt.linear_programming import data_model, solver, solver_settings

        dm = data_model.DataModel()
        A = sp.csr_array(lp.A)
        dm.set_csr_constraint_matrix(A.data.astype(np.float64), A.indices.astype(np.int32), A.indptr.astype(np.int32))
        big = 1e30
        dm.set_constraint_lower_bounds(np.where(np.isinf(lp.row_lb), -big, lp.row_lb))
        dm.set_constraint_upper_bounds(np.where(np.isinf(lp.row_ub), big, lp.row_ub))
        dm.set_variable_lower_bounds(np.where(np.isinf(lp.col_lb), -big, lp.col_lb))
        dm.set_variable_upper_bounds(np.where(np.isinf(lp.col_ub), big, lp.col_ub))
        dm.set_objective_coefficients(lp.c.astype(np.float64))
        dm.set_objective_offset(float(lp.c_offset))
        dm.set_maximize(bool(lp.maximize))
        dm.set_variable_types(np.array(["I" if f else "C" for f in lp.integer]))
        settings = solver_settings.SolverSettings()
        if options.time_limit_s is not None:
            settings.set_parameter("time_limit", float(options.time_limit_s))
        if options.rel_gap is not None:
            settings.set_parameter("mip_relative_gap", float(options.rel_gap))
        settings.set_parameter("log_to_console", bool(options.verbose))
        start = time.perf_counter()
        sol = solver.Solve(dm, settings)
        wall = time.perf_counter() - start
        name = str(sol.get_termination_reason())
        has = name in ("Optimal", "FeasibleFound")
        status = {
            "Optimal": Status.OPTIMAL,
            "FeasibleFound": Status.FEASIBLE,
            "Infeasible": Status.INFEASIBLE,
            "Unbounded": Status.UNBOUNDED,
            "TimeLimit": Status.NO_SOLUTION_IN_TIME,
        }.get(name, Status.ERROR)
        objective = float(sol.get_primal_objective()) if has else None
        bound = None
        try:
            stats = sol.get_milp_stats()
            b = float(stats.get("solution_bound", math.nan))
            bound = b if math.isfinite(b) else None
        except Exception:
            bound = objective if status == Status.OPTIMAL else None
        x = np.asarray(sol.get_primal_solution(), dtype=float) if has else None
        return self.result(options, status, objective, bound, wall, None, f"cuopt {name}"), x
