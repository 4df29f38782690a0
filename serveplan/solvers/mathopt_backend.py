"""OR-Tools MathOpt backends: SCIP, CP-SAT and HiGHS.

MathOpt (not pywraplp or model_builder) is the one OR-Tools interface that keeps the incumbent and
the dual bound when a time limit hits.
"""

from __future__ import annotations

import datetime
import math
import time

import numpy as np
import scipy.sparse as sp

from serveplan.solvers.backend import Backend, SolveOptions
from serveplan.solvers.highs_backend import HighsBackend
from serveplan.solvers.result import SolveResult, Status
from serveplan.solvers.standard_form import LinearProblem


def _unwrap_mathopt_error(exc: BaseException) -> str:
    """OR-Tools 9.15 wraps solver errors in an AttributeError; the real message is in __context__."""
    ctx = exc.__context__
    return f"{exc}" if ctx is None else f"{ctx}"


class MathOptBackend(Backend):
    """A solver reached through ``ortools.math_opt``."""

    package = "ortools"
    install_hint = "pip install ortools==9.15.6755"
    solver_type_name: str = ""

    def _params(self, options: SolveOptions, lp: LinearProblem):
        from ortools.math_opt.python import mathopt

        params = mathopt.SolveParameters(enable_output=bool(options.verbose))
        if options.time_limit_s is not None:
            params.time_limit = datetime.timedelta(seconds=float(options.time_limit_s))
        if options.rel_gap is not None:
            params.relative_gap_tolerance = float(options.rel_gap)
        if options.threads is not None:
            params.threads = int(options.threads)
        params.random_seed = int(options.seed)
        if options.presolve is False:
            params.presolve = mathopt.Emphasis.OFF
        return params

    def solve(self, lp: LinearProblem, options: SolveOptions) -> tuple[SolveResult, np.ndarray | None]:
        """Translate ``lp`` into a MathOpt model and solve it."""
        from ortools.math_opt.python import mathopt

        model = mathopt.Model(name="serveplan")
        xs = [
            model.add_variable(
                lb=float(lp.col_lb[i]), ub=float(lp.col_ub[i]), is_integer=bool(lp.integer[i]), name=f"x{i}"
            )
            for i in range(lp.num_cols)
        ]
        csr = sp.csr_array(lp.A)
        for r in range(lp.num_rows):
            con = model.add_linear_constraint(lb=float(lp.row_lb[r]), ub=float(lp.row_ub[r]))
            for k in range(csr.indptr[r], csr.indptr[r + 1]):
                con.set_coefficient(xs[csr.indices[k]], float(csr.data[k]))
        model.objective.is_maximize = lp.maximize
        model.objective.offset = lp.c_offset
        for i in np.flatnonzero(lp.c):
            model.objective.set_linear_coefficient(xs[i], float(lp.c[i]))

        solver_type = getattr(mathopt.SolverType, self.solver_type_name)
        start = time.perf_counter()
        try:
            result = mathopt.solve(model, solver_type, params=self._params(options, lp))
        except Exception as exc:
            wall = time.perf_counter() - start
            return self._error(options, wall, _unwrap_mathopt_error(exc)), None
        wall = time.perf_counter() - start

        TR = mathopt.TerminationReason
        reason = result.termination.reason
        has_primal = result.has_primal_feasible_solution()
        if reason == TR.OPTIMAL:
            status = Status.OPTIMAL
        elif reason == TR.INFEASIBLE:
            status = Status.INFEASIBLE
        elif reason == TR.UNBOUNDED:
            status = Status.UNBOUNDED
        elif reason == TR.INFEASIBLE_OR_UNBOUNDED:
            status = HighsBackend()._disambiguate(lp, options)
        elif reason in (TR.FEASIBLE, TR.NO_SOLUTION_FOUND):
            status = Status.FEASIBLE if has_primal else Status.NO_SOLUTION_IN_TIME
        else:
            status = Status.ERROR
        x = None
        objective = None
        if status.has_solution and has_primal:
            values = result.variable_values()
            x = np.array([values[v] for v in xs], dtype=float)
            objective = float(result.termination.objective_bounds.primal_bound)
        elif status.has_solution:
            status = Status.NO_SOLUTION_IN_TIME
        bound = float(result.termination.objective_bounds.dual_bound)
        bound = bound if math.isfinite(bound) else None
        if status in (Status.INFEASIBLE, Status.UNBOUNDED):
            bound = None
        message = f"{reason.name}: {result.termination.detail}".strip(": ")
        nodes = int(result.solve_stats.node_count)
        return self.result(options, status, objective, bound, wall, nodes, message, self._info()), x

    def _info(self) -> dict:
        return {}

    def _error(self, options: SolveOptions, wall: float, message: str) -> SolveResult:
        return self.result(options, Status.ERROR, None, None, wall, None, message)


