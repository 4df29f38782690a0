"""What a solver backend is: a name, how to install it, and ``solve(LinearProblem, options)``."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from serveplan.solvers.result import SolveResult, Status, relative_gap
from serveplan.solvers.standard_form import LinearProblem


@dataclass(frozen=True)
class SolveOptions:
    """Budget and tolerances honoured by every backend.

    Parameters
    ----------
    time_limit_s : float or None
        Wall-clock limit in seconds; None for none.
    threads : int or None
        Thread budget; None lets the solver choose.
    rel_gap : float or None
        Relative MIP gap at which the solver may stop and call the incumbent optimal.
    verbose : bool
        Let the solver print its log.
    seed : int
        Random seed passed to solvers that take one.
    presolve : bool or None
        ``False`` switches the solver's presolve off (None: the solver's default). Some wide models stall
        in presolve, where solvers check no time limit.
    """

    time_limit_s: float | None = None
    threads: int | None = None
    rel_gap: float | None = None
    verbose: bool = False
    seed: int = 0
    presolve: bool | None = None


class Backend(ABC):
    """One MILP solver reachable from Python."""

    name: str = ""
    package: str = ""
    install_hint: str = ""
    description: str = ""

    def available(self) -> tuple[bool, str]:
        """Whether the backend can run here, and why not if it cannot."""
        if importlib.util.find_spec(self.package.split("-")[0].replace("-", "_")) is None:
            return False, f"package '{self.package}' is not installed"
        return True, ""

    def version(self) -> str:
        """Version of the package behind the backend ('' if not installed)."""
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return ""

    @abstractmethod
    def solve(self, lp: LinearProblem, options: SolveOptions) -> tuple[SolveResult, np.ndarray | None]:
        """Solve ``lp``; return the result and the incumbent vector (None without one)."""

    def result(
        self,
        options: SolveOptions,
        status: Status,
        objective: float | None,
        bound: float | None,
        wall_s: float,
        nodes: int | None,
        message: str,
        info: dict | None = None,
    ) -> SolveResult:
        """A :class:`SolveResult` from this backend, its gap computed from ``objective`` and ``bound``."""
        return SolveResult(
            status=status,
            objective=objective,
            bound=bound,
            gap=relative_gap(objective, bound),
            wall_s=wall_s,
            nodes=nodes,
            solver=self.name,
            solver_version=self.version(),
            threads=options.threads,
            time_limit_s=options.time_limit_s,
            message=message,
            info=dict(info or {}),
        )
