"""Run an experiment: expand the grid, skip finished cases, run the rest, store one row per case.

:func:`run_case` is what a worker executes: build the instance from the registered family, run the
method under its budget, evaluate the result with the registered evaluator, and return one flat row.
It never raises: a failing case comes back as a row with ``status = "error"`` and the message.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import platform
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import serveplan
from experiments.case_process import CaseProcessError, solve_case_in_process
from experiments.config import (
    RESERVED_COLUMNS,
    ExperimentConfig,
    MethodSpec,
    SuiteConfig,
    experiments_of,
    import_plugins,
)
from experiments.executors import Executor, make_executor
from experiments.grid import Case, expand_cases
from experiments.store import ResultStore
from serveplan.paths import results_dir
from serveplan.registry import Budget, MethodResult, get_evaluator, get_family, run_method


@functools.lru_cache(maxsize=8)
def _build_instance(problem: str, family: str, params_json: str, seed: int) -> Any:
    # Methods of one grid point and seed share an instance; the cache saves rebuilding it per method.
    return get_family(problem, family).fn(json.loads(params_json), seed)


def _cell(value: Any) -> Any:
    """A value a table cell can hold: numbers, strings, booleans, None; anything else as JSON."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return json.dumps(value, sort_keys=True, default=str)


def _info_cell(info: dict[str, Any] | None) -> str | None:
    """A method's ``info`` as JSON, dropped when it is too large to belong in a table cell."""
    if not info:
        return None
    text = json.dumps(info, sort_keys=True, default=str)
    return text if len(text) <= 4000 else json.dumps({"truncated_chars": len(text)})


def _base_row(case: Case) -> dict[str, Any]:
    row: dict[str, Any] = {
        "experiment": case.experiment,
        "config_hash": case.config_hash,
        "case_id": case.case_id,
        "point_id": case.point_id,
        "seed": case.seed,
        "method": case.method.name,
        "label": case.method.label,
        "problem": case.problem,
        "family": case.family,
        "evaluator": case.evaluator,
        "backend": case.method.backend,
        "threads": case.method.threads,
        "time_limit_s": case.method.time_limit_s,
        "rel_gap": case.method.rel_gap,
        "params": _cell(case.instance_params),
        "options": _cell(case.method.options),
        "serveplan_version": serveplan.__version__,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "host": socket.gethostname(),
    }
    for name, value in case.axes.items():
        row[name] = _cell(value)
    return row


def _evaluate(
    problem: str, evaluator: str, params: dict[str, Any], instance: Any, result: MethodResult, seed: int,
    reserved: set[str],
) -> tuple[dict[str, Any], str]:  # fmt: skip
    """The evaluator's metrics as row cells, and a note when it was skipped.

    Evaluators also see results without a solution (they may report e.g. zero attainment); one that
    raises on such a result leaves the metrics empty instead of failing the case.
    """
    try:
        metrics = get_evaluator(problem, evaluator).fn(instance, result, dict(params), seed)
    except Exception as exc:
        if result.solution is not None:
            raise
        return {}, f"no solution, evaluator skipped ({type(exc).__name__}: {exc})"
    row = {}
    for name, value in metrics.items():
        col = f"eval_{name}" if name in RESERVED_COLUMNS or name in reserved else name
        row[col] = _cell(value)
    return row, ""


