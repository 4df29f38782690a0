"""Solve in a child process under a hard wall-clock kill (for benchmarks).

The solver gets ``time_limit_s`` as its own limit; the child is killed at ``hard_limit_s`` (default:
the limit plus a grace period) if it has not returned. A killed solve comes back as
``no_solution_in_time`` with the wall time it used.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from typing import Any

import numpy as np
import pyomo.environ as pyo

from serveplan.solvers import get_backend
from serveplan.solvers.backend import SolveOptions
from serveplan.solvers.result import SolveResult, Status
from serveplan.solvers.standard_form import LinearProblem, compile_pyomo, load_values


def _child(conn: Any, lp: LinearProblem, backend: str, options: SolveOptions) -> None:
    try:
        result, x = get_backend(backend).solve(lp, options)
        conn.send(("ok", result.to_dict(), x))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}", None))
    finally:
        conn.close()


def solve_lp_in_subprocess(
    lp: LinearProblem,
    backend: str = "highs",
    *,
    time_limit_s: float | None = None,
    hard_limit_s: float | None = None,
    threads: int | None = None,
    rel_gap: float | None = None,
    seed: int = 0,
) -> tuple[SolveResult, np.ndarray | None]:
    """Solve ``lp`` in a fresh process; kill it at ``hard_limit_s`` seconds.

    Parameters
    ----------
    hard_limit_s : float, optional
        Kill deadline; default ``1.5 * time_limit_s + 5`` (None without a time limit: wait forever).
    """
    get_backend(backend)  # fail fast, in the parent, on an unavailable backend
    if hard_limit_s is None and time_limit_s is not None:
        hard_limit_s = 1.5 * time_limit_s + 5.0
    options = SolveOptions(time_limit_s=time_limit_s, threads=threads, rel_gap=rel_gap, seed=seed)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, lp, backend, options), daemon=True)
    start = time.perf_counter()
    proc.start()
    child.close()
    got = parent.poll(hard_limit_s)
    wall = time.perf_counter() - start
    be = get_backend(backend)
    if not got:
        proc.kill()
        proc.join()
        message = f"killed after the hard limit of {hard_limit_s:.1f} s"
        return be.result(options, Status.NO_SOLUTION_IN_TIME, None, None, wall, None, message, {"killed": True}), None
    kind, payload, x = parent.recv()
    proc.join()
    if kind == "error":
        return be.result(options, Status.ERROR, None, None, wall, None, payload), None
    result = SolveResult.from_dict(payload)
    result.info["process_wall_s"] = wall
    return result, x


def solve_in_subprocess(model: pyo.ConcreteModel, backend: str = "highs", **kwargs: Any) -> SolveResult:
    """Like :func:`serveplan.solvers.solve`, but in a child process with a hard kill."""
    lp, columns = compile_pyomo(model)
    result, x = solve_lp_in_subprocess(lp, backend, **kwargs)
    if x is not None:
        load_values(columns, x)
    return result