class ScipBackend(MathOptBackend):
    """SCIP, bundled in the OR-Tools wheel, through MathOpt."""

    name = "scip"
    solver_type_name = "GSCIP"
    description = "SCIP via OR-Tools MathOpt"


class CpSatBackend(MathOptBackend):
    """CP-SAT through MathOpt.

    CP-SAT works on integers. OR-Tools scales fractional coefficients to integers (exact up to CP-SAT's
    ``mip_wanted_precision``) and replaces every continuous variable by an integer multiple of
    ``1 / mip_var_scaling``. With continuous variables CP-SAT therefore solves a *restriction* of the model
    (values on a grid): its incumbent is feasible for the model, but its optimum and bound are those of the
    grid model. Such results are reported as ``feasible`` with no bound, and ``info`` says why. The grid is
    made as fine as CP-SAT's domain cap (``mip_max_bound``, 1e7) allows, at most ``1e-4``.
    """

    name = "cpsat"
    solver_type_name = "CP_SAT"
    description = "CP-SAT via OR-Tools MathOpt (coefficients scaled to integers)"
    max_var_scaling = 1e4
    domain_cap = 1e7

    def _var_scaling(self, lp: LinearProblem) -> float:
        cont = ~lp.integer
        if not cont.any():
            return 1.0
        bounds = np.concatenate([np.abs(lp.col_lb[cont]), np.abs(lp.col_ub[cont])])
        finite = bounds[np.isfinite(bounds)]
        largest = float(finite.max()) if finite.size else self.domain_cap
        return float(max(1.0, min(self.max_var_scaling, self.domain_cap / max(largest, 1.0))))

    def solve(self, lp: LinearProblem, options: SolveOptions) -> tuple[SolveResult, np.ndarray | None]:
        """Solve with CP-SAT; a model with continuous variables gets an honest 'feasible' (see class doc)."""
        result, x = super().solve(lp, options)
        grid = 1.0 / self._var_scaling(lp)
        n_cont = int((~lp.integer).sum())
        if n_cont and result.status in (Status.OPTIMAL, Status.FEASIBLE):
            result.info["continuous_variables"] = n_cont
            result.info["continuous_grid"] = grid
            result.info["cpsat_claimed_status"] = str(result.status)
            result.info["cpsat_claimed_bound"] = result.bound
            result.message += (
                f"; {n_cont} continuous variables restricted to a grid of {grid:g}:"
                " optimum and bound are the grid model's, not reported as the model's"
            )
            result.status = Status.FEASIBLE
            result.bound = None
            result.gap = None
        return result, x

    def _params(self, options: SolveOptions, lp: LinearProblem):
        params = super()._params(options, lp)
        params.cp_sat.mip_var_scaling = self._var_scaling(lp)
        return params

    def _info(self) -> dict:
        return {"coefficients": "scaled to integers by CP-SAT's MIP loader"}


class HighsMathOptBackend(MathOptBackend):
    """HiGHS bundled in OR-Tools, through MathOpt (threads go through HiGHS's own options)."""

    name = "highs-mathopt"
    solver_type_name = "HIGHS"
    description = "HiGHS via OR-Tools MathOpt"

    def _params(self, options: SolveOptions, lp: LinearProblem):
        params = super()._params(SolveOptions(**{**options.__dict__, "threads": None}), lp)
        if options.threads is not None:
            # MathOpt refuses the generic threads parameter for HiGHS.
            params.highs.int_options["threads"] = int(options.threads)
            params.highs.string_options["parallel"] = "on" if options.threads > 1 else "off"
        return params
