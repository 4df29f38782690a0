"""AlpaServe Algorithm 1: simulator-guided replica selection on fixed device groups (digest 2.1).

Given device groups with fixed parallel configs, choose which models each group hosts. Three selectors share
one scoring rule (:func:`score`) and one memory rule (a group's per-GPU weights, the sum over its models of the
largest stage's weight bytes, stay within the cluster's per-GPU budget: ``<=``, exactly as
:func:`serveplan.alpaserve.verify` checks it):

* :func:`greedy_selection`: Algorithm 1 with beam width 1, written as a plain loop. Each step simulates every
  feasible (group, model) addition and keeps the best; it stops when nothing fits and returns the best
  placement seen. Cost: O(R |G| |M|) simulations for R replicas.
* :func:`beam_selection`: Algorithm 1 with beam width k (paper version; the reference code uses it only for
  ``sr-search``). Candidates are de-duplicated by canonical form. Cost: O(R k |G| |M|) simulations.
* :func:`fast_greedy`: the selector the reference code actually runs for AlpaServe (PR #59). One simulation
  per step: add the most-unserved model to the least-loaded group that can take it. Cost: R + 1 simulations.

All three are deterministic: ties go to the lower group index, then the lower model index. With
``threads > 1`` (:class:`SelectionContext`) the greedy and beam selectors simulate each step's candidates in a
thread pool (the simulator's kernel releases the GIL) and reduce them in the serial order, so the answer does
not depend on the thread count.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from serveplan.alpaserve.cluster import Group, ParallelConfig, Placement
from serveplan.alpaserve.simulator import SimResult, Simulator
from serveplan.errors import InputError

# Tie-breakers of the reference search score (``goodput - mean_latency / 1e4 + num_replicas / 1e6``).
LATENCY_TIEBREAK = 1e-4
REPLICA_TIEBREAK = 1e-6


def weight_table(instance, configs: Sequence[ParallelConfig]) -> np.ndarray:
    """Per-GPU weight bytes of each (model, config): the largest stage's weights on one of its GPUs.

    Returns an array of shape ``(num_models, len(configs))``; ``inf`` where the latency model cannot split
    the model that way (e.g. more stages than layers).
    """
    out = np.full((len(instance.models), len(configs)), np.inf)
    for j, cfg in enumerate(configs):
        for m, spec in enumerate(instance.models):
            if cfg.pp <= spec.num_layers:
                out[m, j] = instance.latency.max_stage_weight_bytes(spec, cfg)
    return out


def score(result: SimResult, placement: Placement) -> float:
    """The reference search score: attainment, then lower mean latency, then more replicas.

    The mean latency is over accepted requests (0 when none is accepted).
    """
    lat = float(result.latency_mean_s)
    lat = 0.0 if not np.isfinite(lat) else lat
    return float(result.attainment) - lat * LATENCY_TIEBREAK + placement.num_replicas * REPLICA_TIEBREAK


@dataclass
class WorkingPlacement:
    """A mutable placement under construction: group configs, hosted models, used per-GPU bytes."""

    configs: list[ParallelConfig]
    models: list[list[int]]
    used_bytes: np.ndarray

    @classmethod
    def empty(cls, configs: Sequence[ParallelConfig]) -> WorkingPlacement:
        """Groups with the given configs and no models."""
        return cls(list(configs), [[] for _ in configs], np.zeros(len(configs)))

    def copy(self) -> WorkingPlacement:
        """An independent copy."""
        return WorkingPlacement(list(self.configs), [list(g) for g in self.models], self.used_bytes.copy())

    def add(self, g: int, m: int, weight_bytes: float) -> None:
        """Host model ``m`` on group ``g``."""
        self.models[g].append(m)
        self.used_bytes[g] += weight_bytes

    def key(self) -> tuple:
        """Form for de-duplication: models sorted within each group, group order kept.

        Group order is kept because it matters to the simulator (dispatch ties go to the lower group index),
        so two orderings of the same groups are different placements.
        """
        return tuple(tuple(sorted(ms)) for ms in self.models)

    def placement(self) -> Placement:
        """The immutable :class:`Placement` (group order kept)."""
        return Placement(tuple(Group(c, tuple(sorted(ms))) for c, ms in zip(self.configs, self.models, strict=True)))


class SelectionContext:
    """What the selectors need: a simulator for the workload, weights per (model, group), the budget.

    Parameters
    ----------
    instance : AlpaInstance
        Cluster, models, latency model.
    simulator : Simulator
        Built once for the workload the selection optimises (tables precomputed there).
    models : sequence of int, optional
        The models that may be placed (a bucket); default all.
    threads : int
        Threads that simulate a step's candidates at once (1: one after the other).
    """

    def __init__(
        self, instance, simulator: Simulator, models: Sequence[int] | None = None, *, threads: int = 1
    ) -> None:
        if threads < 1:
            raise InputError("threads must be >= 1", field="threads", value=threads)
        self.instance = instance
        self.simulator = simulator
        self.models = np.arange(len(instance.models)) if models is None else np.asarray(sorted(models), dtype=int)
        self.budget_bytes = instance.cluster.memory_budget_bytes
        self.requests = simulator.workload.counts().astype(np.float64)
        self.threads = int(threads)
        self._weights: dict[ParallelConfig, np.ndarray] = {}
        self.num_simulations = 0
        self.timed_out = False

    def fork(self) -> SelectionContext:
        """A context for another thread: same simulator, models and weight cache, its own counters, serial."""
        other = copy.copy(self)
        other.threads, other.num_simulations, other.timed_out = 1, 0, False
        return other

    def weights(self, config: ParallelConfig) -> np.ndarray:
        """Per-GPU weight bytes of every model under ``config`` (cached)."""
        w = self._weights.get(config)
        if w is None:
            w = weight_table(self.instance, [config])[:, 0]
            self._weights[config] = w
        return w

    def fits(self, wp: WorkingPlacement, g: int, m: int) -> bool:
        """Whether model ``m`` can join group ``g`` (not there yet, memory ``<=`` budget)."""
        return m not in wp.models[g] and wp.used_bytes[g] + self.weights(wp.configs[g])[m] <= self.budget_bytes

    def simulate(self, wp: WorkingPlacement) -> tuple[SimResult, float]:
        """Simulate the working placement; return the full result and its score."""
        p = wp.placement()
        res = self.simulator.run(p)
        self.num_simulations += 1
        return res, score(res, p)

    def simulate_many(self, wps: Sequence[WorkingPlacement]) -> list[tuple[SimResult, float]]:
        """:meth:`simulate` of every working placement, in order (in ``threads`` threads when > 1)."""
        placements = [wp.placement() for wp in wps]
        if self.threads > 1:
            self.simulator.prepare({c for wp in wps for c in wp.configs})
        results = parallel_map(self.simulator.run, placements, self.threads)
        self.num_simulations += len(placements)
        return [(res, score(res, p)) for res, p in zip(results, placements, strict=True)]

    def simulate_counts(self, wp: WorkingPlacement) -> tuple[np.ndarray, np.ndarray]:
        """Simulate on the counts-only path: good requests per model, dispatched requests per group."""
        _, model_good, _, group_requests = self.simulator.run_fast(wp.placement())
        self.num_simulations += 1
        return model_good, group_requests

    def candidates(self, wp: WorkingPlacement) -> list[tuple[int, int]]:
        """Every feasible (group, model) addition, groups then models in index order."""
        return [(g, int(m)) for g in range(len(wp.configs)) for m in self.models if self.fits(wp, g, int(m))]


def parallel_map(fn: Callable[[Any], Any], items: Sequence[Any], threads: int) -> list[Any]:
    """``[fn(x) for x in items]`` computed by up to ``threads`` threads, in order.

    Callers that share a :class:`Simulator` between the threads build its tables for every config the calls
    will simulate first (:meth:`Simulator.prepare`): building them is the one thing a simulator run mutates.
    """
    if threads <= 1 or len(items) < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        return list(pool.map(fn, items))


@dataclass
class Selection:
    """A selector's answer: the placement, its simulation and score, and how many simulations it took."""

    placement: Placement
    result: SimResult
    score: float
    num_simulations: int


