"""One formulation, many solvers.

A formulation is a pyomo model written once. :func:`solve` compiles it into a solver-neutral
:class:`LinearProblem`, hands that to the chosen backend, loads the incumbent back into the pyomo
variables and returns a :class:`SolveResult`, the same type for every backend.

Backends: ``highs`` (highspy, embedded default), ``scip``, ``cpsat`` and ``highs-mathopt`` (OR-Tools
MathOpt), and optional ``gurobi`` and ``cuopt`` where installed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo

from serveplan.errors import BackendUnavailableError, UnknownNameError
from serveplan.solvers.backend import Backend, SolveOptions
from serveplan.solvers.highs_backend import HighsBackend
from serveplan.solvers.mathopt_backend import CpSatBackend, HighsMathOptBackend, ScipBackend
from serveplan.solvers.optional_backends import CuOptBackend, GurobiBackend
from serveplan.solvers.result import SolveResult, Status, relative_gap
from serveplan.solvers.standard_form import LinearProblem, compile_pyomo, load_values

BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (HighsBackend(), ScipBackend(), CpSatBackend(), HighsMathOptBackend(), GurobiBackend(), CuOptBackend())
}
DEFAULT_BACKEND = "highs"


@dataclass(frozen=True)
class BackendInfo:
    """A row of ``serveplan solvers``."""

    name: str
    available: bool
    version: str
    reason: str
    install: str
    description: str


def get_backend(name: str) -> Backend:
    """The backend called ``name``, if it can run here.

    Raises
    ------
    UnknownNameError
        For a name no backend has.
    BackendUnavailableError
        When its package is missing, with the install command.
    """
    if name not in BACKENDS:
        raise UnknownNameError(
            "unknown solver backend", field="backend", value=name, hint=f"choose one of {sorted(BACKENDS)}"
        )
    backend = BACKENDS[name]
    ok, reason = backend.available()
    if not ok:
        raise BackendUnavailableError(f"backend '{name}' is not available: {backend.install_hint} ({reason})")
    return backend


def backend_table() -> list[BackendInfo]:
    """Every backend, available or not, with its version and how to install it."""
    rows = []
    for b in BACKENDS.values():
        ok, reason = b.available()
        rows.append(BackendInfo(b.name, ok, b.version() if ok else "", reason, b.install_hint, b.description))
    return rows


def available_backends() -> list[str]:
    """Names of the backends that can run here."""
    return [row.name for row in backend_table() if row.available]


def solve_lp(lp: LinearProblem, backend: str = DEFAULT_BACKEND, **options) -> tuple[SolveResult, np.ndarray | None]:
    """Solve a compiled :class:`LinearProblem`; returns the result and the incumbent vector."""
    return get_backend(backend).solve(lp, SolveOptions(**options))


def solve(
    model: pyo.ConcreteModel,
    backend: str = DEFAULT_BACKEND,
    *,
    time_limit_s: float | None = None,
    threads: int | None = None,
    rel_gap: float | None = None,
    verbose: bool = False,
    seed: int = 0,
    presolve: bool | None = None,
) -> SolveResult:
    """Solve a linear pyomo model with any backend and load the incumbent into its variables.

    Parameters
    ----------
    model : pyomo ConcreteModel
        A linear (MI)LP with one active objective.
    backend : str, default "highs"
        ``highs``, ``scip``, ``cpsat``, ``highs-mathopt``, ``gurobi`` or ``cuopt``.
    time_limit_s : float, optional
        Wall-clock limit in seconds. On hitting it the incumbent (if any) and the bound come back.
    threads : int, optional
        Thread budget, recorded in the result.
    rel_gap : float, optional
        Relative gap at which to stop.
    verbose : bool, default False
        Show the solver's log.
    seed : int, default 0
        Solver random seed.
    presolve : bool, optional
        ``False`` switches presolve off (default: the solver's own choice).

    Returns
    -------
    SolveResult
        ``info["compile_s"]`` holds the time spent compiling the model.
    """
    be = get_backend(backend)
    t0 = time.perf_counter()
    lp, columns = compile_pyomo(model)
    compile_s = time.perf_counter() - t0
    result, x = be.solve(
        lp,
        SolveOptions(
            time_limit_s=time_limit_s,
            threads=threads,
            rel_gap=rel_gap,
            verbose=verbose,
            seed=seed,
            presolve=presolve,
        ),
    )
    if x is not None:
        load_values(columns, x)
    result.info["compile_s"] = compile_s
    result.info["num_vars"] = lp.num_cols
    result.info["num_constraints"] = lp.num_rows
    result.info["num_integer"] = int(lp.integer.sum())
    return result


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Backend",
    "BackendInfo",
    "LinearProblem",
    "SolveOptions",
    "SolveResult",
    "Status",
    "available_backends",
    "backend_table",
    "compile_pyomo",
    "get_backend",
    "load_values",
    "relative_gap",
    "solve",
    "solve_lp",
]
