"""Linear problems to and from files (MPS, LP) through HiGHS, and the exact MILP a method solves.

:func:`capture_lp` obtains the MILP of any exact method without knowing how its formulation is built:
it runs the method with a stand-in backend (``_capture``) that records the compiled
:class:`~serveplan.solvers.LinearProblem` handed to it and stops the method there. So a benchmark
or an export sees exactly the model the method would solve under the same options, for every
registered ``milp:*``/``ilp:*`` method of either problem, with no hook in the formulation code. A
method that solves several MILPs (e.g. column generation) yields the first one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from serveplan.errors import InputError
from serveplan.registry import Budget, run_method
from serveplan.solvers import BACKENDS, LinearProblem, SolveResult
from serveplan.solvers.backend import Backend, SolveOptions

CAPTURE_BACKEND = "_capture"
INSTANCE_LOADERS = {
    "chain": ("serveplan.chain.instance", "ChainInstance", "load_json"),
    "alpaserve": ("serveplan.alpaserve.instance", "AlpaInstance", "load"),
}


class _Captured(BaseException):
    """Carries the captured problem out of the method (a BaseException, so `except Exception` lets it by)."""

    def __init__(self, lp: LinearProblem) -> None:
        super().__init__("captured")
        self.lp = lp


class _CaptureBackend(Backend):
    name = CAPTURE_BACKEND
    package = ""
    install_hint = ""
    description = "records the problem handed to the solver (export and benchmarks)"

    def available(self) -> tuple[bool, str]:
        return True, ""

    def version(self) -> str:
        return "capture"

    def solve(self, lp: LinearProblem, options: SolveOptions) -> tuple[SolveResult, np.ndarray | None]:
        raise _Captured(lp)


@contextlib.contextmanager
def _capture_backend() -> Iterator[None]:
    BACKENDS[CAPTURE_BACKEND] = _CaptureBackend()
    try:
        yield
    finally:
        BACKENDS.pop(CAPTURE_BACKEND, None)


def capture_lp(problem: str, method: str, instance: Any, options: dict[str, Any] | None = None) -> LinearProblem:
    """The (first) MILP that exact method ``method`` solves on ``instance``.

    Raises
    ------
    InputError
        When the method finishes without handing a problem to a solver (e.g. a heuristic).
    """
    budget = Budget(backend=CAPTURE_BACKEND, options=dict(options or {}))
    with _capture_backend():
        try:
            result = run_method(problem, method, instance, budget)
        except _Captured as got:
            return got.lp
    raise InputError(
        "method solved no MILP",
        field="method",
        value=method,
        hint=f"it returned status {result.status!r} without calling a solver; pick a milp:* method",
    )


def load_instance(problem: str, path: str | Path) -> Any:
    """Read an instance file of ``problem`` (chain: ChainInstance JSON; alpaserve: AlpaInstance file)."""
    import importlib

    if problem not in INSTANCE_LOADERS:
        raise InputError("unknown problem", field="--problem", value=problem, hint=f"one of {list(INSTANCE_LOADERS)}")
    module, cls, loader = INSTANCE_LOADERS[problem]
    if not Path(path).exists():
        raise InputError("instance file not found", source=str(path))
    return getattr(getattr(importlib.import_module(module), cls), loader)(path)


def _to_highs(lp: LinearProblem):
    import highspy

    inf = highspy.kHighsInf
    model = highspy.HighsLp()
    model.num_col_ = lp.num_cols
    model.num_row_ = lp.num_rows
    model.col_cost_ = lp.c.astype(float)
    model.offset_ = float(lp.c_offset)
    model.sense_ = highspy.ObjSense.kMaximize if lp.maximize else highspy.ObjSense.kMinimize
    model.col_lower_ = np.where(np.isinf(lp.col_lb), -inf, lp.col_lb)
    model.col_upper_ = np.where(np.isinf(lp.col_ub), inf, lp.col_ub)
    model.row_lower_ = np.where(np.isinf(lp.row_lb), -inf, lp.row_lb)
    model.row_upper_ = np.where(np.isinf(lp.row_ub), inf, lp.row_ub)
    csc = sp.csc_array(lp.A)
    model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    model.a_matrix_.start_ = csc.indptr.astype(np.int32)
    model.a_matrix_.index_ = csc.indices.astype(np.int32)
    model.a_matrix_.value_ = csc.data.astype(float)
    model.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous for i in lp.integer]
    if lp.col_names and len(set(lp.col_names)) == lp.num_cols:
        model.col_names_ = [_mps_name(n, "x", i) for i, n in enumerate(lp.col_names)]
    if lp.row_names and len(set(lp.row_names)) == lp.num_rows:
        model.row_names_ = [_mps_name(n, "r", i) for i, n in enumerate(lp.row_names)]
    return model


def _mps_name(name: str, prefix: str, i: int) -> str:
    # Keep pyomo's names readable but safe for MPS/LP readers: x[1,2] -> x(1,2) (HiGHS's LP reader
    # rejects square brackets), anything else unusual -> "_".
    text = str(name).replace("[", "(").replace("]", ")")
    clean = "".join(ch if ch.isalnum() or ch in "_(),." else "_" for ch in text)
    return clean or f"{prefix}{i}"


def write_lp(lp: LinearProblem, path: str | Path) -> Path:
    """Write ``lp`` as MPS (``.mps``) or CPLEX LP (``.lp``), by the file's suffix."""
    import highspy

    path = Path(path)
    if path.suffix not in (".mps", ".lp"):
        raise InputError("output must end in .mps or .lp", field="--out", value=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(_to_highs(lp))
    if h.writeModel(str(path)) != highspy.HighsStatus.kOk:
        raise InputError("HiGHS could not write the model", source=str(path))
    return path


def read_lp(path: str | Path) -> LinearProblem:
    """Read an MPS or LP file into a :class:`LinearProblem` (through HiGHS)."""
    import highspy

    path = Path(path)
    if not path.exists():
        raise InputError("model file not found", source=str(path))
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    if h.readModel(str(path)) not in (highspy.HighsStatus.kOk, highspy.HighsStatus.kWarning):
        raise InputError("HiGHS could not read the model", source=str(path))
    m = h.getLp()
    inf = highspy.kHighsInf
    n, rows = m.num_col_, m.num_row_
    a = m.a_matrix_
    start, index, value = np.asarray(a.start_), np.asarray(a.index_), np.asarray(a.value_)
    if a.format_ == highspy.MatrixFormat.kColwise:
        A = sp.csc_array((value, index, start), shape=(rows, n)).tocsr()
    else:
        A = sp.csr_array((value, index, start), shape=(rows, n))

    def unbound(x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.where(x >= inf, np.inf, np.where(x <= -inf, -np.inf, x))

    integrality = list(m.integrality_)
    integer = np.array([v == highspy.HighsVarType.kInteger for v in integrality] if integrality else [False] * n)
    return LinearProblem(
        c=np.asarray(m.col_cost_, dtype=float),
        c_offset=float(m.offset_),
        maximize=m.sense_ == highspy.ObjSense.kMaximize,
        A=sp.csr_array(A),
        row_lb=unbound(m.row_lower_),
        row_ub=unbound(m.row_upper_),
        col_lb=unbound(m.col_lower_),
        col_ub=unbound(m.col_upper_),
        integer=integer.astype(bool),
        col_names=list(m.col_names_) or [f"x{i}" for i in range(n)],
        row_names=list(m.row_names_) or [f"r{i}" for i in range(rows)],
    )
