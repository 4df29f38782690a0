"""1-D search over the cache-reservation parameter c (Sun, He, Hou 2026, "Parameter tuning").

Small c puts more blocks on each server (short, fast chains, little parallelism); large c the reverse. c ranges
over 1..c_max, c_max = floor((max_j M_j - s_m) / s_c), and is scored by one of

``surrogate``
    c * K(c) from GBP-CR alone (the number of job servers of the simplified problem); O(c_max J log J).
``lower`` / ``upper``
    Theorem 3.7's lower / upper bound on JFFC's mean response time, evaluated on GCA's chains and capacities
    over GBP-CR(c)'s placement ("improved parameter tuning"). The paper finds the lower bound picks the best c.

A c is a candidate when GBP-CR(c) reaches its scaled rate (K(c) finite); for the bound criteria JFFC must also
be stable on GCA's chains (lambda < nu, Lemma 3.6, as the authors' code requires) and, with
``require_target=True`` (default), GCA's total rate must reach lambda / rho_bar so the solution passes verify.
Ties go to the smallest c.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from heuristics.gbp_cr import GbpCrResult, gbp_cr, max_blocks, max_reservation
from heuristics.gca import GcaResult, gca
from serveplan.chain.bounds import theorem37_bounds
from serveplan.chain.instance import ChainInstance

CRITERIA = ("surrogate", "lower", "upper")


@dataclass(frozen=True)
class CandidateScore:
    """How one value of c scored.

    Attributes
    ----------
    c : int
    num_needed : int or None
        K(c) from GBP-CR (None: infeasible).
    surrogate : float
        c * K(c) (inf when infeasible).
    lower_s, upper_s : float
        Theorem 3.7 bounds on GCA's chains (nan when not evaluated, inf when unstable).
    gca_rate : float
        Total service rate of GCA's allocation (nan when not evaluated).
    eligible : bool
        Whether c was a candidate for the criterion.
    """

    c: int
    num_needed: int | None
    surrogate: float
    lower_s: float = math.nan
    upper_s: float = math.nan
    gca_rate: float = math.nan
    eligible: bool = False

    def score(self, criterion: str) -> float:
        """The value minimised by ``criterion``."""
        return {"surrogate": self.surrogate, "lower": self.lower_s, "upper": self.upper_s}[criterion]


@dataclass
class TuningResult:
    """Outcome of the search.

    Attributes
    ----------
    criterion : str
    best_c : int or None
        None when no c is a candidate.
    scores : list of CandidateScore
        One entry per c examined, in increasing c.
    placement_run : GbpCrResult or None
        GBP-CR at best_c.
    allocation : GcaResult or None
        GCA at best_c (bound criteria, or when requested).
    reason : str
        Why no c qualified ("" otherwise).
    """

    criterion: str
    best_c: int | None
    scores: list[CandidateScore] = field(default_factory=list)
    placement_run: GbpCrResult | None = None
    allocation: GcaResult | None = None
    reason: str = ""

    def table(self, arrival_rate: float) -> list[dict[str, float]]:
        """One row per c examined: c, K(c), c K(c) / lambda, both bounds (s), GCA's rate, eligibility.

        The three curves of the paper's parameter-tuning figure (mean response time against c).
        """
        return [
            {
                "c": float(sc.c),
                "K": math.nan if sc.num_needed is None else float(sc.num_needed),
                "surrogate_response_s": sc.surrogate / arrival_rate,
                "lower_response_s": sc.lower_s,
                "upper_response_s": sc.upper_s,
                "gca_rate": sc.gca_rate,
                "eligible": float(sc.eligible),
            }
            for sc in self.scores
        ]


def candidate_values(instance: ChainInstance, c_max: int | None = None) -> range:
    """1..c_max (the paper's range), optionally capped (the authors' MATLAB caps at 50)."""
    top = max_reservation(instance)
    if c_max is not None:
        top = min(top, int(c_max))
    return range(1, max(top, 0) + 1)


def infeasibility_reason(instance: ChainInstance, runs: list[GbpCrResult]) -> str:
    """A message naming why no c works, with the numbers behind it."""
    L = instance.num_blocks
    capacity_c1 = int(max_blocks(instance, 1).sum())
    if capacity_c1 < L:
        return (
            f"the blocks cannot all be placed: even with cache for one job per block (c=1) the servers host at most "
            f"{capacity_c1} blocks in total (sum_j floor(M_j / (s_m + s_c)) with s_m={instance.block_memory_gb:g} GB, "
            f"s_c={instance.cache_memory_gb:g} GB), fewer than L={L}"
        )
    best_rate, best_c = 0.0, None
    for run in runs:
        rate = run.c * sum(1.0 / t for t in run.chain_bound_times_s)
        if rate > best_rate:
            best_rate, best_c = rate, run.c
    where = f" (at c={best_c})" if best_c is not None else ""
    return (
        f"the arrival rate is too high: lambda/rho_bar = {instance.arrival_rate:g}/{instance.target_load:g} = "
        f"{instance.required_rate:.6g} jobs/s, but the best service rate GBP-CR reaches with disjoint chains is "
        f"{best_rate:.6g} jobs/s{where}"
    )


def tune_c(
    instance: ChainInstance,
    criterion: str = "lower",
    *,
    c_max: int | None = None,
    last_server: str = "shift",
    stop_rule: str = "rate",
    require_target: bool = True,
) -> TuningResult:
    """Pick c by ``criterion`` (see module docstring).

    Parameters
    ----------
    instance : ChainInstance
    criterion : {"lower", "upper", "surrogate"}, default "lower"
    c_max : int, optional
        Cap on the search range.
    last_server, stop_rule : str
        GBP-CR flags.
    require_target : bool, default True
        Bound criteria: only accept c whose GCA allocation reaches lambda / rho_bar.

    Returns
    -------
    TuningResult
        With ``best_c=None`` and a ``reason`` when no c qualifies.

    Notes
    -----
    Cost: c_max GBP-CR runs, plus one GCA and one bound evaluation per feasible c for the bound criteria.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    scores: list[CandidateScore] = []
    runs: list[GbpCrResult] = []
    best: tuple[float, int] | None = None
    best_run: GbpCrResult | None = None
    best_alloc: GcaResult | None = None
    for c in candidate_values(instance, c_max):
        run = gbp_cr(instance, c, last_server=last_server, stop_rule=stop_rule)
        runs.append(run)
        if not run.feasible:
            scores.append(CandidateScore(c, None, math.inf))
            if int(max_blocks(instance, c).sum()) < instance.num_blocks:
                break  # m_j(c) only shrinks as c grows: no larger c can place the blocks either
            continue
        if criterion == "surrogate":
            score = CandidateScore(c, run.num_needed, run.surrogate, eligible=True)
            alloc = None
        else:
            alloc = gca(instance, run.placement)
            rates = 1.0 / np.asarray(alloc.service_times_s)
            nu = alloc.total_rate
            eligible = instance.arrival_rate < nu and (not require_target or nu >= instance.required_rate * (1 - 1e-9))
            lo = hi = math.inf
            if instance.arrival_rate < nu:
                b = theorem37_bounds(instance.arrival_rate, rates, np.asarray(alloc.capacities))
                lo, hi = b.lower_s, b.upper_s
            score = CandidateScore(c, run.num_needed, run.surrogate, lo, hi, nu, eligible)
        scores.append(score)
        if score.eligible:
            key = (score.score(criterion), c)
            if best is None or key < best:
                best, best_run, best_alloc = key, run, alloc
    if best is None:
        if any(run.feasible for run in runs):  # GBP-CR reached its scaled rate, but no GCA allocation qualified
            top = max((sc.gca_rate for sc in scores if not math.isnan(sc.gca_rate)), default=0.0)
            reason = (
                f"no c gives a GCA allocation reaching lambda/rho_bar = {instance.required_rate:.6g} jobs/s with "
                f"JFFC stable (best GCA rate {top:.6g} jobs/s); try require_target=false"
            )
            return TuningResult(criterion, None, scores, reason=reason)
        return TuningResult(criterion, None, scores, reason=infeasibility_reason(instance, runs))
    return TuningResult(criterion, best[1], scores, best_run, best_alloc)
