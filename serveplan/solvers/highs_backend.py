"""HiGHS through its own Python package (highspy): the embedded default backend."""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse as sp

from serveplan.solvers.backend import Backend, SolveOptions
from serveplan.solvers.result import SolveResult, Status
from serveplan.solvers.standard_form import LinearProblem


class HighsBackend(Backend):
    """HiGHS via highspy (in-process, no external binary)."""

    name = "highs"
    package = "highspy"
    install_hint = "pip install highspy==1.12.0"
    description = "HiGHS (embedded, default)"

    def solve(self, lp: LinearProblem, options: SolveOptions) -> tuple[SolveResult, np.ndarray | None]:
        """Solve with highspy; threads also switch HiGHS's parallel MIP search on."""
        return self._solve(lp, options, presolve=options.presolve is not False)

    def _solve(self, lp: LinearProblem, options: SolveOptions, presolve: bool) -> tuple[SolveResult, np.ndarray | None]:
        import highspy

        h = highspy.Highs()
        h.setOptionValue("output_flag", bool(options.verbose))
        if not presolve:
            h.setOptionValue("presolve", "off")
        if options.time_limit_s is not None:
            h.setOptionValue("time_limit", float(options.time_limit_s))
        if options.threads is not None:
            # HiGHS keeps one global scheduler per process; reset it so a new thread count takes effect.
            highspy.Highs.resetGlobalScheduler(True)
            h.setOptionValue("threads", int(options.threads))
            h.setOptionValue("parallel", "on" if options.threads > 1 else "off")
        if options.rel_gap is not None:
            h.setOptionValue("mip_rel_gap", float(options.rel_gap))
        h.setOptionValue("random_seed", int(options.seed))

        model = highspy.HighsLp()
        model.num_col_ = lp.num_cols
        model.num_row_ = lp.num_rows
        model.col_cost_ = lp.c.astype(float)
        model.offset_ = lp.c_offset
        model.sense_ = highspy.ObjSense.kMaximize if lp.maximize else highspy.ObjSense.kMinimize
        model.col_lower_ = np.where(np.isinf(lp.col_lb), -highspy.kHighsInf, lp.col_lb)
        model.col_upper_ = np.where(np.isinf(lp.col_ub), highspy.kHighsInf, lp.col_ub)
        model.row_lower_ = np.where(np.isinf(lp.row_lb), -highspy.kHighsInf, lp.row_lb)
        model.row_upper_ = np.where(np.isinf(lp.row_ub), highspy.kHighsInf, lp.row_ub)
        csc = sp.csc_array(lp.A)
        model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        model.a_matrix_.start_ = csc.indptr.astype(np.int32)
        model.a_matrix_.index_ = csc.indices.astype(np.int32)
        model.a_matrix_.value_ = csc.data.astype(float)
        is_mip = bool(lp.integer.any())
        if is_mip:
            model.integrality_ = [
                highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous for flag in lp.integer
            ]
        h.passModel(model)
        start = time.perf_counter()
        h.run()
        wall = time.perf_counter() - start

        ms = h.getModelStatus()
        info = h.getInfo()
        has_primal = info.primal_solution_status == 2  # kSolutionStatusFeasible
        MS = highspy.HighsModelStatus
        if ms == MS.kOptimal:
            status = Status.OPTIMAL
        elif ms == MS.kInfeasible:
            status = Status.INFEASIBLE
        elif ms in (MS.kUnbounded, MS.kUnboundedOrInfeasible):
            status = Status.UNBOUNDED
            if ms == MS.kUnboundedOrInfeasible and presolve:
                status = self._disambiguate(lp, options)
        elif ms in (
            MS.kTimeLimit,
            MS.kIterationLimit,
            MS.kInterrupt,
            MS.kSolutionLimit,
            MS.kObjectiveBound,
            MS.kObjectiveTarget,
        ):
            status = Status.FEASIBLE if has_primal else Status.NO_SOLUTION_IN_TIME
        else:
            status = Status.ERROR
        x = np.asarray(h.getSolution().col_value, dtype=float) if status.has_solution else None
        objective = float(info.objective_function_value) if status.has_solution else None
        if is_mip:
            bound = float(info.mip_dual_bound)
            bound = bound if math.isfinite(bound) else None
            nodes = int(info.mip_node_count)
        else:
            bound = objective if status == Status.OPTIMAL else None
            nodes = None
        return self.result(options, status, objective, bound, wall, nodes, h.modelStatusToString(ms)), x

    def _disambiguate(self, lp: LinearProblem, options: SolveOptions) -> Status:
        """Presolve may only say 'unbounded or infeasible': solve the relaxation without presolve.

        An infeasible relaxation proves the MILP infeasible; otherwise the model is reported unbounded
        (the relaxation's ray; integrality cannot cut a rational ray off unless the MILP is infeasible).
        Every backend that gets an 'infeasible or unbounded' answer resolves it here.
        """
        relaxed = LinearProblem(**{**lp.__dict__, "integer": np.zeros_like(lp.integer)})
        res, _ = self._solve(relaxed, SolveOptions(time_limit_s=options.time_limit_s), presolve=False)
        return Status.INFEASIBLE if res.status == Status.INFEASIBLE else Status.UNBOUNDED
