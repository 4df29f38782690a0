"""Clockwork++ (digest 6, reference ``sr-replace-X``, PR #76): Selective Replication re-solved per time window.

The trace is cut into windows of ``window_s`` seconds; SR (:mod:`heuristics.selective_replication`) is solved on
each window's **actual** requests, and the resulting :class:`TimeVaryingPlacement` switches placements at the
window starts with fresh queues and zero swap cost.

**Oracle.** Because each window's placement is fitted to the very requests it then serves, Clockwork++ sees the
future. serveplan labels it an oracle everywhere (method info, docs, figures). By default it is fitted to the
instance's *test* workload, as in the paper's robustness experiment (digest 6.4) where Clockwork++ is given the
test hour; ``source="train"`` fits it to the train workload instead (then it is an oracle only when train equals
test, as in the paper's Fig. 11).

Cost: windows x (replicas + 1) simulations, each over one window's requests.
"""

from __future__ import annotations

import numpy as np

from heuristics.selective_replication import selective_replication
from serveplan.alpaserve.cluster import Placement, TimeVaryingPlacement
from serveplan.workloads.workload import Workload


def clockwork_pp(instance, window_s: float, workload: Workload | None = None) -> TimeVaryingPlacement:
    """Clockwork++ placement: SR re-solved on each ``window_s`` window of ``workload`` (default: test, oracle).

    Windows start at ``k * window_s`` (k = 0, 1, ...). An empty window keeps the previous window's placement
    (no request would use a new one), so consecutive equal placements are merged.
    """
    if not window_s > 0:
        raise ValueError("window length must be > 0")
    workload = workload if workload is not None else instance.test
    num_windows = max(1, int(np.ceil(workload.duration_s / window_s)))
    starts: list[float] = []
    placements: list[Placement] = []
    last = max(workload.duration_s, float(workload.arrival_s[-1]) if workload.num_requests else 0.0)
    for k in range(num_windows):
        lo = k * window_s
        hi = (k + 1) * window_s if k < num_windows - 1 else np.nextafter(last, np.inf)
        part = workload.slice(lo, hi, rebase=True)
        if part.num_requests == 0 and placements:
            continue
        sel = selective_replication(instance, part)
        if placements and sel.placement == placements[-1]:
            continue
        starts.append(lo)
        placements.append(sel.placement)
    return TimeVaryingPlacement(tuple(starts), tuple(placements))
