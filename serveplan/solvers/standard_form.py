"""Translate a pyomo model into one solver-neutral linear problem.

Every formulation is written once in pyomo; each backend consumes the :class:`LinearProblem` built
here, so no formulation is ever written twice. Rows keep pyomo's order, columns too, and the
objective keeps its sense.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo
import scipy.sparse as sp
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from serveplan.errors import InputError


@dataclass
class LinearProblem:
    """``min/max c x + c_offset  s.t.  row_lb <= A x <= row_ub,  col_lb <= x <= col_ub``, some x integer.

    Attributes
    ----------
    c : ndarray, shape (n,)
    c_offset : float
    maximize : bool
    A : scipy.sparse.csr_array, shape (m, n)
    row_lb, row_ub : ndarray, shape (m,)
        ``-inf`` / ``inf`` where a side is absent.
    col_lb, col_ub : ndarray, shape (n,)
    integer : ndarray of bool, shape (n,)
    col_names, row_names : list of str
    """

    c: np.ndarray
    c_offset: float
    maximize: bool
    A: sp.csr_array
    row_lb: np.ndarray
    row_ub: np.ndarray
    col_lb: np.ndarray
    col_ub: np.ndarray
    integer: np.ndarray
    col_names: list[str] = field(default_factory=list)
    row_names: list[str] = field(default_factory=list)

    @property
    def num_cols(self) -> int:
        """Number of variables."""
        return int(self.c.shape[0])

    @property
    def num_rows(self) -> int:
        """Number of constraint rows."""
        return int(self.A.shape[0])

    def objective_value(self, x: np.ndarray) -> float:
        """Objective at ``x``."""
        return float(self.c @ x + self.c_offset)

    def max_violation(self, x: np.ndarray) -> float:
        """Largest violation of a row, column bound or integrality at ``x`` (0 when feasible)."""
        ax = self.A @ x
        viol = [
            np.max(np.maximum(self.row_lb - ax, 0.0), initial=0.0),
            np.max(np.maximum(ax - self.row_ub, 0.0), initial=0.0),
            np.max(np.maximum(self.col_lb - x, 0.0), initial=0.0),
            np.max(np.maximum(x - self.col_ub, 0.0), initial=0.0),
        ]
        if self.integer.any():
            xi = x[self.integer]
            viol.append(float(np.max(np.abs(xi - np.round(xi)), initial=0.0)))
        return float(max(viol))


def compile_pyomo(model: pyo.ConcreteModel) -> tuple[LinearProblem, list]:
    """Compile a linear pyomo model into a :class:`LinearProblem`.

    Returns the problem and the list of pyomo variables in column order (to load a solution back).

    Raises
    ------
    InputError
        If the model has no (or several) active objectives, or a nonlinear expression.
    """
    objectives = list(model.component_data_objects(pyo.Objective, active=True))
    if len(objectives) != 1:
        raise InputError(f"a model must have exactly one active objective, found {len(objectives)}")
    try:
        info = LinearStandardFormCompiler().write(model, mixed_form=True, set_sense=None)
    except ValueError as exc:  # pyomo raises ValueError on nonlinear terms
        raise InputError(f"model is not linear: {exc}") from exc
    columns = list(info.columns)
    n = len(columns)
    c = np.asarray(info.c.toarray(), dtype=float).reshape(-1)[:n] if n else np.zeros(0)
    if c.shape[0] < n:
        c = np.concatenate([c, np.zeros(n - c.shape[0])])
    c_offset = float(np.asarray(info.c_offset, dtype=float).reshape(-1)[0]) if len(info.c_offset) else 0.0
    A = sp.csr_array(info.A) if n else sp.csr_array((len(info.rows), 0))
    rhs = np.asarray(info.rhs, dtype=float)
    m = len(info.rows)
    row_lb = np.full(m, -np.inf)
    row_ub = np.full(m, np.inf)
    row_names = []
    for r, entry in enumerate(info.rows):
        kind = entry.bound_type
        if kind >= 0:
            row_ub[r] = rhs[r]
        if kind <= 0:
            row_lb[r] = rhs[r]
        row_names.append(entry.constraint.name)
    col_lb = np.array([-np.inf if v.lb is None else float(v.lb) for v in columns], dtype=float)
    col_ub = np.array([np.inf if v.ub is None else float(v.ub) for v in columns], dtype=float)
    integer = np.array([v.is_integer() for v in columns], dtype=bool)
    lp = LinearProblem(
        c=c,
        c_offset=c_offset,
        maximize=objectives[0].sense == pyo.maximize,
        A=A,
        row_lb=row_lb,
        row_ub=row_ub,
        col_lb=col_lb,
        col_ub=col_ub,
        integer=integer,
        col_names=[v.name for v in columns],
        row_names=row_names,
    )
    return lp, columns


def load_values(columns: list, x: np.ndarray) -> None:
    """Write a solution vector back into the pyomo variables (integers rounded)."""
    for var, value in zip(columns, x, strict=True):
        v = float(value)
        if var.is_integer():
            v = float(round(v))
        var.set_value(v, skip_validation=True)