def fast_greedy(
    ctx: SelectionContext, configs: Sequence[ParallelConfig], start: WorkingPlacement | None = None
) -> Selection:
    """Fast greedy (reference ``replica_placement_fast_greedy``): most-unserved model into least-loaded group.

    Each step simulates the current placement once, orders the models by unserved requests (descending) and
    the groups by dispatched requests (ascending), and adds the first pair (scanning groups, then models)
    that is new and fits in memory. It keeps filling memory even when attainment stops improving, and
    returns the final placement (as the reference does). Cost: (number of replicas + 2) simulations, all but the
    last on the simulator's counts-only path.
    """
    n0 = ctx.num_simulations
    wp = start.copy() if start is not None else WorkingPlacement.empty(configs)
    while True:
        model_good, group_requests = ctx.simulate_counts(wp)
        unserved = ctx.requests[ctx.models] - model_good[ctx.models]
        model_order = ctx.models[np.argsort(-unserved, kind="stable")]
        group_order = np.argsort(group_requests, kind="stable")
        chosen = None
        for g in group_order:
            g = int(g)
            w = ctx.weights(wp.configs[g])
            room = ctx.budget_bytes - wp.used_bytes[g]
            hosted = wp.models[g]
            for m in model_order:
                m = int(m)
                if w[m] <= room and m not in hosted:
                    chosen = (g, m)
                    break
            if chosen is not None:
                break
        if chosen is None:
            res, sc = ctx.simulate(wp)
            return Selection(wp.placement(), res, sc, ctx.num_simulations - n0)
        g, m = chosen
        wp.add(g, m, ctx.weights(wp.configs[g])[m])


