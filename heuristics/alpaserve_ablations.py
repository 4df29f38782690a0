"""Placement ablations and manual model parallelism (digest 2.3, 6; paper Figs. 12 and 14).

* :func:`round_robin` (reference ``mp-round-robin``, Fig. 14 "Round robin"): groups of ``pp = 4`` GPUs (plus the
  remainder's pure-pipeline groups); cycle over the groups and give each the next model (in order of
  decreasing request count) that is not there yet and fits, until nothing fits. No simulation.
* :func:`greedy_fixed_groups` (reference ``mp-greedy-K``, Fig. 14 "Greedy placement" with K = 4): groups of K GPUs
  with config ``(pp=K, op=1)`` plus the remainder, filled by the fast greedy.
* :func:`equal_groups` (reference ``mp-equal-pp-op``, Fig. 12's manual baselines for BERT-104B): every group has
  config ``(pp, op)`` and hosts exactly one model; groups are given to models round-robin in order of decreasing
  request count, so with as many groups as models each model has one dedicated group.
"""

from __future__ import annotations

import numpy as np

from heuristics.alpaserve_greedy import SelectionContext, WorkingPlacement, fast_greedy, weight_table
from serveplan.alpaserve.cluster import Group, ParallelConfig, Placement
from serveplan.alpaserve.simulator import Simulator
from serveplan.workloads.workload import Workload


def fixed_groups(num_gpus: int, size: int) -> list[ParallelConfig]:
    """``num_gpus // size`` groups ``(pp=size, op=1)``, then the remainder's binary parts as pure pipelines."""
    regular, rem = divmod(num_gpus, size)
    tail = []
    part = 1
    while part <= rem:
        if rem & part:
            tail.append(ParallelConfig(part, 1))
        part *= 2
    return [ParallelConfig(size, 1)] * regular + tail


def _popularity_order(workload: Workload) -> np.ndarray:
    return np.argsort(-workload.counts(), kind="stable")


def round_robin(instance, workload: Workload | None = None, group_size: int = 4) -> Placement:
    """Round-robin fill of ``pp = group_size`` groups (no simulation). O(groups x models x replicas)."""
    workload = workload if workload is not None else instance.train
    configs = fixed_groups(instance.cluster.num_gpus, min(group_size, instance.cluster.num_gpus))
    order = _popularity_order(workload)
    budget = instance.cluster.memory_budget_bytes
    w = weight_table(instance, sorted(set(configs)))
    col = {c: j for j, c in enumerate(sorted(set(configs)))}
    wp = WorkingPlacement.empty(configs)
    nxt = 0  # position in the model order where the next search starts
    progress = True
    while progress:
        progress = False
        for g, cfg in enumerate(configs):
            for step in range(len(order)):
                m = int(order[(nxt + step) % len(order)])
                wm = w[m, col[cfg]]
                if m not in wp.models[g] and wp.used_bytes[g] + wm <= budget:
                    wp.add(g, m, wm)
                    nxt = (nxt + step + 1) % len(order)
                    progress = True
                    break
    return wp.placement()


def greedy_fixed_groups(instance, group_size: int, workload: Workload | None = None):
    """Fast greedy on groups of ``group_size`` GPUs with config ``(group_size, 1)`` (``mp-greedy-K``)."""
    sim = Simulator(instance, workload if workload is not None else instance.train)
    ctx = SelectionContext(instance, sim)
    return fast_greedy(ctx, fixed_groups(instance.cluster.num_gpus, min(group_size, instance.cluster.num_gpus)))


def equal_groups(instance, config: ParallelConfig, workload: Workload | None = None) -> Placement:
    """Dedicated groups: ``num_gpus // size`` groups with ``config``, one model each (``mp-equal-pp-op``).

    Models that do not fit ``config`` within the budget are skipped; groups go round-robin to the others in
    order of decreasing request count. A group no model fits stays empty.
    """
    workload = workload if workload is not None else instance.train
    n_groups = instance.cluster.num_gpus // config.size
    w = weight_table(instance, [config])[:, 0]
    order = [int(m) for m in _popularity_order(workload) if w[m] <= instance.cluster.memory_budget_bytes]
    groups = []
    for g in range(n_groups):
        groups.append(Group(config, (order[g % len(order)],) if order else ()))
    return Placement(tuple(groups))