def solve_and_evaluate(
    problem: str,
    instance: Any,
    spec: MethodSpec,
    seed: int,
    evaluator: str | None = None,
    evaluator_params: dict[str, Any] | None = None,
    reserved: set[str] | frozenset[str] = frozenset(),
) -> tuple[MethodResult, dict[str, Any]]:
    """Run one method on one instance under its budget, then the evaluator; returns the result and row cells.

    Raises whatever the method or the evaluator raises (:func:`run_case` turns it into an error row).
    """
    budget = Budget(
        time_limit_s=spec.time_limit_s,
        threads=spec.threads,
        backend=spec.backend,
        rel_gap=spec.rel_gap,
        seed=seed,
        options=dict(spec.options),
    )
    t0 = time.perf_counter()
    result = run_method(problem, spec.name, instance, budget)
    method_wall = time.perf_counter() - t0
    solve = result.solve or {}
    row = {
        "status": str(result.status),
        "verified": bool(result.verified),
        "violations": len(result.violations),
        "objective": _cell(result.objective),
        "bound": _cell(result.bound),
        "gap": _cell(result.gap),
        "method_wall_s": float(result.wall_s or method_wall),
        "solver": solve.get("solver"),
        "solver_version": solve.get("solver_version"),
        "message": "; ".join(result.violations[:3]) if result.violations else str(solve.get("message", "")),
        "info": _info_cell(result.info),
    }
    if evaluator is not None:
        metrics, note = _evaluate(problem, evaluator, evaluator_params or {}, instance, result, seed, set(reserved))
        row |= metrics
        if note:
            row["message"] = "; ".join(m for m in (row["message"], note) if m)
    return result, row


