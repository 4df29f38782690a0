"""Methods by name, so a config or the CLI can say ``method = "gbp_cr+gca"`` or ``"beam:3"``.

Every method of every problem has the same signature::

    fn(instance, budget: Budget, param: str | None) -> MethodResult

Exact formulations and heuristics register themselves from the top-level ``formulations`` and
``heuristics`` packages, which serveplan finds through the ``serveplan.methods`` entry-point group
(declared in pyproject.toml), so the core library never imports them directly.

A name with a colon may carry a parameter: ``beam:3`` resolves to the method registered as ``beam``
with ``param="3"``, unless a method is registered under the full name (``milp:bpca``).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from serveplan.errors import UnknownNameError

PROBLEMS = ("chain", "alpaserve")
_FALLBACK_PROVIDERS = (
    "serveplan.chain.experiments",
    "serveplan.chain.experiments_serving",
    "serveplan.alpaserve.experiments",
    "heuristics.chain_methods",
    "heuristics.chain_baselines_methods",
    "formulations.chain_methods",
    "heuristics.alpaserve_methods",
    "formulations.alpaserve_methods",
)


@dataclass(frozen=True)
class Budget:
    """What a method may spend, and with which solver.

    Parameters
    ----------
    time_limit_s : float, optional
        Wall-clock limit for the whole method (exact methods pass it to the solver).
    threads : int, optional
        Thread budget.
    backend : str, default "highs"
        MILP backend for exact methods (see ``serveplan solvers``).
    rel_gap : float, optional
        Relative MIP gap at which exact methods may stop.
    seed : int, default 0
        Seed for every random draw the method makes.
    options : dict
        Method-specific options (documented by each method).
    """

    time_limit_s: float | None = None
    threads: int | None = None
    backend: str = "highs"
    rel_gap: float | None = None
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class MethodResult:
    """What a method returns: the solution, its verification, and how it was obtained.

    Attributes
    ----------
    method : str
        The registry name used (with its parameter, e.g. ``beam:3``).
    status : str
        ``optimal``/``feasible``/``infeasible``/... for exact methods (the solver's, see
        :class:`serveplan.solvers.Status`); ``feasible`` or ``infeasible`` for heuristics.
    solution : Any
        The problem's solution object (None when infeasible or when no incumbent was found).
    objective : float or None
        The method's objective value for the solution.
    bound : float or None
        Proven bound on the optimum (exact methods), as the solver reported it.
    gap : float or None
        Relative gap between objective and bound.
    verified : bool
        Whether the independent verifier accepted the solution.
    violations : list of str
        What the verifier rejected (empty when verified).
    wall_s : float
        Wall-clock seconds of the whole method.
    solve : dict or None
        The :class:`SolveResult` (as a dict) for exact methods.
    info : dict
        Method-specific extras (e.g. chosen c, number of chains).
    """

    method: str
    status: str
    solution: Any
    objective: float | None
    bound: float | None = None
    gap: float | None = None
    verified: bool = False
    violations: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    solve: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)


MethodFn = Callable[[Any, Budget, str | None], MethodResult]


@dataclass(frozen=True)
class Method:
    """A registered method."""

    problem: str
    name: str
    fn: MethodFn
    kind: str
    summary: str
    param: str | None = None

    def __call__(self, instance: Any, budget: Budget | None = None, param: str | None = None) -> MethodResult:
        """Run the method."""
        return self.fn(instance, budget or Budget(), param)


_METHODS: dict[tuple[str, str], Method] = {}
_loaded = False


def register(
    problem: str, name: str, *, kind: str, summary: str, param: str | None = None
) -> Callable[[MethodFn], MethodFn]:
    """Decorator: register ``fn`` as method ``name`` of ``problem``.

    Parameters
    ----------
    problem : str
        ``chain`` or ``alpaserve``.
    name : str
        Registry name; use ``param`` for names that take an argument (``beam`` with ``param="K"``).
    kind : str
        ``exact``, ``heuristic`` or ``baseline``.
    summary : str
        One line for ``serveplan methods``.
    param : str, optional
        Name of the parameter after the colon, if the method takes one.
    """
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}; choose one of {PROBLEMS}")
    if kind not in ("exact", "heuristic", "baseline"):
        raise ValueError(f"unknown method kind {kind!r}")

    def deco(fn: MethodFn) -> MethodFn:
        key = (problem, name)
        if key in _METHODS and _METHODS[key].fn is not fn:
            raise ValueError(f"method {problem}/{name} registered twice")
        _METHODS[key] = Method(problem, name, fn, kind, summary, param)
        return fn

    return deco


def _load_providers() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    names = [ep.value for ep in importlib.metadata.entry_points(group="serveplan.methods")]
    for module in names or _FALLBACK_PROVIDERS:
        if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
            continue
        importlib.import_module(module)


def list_methods(problem: str | None = None) -> list[Method]:
    """All registered methods (of one problem), sorted by name."""
    _load_providers()
    return sorted(
        (m for m in _METHODS.values() if problem is None or m.problem == problem), key=lambda m: (m.problem, m.name)
    )


def get_method(problem: str, name: str) -> tuple[Method, str | None]:
    """Resolve a method name (possibly ``base:param``) to the method and its parameter.

    Raises
    ------
    UnknownNameError
        With the closest registered names as a suggestion.
    """
    _load_providers()
    if (problem, name) in _METHODS:
        return _METHODS[(problem, name)], None
    # The longest registered base wins, so "milp:simplified:7" is milp:simplified with param "7".
    cut = len(name)
    while (cut := name.rfind(":", 0, cut)) > 0:
        method = _METHODS.get((problem, name[:cut]))
        if method is not None and method.param is not None:
            return method, name[cut + 1 :]
    known = [m.name if m.param is None else f"{m.name}:{m.param}" for m in list_methods(problem)]
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"known methods: {', '.join(known) or 'none yet'}"
    raise UnknownNameError(f"unknown {problem} method", field="method", value=name, hint=hint)


def run_method(problem: str, name: str, instance: Any, budget: Budget | None = None) -> MethodResult:
    """Resolve ``name`` and run it on ``instance``."""
    method, param = get_method(problem, name)
    result = method(instance, budget or Budget(), param)
    result.method = name
    return result


# ---------------------------------------------------------------------------------------------------
# Instance families and evaluators, for the experiment harness.
#
# A family builds an instance from a config's parameters and a seed:  fn(params: dict, seed: int) -> instance
# An evaluator measures a method's result:  fn(instance, result: MethodResult, params: dict, seed: int) -> dict
# of metric name -> number (what the harness stores as one row's metrics).

FamilyFn = Callable[[dict[str, Any], int], Any]
EvaluatorFn = Callable[[Any, MethodResult, dict[str, Any], int], dict[str, Any]]


@dataclass(frozen=True)
class Named:
    """A registered family or evaluator."""

    problem: str
    name: str
    fn: Callable[..., Any]
    summary: str


_FAMILIES: dict[tuple[str, str], Named] = {}
_EVALUATORS: dict[tuple[str, str], Named] = {}


def _named_register(table: dict[tuple[str, str], Named], what: str, problem: str, name: str, summary: str):
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}; choose one of {PROBLEMS}")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        key = (problem, name)
        if key in table and table[key].fn is not fn:
            raise ValueError(f"{what} {problem}/{name} registered twice")
        table[key] = Named(problem, name, fn, summary)
        return fn

    return deco


def register_family(problem: str, name: str, *, summary: str) -> Callable[[FamilyFn], FamilyFn]:
    """Decorator: register an instance family ``fn(params, seed) -> instance``."""
    return _named_register(_FAMILIES, "family", problem, name, summary)


def register_evaluator(problem: str, name: str, *, summary: str) -> Callable[[EvaluatorFn], EvaluatorFn]:
    """Decorator: register an evaluator ``fn(instance, result, params, seed) -> metrics``."""
    return _named_register(_EVALUATORS, "evaluator", problem, name, summary)


def _get_named(table: dict[tuple[str, str], Named], what: str, problem: str, name: str) -> Named:
    _load_providers()
    if (problem, name) in table:
        return table[(problem, name)]
    known = sorted(n for (p, n) in table if p == problem)
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known) or 'none yet'}"
    raise UnknownNameError(f"unknown {problem} {what}", field=what, value=name, hint=hint)


def get_family(problem: str, name: str) -> Named:
    """The instance family ``name`` of ``problem``."""
    return _get_named(_FAMILIES, "family", problem, name)


def get_evaluator(problem: str, name: str) -> Named:
    """The evaluator ``name`` of ``problem``."""
    return _get_named(_EVALUATORS, "evaluator", problem, name)


def list_families(problem: str | None = None) -> list[Named]:
    """All registered instance families."""
    _load_providers()
    return sorted((f for f in _FAMILIES.values() if problem in (None, f.problem)), key=lambda f: (f.problem, f.name))


def list_evaluators(problem: str | None = None) -> list[Named]:
    """All registered evaluators."""
    _load_providers()
    return sorted((f for f in _EVALUATORS.values() if problem in (None, f.problem)), key=lambda f: (f.problem, f.name))