def greedy_selection(
    ctx: SelectionContext, configs: Sequence[ParallelConfig], deadline: float | None = None
) -> Selection:
    """Algorithm 1 with beam width 1 as a plain loop: each step takes the best-scoring single addition.

    Returns the best placement seen (the empty one included). Cost: O(R |G| |M|) simulations. With
    ``deadline`` (a ``time.perf_counter()`` value) it stops after the step during which the deadline passed.
    """
    n0 = ctx.num_simulations
    wp = WorkingPlacement.empty(configs)
    best_res, best_sc = ctx.simulate(wp)
    best = wp.copy()
    while True:
        step_best: tuple[float, WorkingPlacement, SimResult] | None = None
        cands = []
        for g, m in ctx.candidates(wp):
            cand = wp.copy()
            cand.add(g, m, ctx.weights(cand.configs[g])[m])
            cands.append(cand)
        for cand, (res, sc) in zip(cands, ctx.simulate_many(cands), strict=True):
            if step_best is None or sc > step_best[0]:
                step_best = (sc, cand, res)
        if step_best is None:
            break
        sc, wp, res = step_best
        if deadline is not None and time.perf_counter() > deadline:
            ctx.timed_out = True
            if sc > best_sc:
                best, best_sc, best_res = wp.copy(), sc, res
            break
        if sc > best_sc:
            best, best_sc, best_res = wp.copy(), sc, res
    return Selection(best.placement(), best_res, best_sc, ctx.num_simulations - n0)


def beam_selection(
    ctx: SelectionContext, configs: Sequence[ParallelConfig], beam_width: int, deadline: float | None = None
) -> Selection:
    """Algorithm 1 (paper): beam search over replica additions, beam width ``beam_width``.

    Every beam member is extended by every feasible (group, model) addition; candidates are de-duplicated by
    their :meth:`WorkingPlacement.key`, scored by simulation, and the top ``beam_width`` (ties: generation
    order) form the next beam. Returns the best placement seen. Cost: O(R k |G| |M|) simulations.
    """
    if beam_width < 1:
        raise ValueError("beam width must be >= 1")
    n0 = ctx.num_simulations
    root = WorkingPlacement.empty(configs)
    best_res, best_sc = ctx.simulate(root)
    best = root
    beam = [root]
    while beam:
        seen: set[tuple] = set()
        cands: list[WorkingPlacement] = []
        for parent in beam:
            for g, m in ctx.candidates(parent):
                cand = parent.copy()
                cand.add(g, m, ctx.weights(cand.configs[g])[m])
                key = cand.key()
                if key in seen:
                    continue
                seen.add(key)
                cands.append(cand)
        scored = [
            (sc, i, cand, res) for i, (cand, (res, sc)) in enumerate(zip(cands, ctx.simulate_many(cands), strict=True))
        ]
        if not scored:
            break
        scored.sort(key=lambda t: (-t[0], t[1]))
        top = scored[:beam_width]
        if top[0][0] > best_sc:
            best_sc, _, best, best_res = top[0]
        beam = [t[2] for t in top]
        if deadline is not None and time.perf_counter() > deadline:
            ctx.timed_out = True
            break
    return Selection(best.placement(), best_res, best_sc, ctx.num_simulations - n0)