def run_case(case: Case) -> dict[str, Any]:
    """Build, solve, verify, evaluate one case; return its row (never raises).

    Returns
    -------
    dict
        The fixed columns (see :data:`experiments.config.RESERVED_COLUMNS`), one column per grid axis,
        and one per metric the evaluator returned (a metric named like a fixed column or an axis is
        stored as ``eval_<name>``). The evaluator runs on every result that is not an error.
    """
    start = time.perf_counter()
    row = _base_row(case)
    try:
        if case.timeout_s is not None and not _alarm_available():
            row |= solve_case_in_process(case, case.timeout_s)
        else:
            with _hard_limit(case.timeout_s):
                row |= _solve_case(case)
    except CaseProcessError as exc:
        row |= {"status": "error", "verified": False, "message": str(exc)}
    except (Exception, CaseTimeoutError) as exc:
        row |= {"status": "error", "verified": False, "message": error_message(exc)}
    row["wall_s"] = time.perf_counter() - start
    row["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return row


class CaseTimeoutError(BaseException):
    """A case ran past ``experiment.case_timeout_s``.

    A BaseException, so that a method's or evaluator's broad ``except Exception`` cannot swallow it.
    """


def _alarm_available() -> bool:
    """Whether SIGALRM can interrupt this thread (a process's main thread, on POSIX)."""
    return threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGALRM")


@contextlib.contextmanager
def _hard_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CaseTimeoutError` in this thread after ``seconds`` (SIGALRM).

    Workers of the local executor and the serial executor run cases in a main thread. Elsewhere (Dask
    worker threads) :func:`run_case` runs a case with a timeout in a child process instead
    (:mod:`experiments.case_process`). Native code (a solver's C++ loop) is interrupted when it returns
    to Python.
    """
    if seconds is None or not _alarm_available():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise CaseTimeoutError(f"case ran past case_timeout_s = {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _solve_case(case: Case) -> dict[str, Any]:
    import_plugins(case.plugins)
    instance = _build_instance(case.problem, case.family, json.dumps(case.instance_params, sort_keys=True), case.seed)
    _, cells = solve_and_evaluate(
        case.problem, instance, case.method, case.seed, case.evaluator, case.evaluator_params, set(case.axes)
    )
    return cells


def error_message(exc: BaseException) -> str:
    """``Type: message at file:line`` of the innermost frame, for a table cell."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def error_row(case: Case, exc: BaseException) -> dict[str, Any]:
    """The row of a case whose worker failed outside :func:`run_case` (e.g. the process died)."""
    return _base_row(case) | {
        "status": "error",
        "verified": False,
        "message": f"{type(exc).__name__}: {exc}",
        "wall_s": math.nan,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclass
class RunSummary:
    """What one experiment's run did."""

    experiment: str
    root: Path
    total: int
    skipped: int
    ran: int = 0
    errors: int = 0
    error_messages: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="case", disable=not enabled, dynamic_ncols=True, leave=True)


def run_experiment(
    config: ExperimentConfig,
    executor: Executor,
    *,
    force: bool = False,
    limit_cases: int | None = None,
    progress: bool = False,
    root: Path | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> RunSummary:
    """Run every unfinished case of ``config``; store rows under ``root`` (default results/<name>/).

    Parameters
    ----------
    config : ExperimentConfig
    executor : Executor
        Where the cases run (see :mod:`experiments.executors`).
    force : bool, default False
        Rerun finished cases too.
    limit_cases : int, optional
        Only the first N cases of the grid (in expansion order).
    progress : bool, default False
        Show a progress bar with ETA.
    root : Path, optional
        Results folder; default ``serveplan.paths.results_dir() / config.name``.
    on_row : callable, optional
        Called with each row after it is stored.

    Notes
    -----
    A rerun skips every case whose row is stored with a status other than ``error``; rows are written
    one file per case (atomically), so a run killed at any moment loses no finished case and
    duplicates none. The consolidated table is rebuilt at the end (also after an interrupt).
    """
    t0 = time.perf_counter()
    store = ResultStore(root or results_dir() / config.name)
    store.write_config(config)
    cases = expand_cases(config)
    if limit_cases is not None:
        cases = cases[:limit_cases]
    done = set() if force else store.finished_ids()
    todo = [c for c in cases if c.case_id not in done]
    summary = RunSummary(config.name, store.root, total=len(cases), skipped=len(cases) - len(todo))
    bar = _progress(len(todo), config.name, progress and bool(todo))
    try:
        for case, result in executor.map_unordered(run_case, todo):
            row = error_row(case, result) if isinstance(result, BaseException) else result
            store.write_case(row)
            summary.ran += 1
            if row.get("status") == "error":
                summary.errors += 1
                summary.error_messages.append(f"{row['label']} seed {row['seed']}: {row.get('message', '')}")
            if on_row is not None:
                on_row(row)
            bar.update(1)
    finally:
        bar.close()
        store.consolidate([c.case_id for c in cases])
        summary.wall_s = time.perf_counter() - t0
        store.log_run(
            {
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "wall_s": round(summary.wall_s, 3),
                "executor": type(executor).__name__,
                "workers": getattr(executor, "workers", None),
                "host": socket.gethostname(),
                "serveplan_version": serveplan.__version__,
                "config_hash": config.config_hash(),
                "cases": summary.total,
                "skipped": summary.skipped,
                "ran": summary.ran,
                "errors": summary.errors,
                "completed": summary.ran == len(todo),
            }
        )
    return summary


def run_config(
    config: ExperimentConfig | SuiteConfig,
    *,
    executor: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    limit_cases: int | None = None,
    progress: bool = False,
    results_root: Path | None = None,
) -> list[RunSummary]:
    """Run an experiment or every experiment of a suite, sharing one executor."""
    base = results_root or results_dir()
    ex = make_executor(executor, workers=workers, scheduler=scheduler)
    try:
        summaries = [
            run_experiment(exp, ex, force=force, limit_cases=limit_cases, progress=progress, root=base / exp.name)
            for exp in experiments_of(config)
        ]
    except BaseException:
        ex.close(wait=False)  # interrupted: finished rows are stored; do not wait for running cases
        raise
    ex.close()
    return summaries


def missing_cases(config: ExperimentConfig, results_root: Path | None = None) -> int:
    """How many cases of ``config`` have no finished row yet."""
    store = ResultStore((results_root or results_dir()) / config.name)
    done = store.finished_ids()
    return sum(c.case_id not in done for c in expand_cases(config))


def load_rows(config: ExperimentConfig | SuiteConfig, results_root: Path | None = None):
    """The stored rows of the config's current cases (all its experiments), as one DataFrame."""
    import pandas as pd

    frames = []
    for exp in experiments_of(config):
        store = ResultStore((results_root or results_dir()) / exp.name)
        frames.append(pd.DataFrame(store.rows([c.case_id for c in expand_cases(exp)])))
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True, sort=False) if frames else pd.DataFrame()
