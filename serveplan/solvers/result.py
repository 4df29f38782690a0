"""The one result type every solver backend returns."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Outcome of a solve, the same vocabulary for every backend."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    NO_SOLUTION_IN_TIME = "no_solution_in_time"
    ERROR = "error"

    @property
    def has_solution(self) -> bool:
        """Whether an incumbent (a primal solution) comes with this status."""
        return self in (Status.OPTIMAL, Status.FEASIBLE)


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """Relative optimality gap ``|objective - bound| / max(|objective|, 1e-9)``.

    The same formula for every backend, computed from the incumbent and the dual bound exactly as the
    solver reported them; ``None`` when either is missing or infinite.
    """
    if objective is None or bound is None:
        return None
    if not (math.isfinite(objective) and math.isfinite(bound)):
        return None
    return abs(objective - bound) / max(abs(objective), 1e-9)


@dataclass
class SolveResult:
    """What a solve returned, as the solver gave it.

    Attributes
    ----------
    status : Status
        One of optimal / feasible / infeasible / unbounded / no_solution_in_time / error.
    objective : float or None
        Objective value of the incumbent, in the model's own sense (None without an incumbent).
    bound : float or None
        Best proven bound on the optimum (dual bound), as the solver reported it.
    gap : float or None
        ``relative_gap(objective, bound)``.
    wall_s : float
        Wall-clock seconds of the solve call (model translation excluded).
    nodes : int or None
        Branch-and-bound nodes, where the solver reports them.
    solver : str
        Backend name (``highs``, ``scip``, ``cpsat``, ``highs-mathopt``, ``gurobi``, ``cuopt``).
    solver_version : str
        Version of the package that solved.
    threads : int or None
        Thread budget given to the solver.
    time_limit_s : float or None
        Time limit given to the solver.
    message : str
        Free text: the solver's own status string, or the error.
    info : dict
        Backend-specific extras (e.g. CP-SAT's coefficient scaling).
    """

    status: Status
    objective: float | None
    bound: float | None
    gap: float | None
    wall_s: float
    nodes: int | None
    solver: str
    solver_version: str
    threads: int | None
    time_limit_s: float | None
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (status as its string) for JSON and result rows."""
        d = asdict(self)
        d["status"] = str(self.status)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SolveResult:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["status"] = Status(d["status"])
        return cls(**d)
