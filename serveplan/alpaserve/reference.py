"""A plain-Python reference of the simulator's semantics, written independently of the numba kernel.

Used to cross-check the compiled kernel in tests and as the speed baseline in the benchmark.
It keeps per-group state in small Python objects and walks the requests one by one; the rules are
those of :mod:`serveplan.alpaserve.simulator` (dispatch, pipeline recursion, drop on arrival,
fresh clocks at placement switches, the optional batching rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from serveplan.alpaserve.cluster import ParallelConfig, Placement, TimeVaryingPlacement
from serveplan.workloads.workload import Workload


@dataclass
class _GroupState:
    stage_clock: list[float]
    inflight: list[float] = field(default_factory=list)  # device finish times of accepted requests
    batch_model: int = -1
    batch_members: list[int] = field(default_factory=list)
    batch_clock_before: list[float] = field(default_factory=list)
    batch_start: float = 0.0
    batch_deadline: float = 0.0


def reference_simulate(
    workload: Workload,
    placement: Placement | TimeVaryingPlacement,
    stage_latency: dict[tuple[int, ParallelConfig, int], list[float] | None],
    slo_s: list[float] | np.ndarray,
    *,
    fixed_overhead_s: float = 0.011,
    stage_penalty: float = 0.009,
    dispatch: str = "earliest",
    max_batch_size: int = 1,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Simulate request by request in Python.

    Parameters
    ----------
    stage_latency : dict
        ``(model, config, batch_size) -> unpenalised stage latencies`` (None: cannot run).

    Returns
    -------
    finish_s : float64 array (NaN when not served), good : bool array, group_requests : list of int.
    """
    n = workload.num_requests
    finish = np.full(n, np.nan)
    good = np.zeros(n, dtype=bool)
    if isinstance(placement, TimeVaryingPlacement):
        segments = list(zip(placement.start_times_s, placement.placements, strict=True))
    else:
        segments = [(0.0, placement)]
    counts: list[int] = []
    arrivals = workload.arrival_s.tolist()
    models = workload.model_id.tolist()
    for j, (start, plc) in enumerate(segments):
        end = segments[j + 1][0] if j + 1 < len(segments) else float("inf")
        lo = 0 if j == 0 else next((i for i, a in enumerate(arrivals) if a >= start), n)
        hi = next((i for i, a in enumerate(arrivals) if a >= end), n)
        states = [_GroupState([-1e300] * g.config.pp) for g in plc.groups]
        seg_counts = [0] * len(plc.groups)

        def lat(m: int, g: int, bs: int, plc: Placement = plc) -> list[float] | None:
            c = plc.groups[g].config
            base = stage_latency.get((m, c, bs))
            return None if base is None else [x * (1 + stage_penalty * c.pp) for x in base]

        for i in range(lo, hi):
            a, m = arrivals[i], models[i]
            hosts = [g for g, grp in enumerate(plc.groups) if m in grp.models]
            if not hosts:
                continue
            if dispatch == "earliest":
                g = min(hosts, key=lambda g: (states[g].stage_clock[-1], g))
            else:
                for g in hosts:
                    states[g].inflight = [f for f in states[g].inflight if f > a]
                g = min(hosts, key=lambda g: (len(states[g].inflight), states[g].stage_clock[-1], g))
            seg_counts[g] += 1
            st = states[g]
            deadline = a + slo_s[m]
            # join the open batch?
            if (
                max_batch_size > 1
                and st.batch_model == m
                and len(st.batch_members) < max_batch_size
                and st.batch_start > a
            ):
                ls = lat(m, g, len(st.batch_members) + 1)
                if ls is not None:
                    t, times = a, []
                    for k, lk in enumerate(ls):
                        t = max(t, st.batch_clock_before[k]) + lk
                        times.append(t)
                    new_deadline = min(st.batch_deadline, deadline)
                    if t + fixed_overhead_s <= new_deadline:
                        old = st.stage_clock[-1]
                        st.stage_clock = times
                        st.batch_start = times[0] - ls[0]
                        st.batch_deadline = new_deadline
                        st.batch_members.append(i)
                        for r in st.batch_members:
                            finish[r] = t + fixed_overhead_s
                        st.inflight = [t if f == old else f for f in st.inflight] + [t]
                        good[i] = True
                        continue
            ls = lat(m, g, 1)
            if ls is None:
                continue
            t, times = a, []
            for k, lk in enumerate(ls):
                t = max(t, st.stage_clock[k]) + lk
                times.append(t)
            if t + fixed_overhead_s - a <= slo_s[m]:
                if max_batch_size > 1:
                    st.batch_model = m
                    st.batch_members = [i]
                    st.batch_clock_before = list(st.stage_clock)
                    st.batch_start = times[0] - ls[0]
                    st.batch_deadline = deadline
                st.stage_clock = times
                st.inflight.append(t)
                finish[i] = t + fixed_overhead_s
                good[i] = True
        counts += seg_counts
    return finish, good, counts
