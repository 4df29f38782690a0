"""Selective Replication (SR): AlpaServe's greedy restricted to 1-GPU groups (digest 6, reference ``sr-greedy``).

Every GPU is its own group with config ``(pp=1, op=1)``; no model parallelism. Popular models are replicated
until memory is full, using the fast greedy of :mod:`heuristics.alpaserve_greedy` (most-unserved model onto the
least-loaded GPU). This is the state-of-practice baseline (Triton / Nexus / Clipper-style replication).
Cost: (replicas + 1) simulations.
"""

from __future__ import annotations

from heuristics.alpaserve_greedy import Selection, SelectionContext, fast_greedy
from serveplan.alpaserve.cluster import ParallelConfig
from serveplan.alpaserve.simulator import Simulator
from serveplan.workloads.workload import Workload

SINGLE_GPU = ParallelConfig(1, 1)


def sr_configs(num_gpus: int) -> list[ParallelConfig]:
    """One ``(1, 1)`` group per GPU."""
    return [SINGLE_GPU] * num_gpus


def selective_replication(instance, workload: Workload | None = None, simulator: Simulator | None = None) -> Selection:
    """SR placement for ``workload`` (default the instance's train workload).

    Parameters
    ----------
    instance : AlpaInstance
        The instance (its cluster decides the number of 1-GPU groups).
    workload : Workload, optional
        Requests the greedy simulates.
    simulator : Simulator, optional
        A simulator already built for ``workload`` (saves rebuilding its tables).
    """
    if simulator is None:
        simulator = Simulator(instance, workload if workload is not None else instance.train)
    ctx = SelectionContext(instance, simulator)
    return fast_greedy(ctx, sr_configs(instance.cluster.num_gpus))
