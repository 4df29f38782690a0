"""The AlpaServe fast simulator: per-group FCFS pipelines over stage clocks, compiled with numba.

Semantics (digest 3.1; docs/alpaserve.md "Simulator"), per request in arrival order:

1. The request's model has replicas on some groups; a model with none is a miss (finish NaN).
2. **Dispatch** to the replica group whose last stage drains earliest (smallest last-stage clock),
   or, with ``dispatch="fewest_inflight"``, to the one with the fewest accepted requests still on its
   devices (ties: earliest drain, then lowest group index).
3. **Pipeline recursion** over the group's stage clocks ``c_k``: ``t_0 = arrival``,
   ``t_k = max(t_{k-1}, c_k) + lat_k``; ``finish = t_last + fixed_overhead_s``. Stage latencies are
   multiplied by ``1 + stage_penalty * num_stages`` (AlpaServe's tuned pipeline penalty).
4. **Admission**: if ``finish - arrival <= slo`` the request is accepted and the stage clocks become
   ``t_k``; otherwise it is dropped on arrival (finish NaN), the clocks untouched, no retry elsewhere.
5. A time-varying placement restarts with fresh (idle) clocks at each switch time.

Optional dynamic batching (``max_batch_size > 1``): see :func:`_kernel` for the rule.

The simulator precomputes the per-(model, config) penalised latency tables once per config it meets
and keeps them, so each :meth:`Simulator.run` only builds the group -> model index arrays and calls
the kernel.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numba
import numpy as np

from serveplan.alpaserve.cluster import ParallelConfig, Placement, TimeVaryingPlacement
from serveplan.errors import InputError
from serveplan.workloads.workload import Workload

if TYPE_CHECKING:
    from serveplan.alpaserve.instance import AlpaInstance

DISPATCH_EARLIEST = 0
DISPATCH_FEWEST_INFLIGHT = 1
_DISPATCH = {"earliest": DISPATCH_EARLIEST, "fewest_inflight": DISPATCH_FEWEST_INFLIGHT}
_NEG = -1e300


@numba.njit(cache=True, nogil=True)
def _kernel(
    arrival,  # float64[n]
    model_id,  # int32[n]
    slo,  # float64[M]
    lat,  # float64[B, M, C, K]: penalised stage latency for batch size b+1
    nst,  # int64[C]
    grp_cfg,  # int64[G]: config index of each group
    grp_len,  # int64[G]: number of models of each group
    grp_models,  # int64[R]: the groups' model indices, group after group
    fixed_overhead,  # float64
    dispatch,  # int64
    finish_out,  # float64[n]
    good_out,  # bool[n]
    group_count,  # int64[G] (accumulated)
    model_good,  # int64[M] (accumulated)
    model_total,  # int64[M] (accumulated)
    model_lat_sum,  # float64[M] (accumulated): sum of latencies of good requests
):
    """Walk the requests once in arrival order.

    Returns the number of accepted requests, or ``-(i+1)`` when ``grp_models[i]`` is not a model index.

    Batching (``lat.shape[0] > 1``): a request may join the batch most recently admitted to its
    chosen group when that batch is of the same model, has not yet started its first stage
    (its stage-0 start is later than the arrival), and has fewer than ``B`` members. The merged
    batch is re-timed from the clocks that held before it, with the latency of the larger batch; it
    is accepted only if every member (all share the batch's finish) still meets its SLO, which is
    the earliest deadline in the batch. Otherwise the request is scheduled alone as in the
    unbatched rule.
    """
    n = arrival.shape[0]
    G = grp_cfg.shape[0]
    B = lat.shape[0]
    M = lat.shape[1]
    K = lat.shape[3]
    # model -> hosting groups (ascending group index), as CSR
    R = grp_models.shape[0]
    mg_ptr = np.zeros(M + 1, np.int64)
    for r in range(R):
        m = grp_models[r]
        if m < 0 or m >= M:
            return -(r + 1)
        mg_ptr[m + 1] += 1
    for m in range(M):
        mg_ptr[m + 1] += mg_ptr[m]
    cursor = mg_ptr[:M].copy()
    mg_idx = np.empty(R, np.int64)
    r = 0
    for g in range(G):
        for _ in range(grp_len[g]):
            m = grp_models[r]
            mg_idx[cursor[m]] = g
            cursor[m] += 1
            r += 1
    clocks = np.full((G, K), _NEG)
    # batching state per group: clocks before the open batch, its model, size, deadline, stage-0 start
    prev_clocks = np.full((G, K), _NEG)
    open_model = np.full(G, -1, np.int64)
    open_size = np.zeros(G, np.int64)
    open_deadline = np.zeros(G)
    open_start = np.zeros(G)
    open_members = np.zeros((G, B), np.int64)
    # in-flight FIFO per group (device finish times are non-decreasing per group)
    dev_finish = np.empty(n)
    nxt = np.full(n, -1, np.int64)
    head = np.full(G, -1, np.int64)
    tail = np.full(G, -1, np.int64)
    inflight = np.zeros(G, np.int64)
    tmp = np.empty(K)
    accepted = 0
    for i in range(n):
        m = model_id[i]
        a = arrival[i]
        model_total[m] += 1
        finish_out[i] = np.nan
        good_out[i] = False
        lo = mg_ptr[m]
        hi = mg_ptr[m + 1]
        if lo == hi:
            continue
        # ---- dispatch
        best = -1
        best_clock = 0.0
        best_q = 0
        for r in range(lo, hi):
            g = mg_idx[r]
            c = grp_cfg[g]
            last = clocks[g, nst[c] - 1]
            if dispatch == 1:
                h = head[g]
                while h >= 0 and dev_finish[h] <= a:
                    h = nxt[h]
                    inflight[g] -= 1
                head[g] = h
                if h < 0:
                    tail[g] = -1
                q = inflight[g]
                if best < 0 or q < best_q or (q == best_q and last < best_clock):
                    best, best_clock, best_q = g, last, q
            elif best < 0 or last < best_clock:
                best, best_clock = g, last
        g = best
        c = grp_cfg[g]
        ns = nst[c]
        group_count[g] += 1
        slo_m = slo[m]
        # ---- try to join the open batch
        if B > 1 and open_model[g] == m and open_size[g] < B and open_start[g] > a:
            bsz = open_size[g] + 1
            # re-time the whole batch from the clocks that held before it; it cannot start before
            # its newest member arrived
            t = a
            for k in range(ns):
                base = prev_clocks[g, k]
                t = (t if t > base else base) + lat[bsz - 1, m, c, k]
                tmp[k] = t
            fin = t + fixed_overhead
            deadline = open_deadline[g]
            if a + slo_m < deadline:
                deadline = a + slo_m
            if fin <= deadline:
                for k in range(ns):
                    clocks[g, k] = tmp[k]
                open_start[g] = tmp[0] - lat[bsz - 1, m, c, 0]
                open_deadline[g] = deadline
                if dispatch == 1:
                    if tail[g] >= 0:
                        nxt[tail[g]] = i
                    else:
                        head[g] = i
                    tail[g] = i
                    inflight[g] += 1
                open_members[g, open_size[g]] = i
                open_size[g] = bsz
                for j in range(bsz - 1):
                    r_i = open_members[g, j]
                    model_lat_sum[m] += fin - finish_out[r_i]
                    finish_out[r_i] = fin
                    dev_finish[r_i] = t
                finish_out[i] = fin
                dev_finish[i] = t
                model_lat_sum[m] += fin - a
                good_out[i] = True
                model_good[m] += 1
                accepted += 1
                continue
        # ---- schedule alone
        t = a
        for k in range(ns):
            ck = clocks[g, k]
            t = (t if t > ck else ck) + lat[0, m, c, k]
            tmp[k] = t
        fin = t + fixed_overhead
        if fin - a <= slo_m:
            if B > 1:
                for k in range(ns):
                    prev_clocks[g, k] = clocks[g, k]
                open_model[g] = m
                open_size[g] = 1
                open_deadline[g] = a + slo_m
                open_start[g] = tmp[0] - lat[0, m, c, 0]
                open_members[g, 0] = i
            for k in range(ns):
                clocks[g, k] = tmp[k]
            finish_out[i] = fin
            good_out[i] = True
            model_good[m] += 1
            model_lat_sum[m] += fin - a
            accepted += 1
            dev_finish[i] = t
            if dispatch == 1:
                if tail[g] >= 0:
                    nxt[tail[g]] = i
                else:
                    head[g] = i
                tail[g] = i
                inflight[g] += 1
    return accepted


@dataclass(eq=False)
class SimResult:
    """What one simulation produced.

    Attributes
    ----------
    finish_s : numpy.ndarray of float64
        Per-request finish time (arrival order); NaN for dropped or unplaced requests.
    good : numpy.ndarray of bool
        Per-request: finished within its SLO.
    attainment : float
        Fraction of all requests finished within SLO (per request, not per model; 1.0 for an empty trace).
    model_requests, model_good : numpy.ndarray of int64
        Requests and good requests per model.
    group_requests : numpy.ndarray of int64
        Requests dispatched to each group (before the SLO check); for a time-varying placement the
        groups of all placements concatenated in order.
    model_latency_sum_s : numpy.ndarray of float64
        Sum of the latencies of each model's good requests (accumulated by the kernel).
    latency_mean_s, latency_p90_s, latency_p99_s : float
        Over good requests whose arrival lies in ``[warmup_s, duration - warmup_s]`` (NaN if none);
        computed on first access (the mean without warm-up trimming comes from the kernel's sums).
    """

    finish_s: np.ndarray
    good: np.ndarray
    attainment: float
    model_requests: np.ndarray
    model_good: np.ndarray
    group_requests: np.ndarray
    model_latency_sum_s: np.ndarray
    arrival_s: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    duration_s: float = 0.0
    warmup_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    _stats: tuple[float, float, float] | None = field(default=None, repr=False)

    @property
    def model_attainment(self) -> np.ndarray:
        """Per-model attainment (NaN for models without requests)."""
        return np.where(self.model_requests > 0, self.model_good / np.maximum(self.model_requests, 1), np.nan)

    @property
    def model_latency_mean_s(self) -> np.ndarray:
        """Per-model mean latency of good requests (NaN where none; no warm-up trimming)."""
        return np.where(self.model_good > 0, self.model_latency_sum_s / np.maximum(self.model_good, 1), np.nan)

    @property
    def num_requests(self) -> int:
        """Requests simulated."""
        return int(self.model_requests.sum())

    @property
    def latency_mean_s(self) -> float:
        """Mean latency of good requests (warm-up trimmed when ``warmup_s > 0``)."""
        if self.warmup_s <= 0 and self._stats is None:
            n = int(self.model_good.sum())
            return float(self.model_latency_sum_s.sum() / n) if n else float("nan")
        return self._latency_stats()[0]

    @property
    def latency_p90_s(self) -> float:
        """90th percentile latency of good requests (warm-up trimmed)."""
        return self._latency_stats()[1]

    @property
    def latency_p99_s(self) -> float:
        """99th percentile latency of good requests (warm-up trimmed)."""
        return self._latency_stats()[2]

    def _latency_stats(self) -> tuple[float, float, float]:
        if self._stats is None:
            self._stats = latency_stats(self.arrival_s, self.finish_s, self.good, self.duration_s, self.warmup_s)
        return self._stats

    def summary(self) -> dict[str, Any]:
        """Scalar metrics as a JSON-ready dict."""
        ma = self.model_attainment
        return {
            "num_requests": self.num_requests,
            "attainment": self.attainment,
            "model_attainment_min": float(np.nanmin(ma)) if np.any(np.isfinite(ma)) else float("nan"),
            "latency_mean_s": self.latency_mean_s,
            "latency_p90_s": self.latency_p90_s,
            "latency_p99_s": self.latency_p99_s,
            "model_attainment": [None if not np.isfinite(x) else float(x) for x in ma],
            "group_requests": self.group_requests.tolist(),
        }


LatencyFn = Callable[[int, ParallelConfig, int], np.ndarray | None]


class Simulator:
    """Simulate placements on one workload, reusing precomputed latency tables across calls.

    Parameters
    ----------
    source : AlpaInstance or None
        Supplies models, SLOs and the latency model. Alternatively pass ``latency_fn`` and ``slo_s``.
    workload : Workload, optional
        The trace; default ``source.test``.
    latency_fn : callable, optional
        ``latency_fn(model_index, config, batch_size) -> stage latencies (s)`` or None when the model
        cannot run under the config (its requests there are misses). Needed when ``source`` is None.
    slo_s : sequence of float, optional
        Per-model SLO (needed when ``source`` is None).
    fixed_overhead_s : float, default 0.011
        Added to every request's latency; does not occupy devices.
    stage_penalty : float, default 0.009
        Stage latencies are multiplied by ``1 + stage_penalty * num_stages``.
    dispatch : {"earliest", "fewest_inflight"}
        Replica choice (see module docstring).
    max_batch_size : int, default 1
        Dynamic batching bound (1 = off).
    warmup_s : float, default 0
        Requests arriving in the first and last ``warmup_s`` seconds are left out of the latency
        statistics (AlpaServe's final stats trim 10 s; attainment always counts every request).
    """

    def __init__(
        self,
        source: AlpaInstance | None = None,
        workload: Workload | None = None,
        *,
        latency_fn: LatencyFn | None = None,
        slo_s: Any = None,
        fixed_overhead_s: float = 0.011,
        stage_penalty: float = 0.009,
        dispatch: str = "earliest",
        max_batch_size: int = 1,
        warmup_s: float = 0.0,
    ) -> None:
        if source is not None:
            inst = source
            models, lm = inst.models, inst.latency

            def _fn(m: int, c: ParallelConfig, bs: int) -> np.ndarray | None:
                if c.pp > models[m].num_layers:
                    return None
                return lm.stage_latencies_s(models[m], c, bs)

            self.latency_fn: LatencyFn = latency_fn or _fn
            slo = inst.slo_array() if slo_s is None else np.asarray(slo_s, dtype=np.float64)
            workload = workload if workload is not None else inst.test
        else:
            if latency_fn is None or slo_s is None:
                raise InputError("give an instance, or both latency_fn and slo_s", field="source")
            self.latency_fn = latency_fn
            slo = np.asarray(slo_s, dtype=np.float64)
        if workload is None:
            raise InputError("no workload to simulate", field="workload")
        if dispatch not in _DISPATCH:
            raise InputError(
                "unknown dispatch rule", field="dispatch", value=dispatch, hint=f"use one of {sorted(_DISPATCH)}"
            )
        if int(max_batch_size) < 1:
            raise InputError("max_batch_size must be >= 1", field="max_batch_size", value=max_batch_size)
        if workload.num_models != slo.size:
            raise InputError(
                "workload and SLO list disagree on the number of models",
                field="workload.num_models",
                value=(workload.num_models, slo.size),
            )
        self.workload = workload
        self.slo_s = np.ascontiguousarray(slo)
        self.num_models = int(slo.size)
        self.fixed_overhead_s = float(fixed_overhead_s)
        self.stage_penalty = float(stage_penalty)
        self.dispatch = dispatch
        self._dispatch_code = _DISPATCH[dispatch]
        self.max_batch_size = int(max_batch_size)
        self.warmup_s = float(warmup_s)
        self._arrival = workload.arrival_s
        self._model_id = workload.model_id
        self._cfg_index: dict[ParallelConfig, int] = {}
        self._cfg_by_key: dict[tuple[int, int], int] = {}
        self._nst = np.zeros(0, np.int64)
        self._lat = np.zeros((self.max_batch_size, self.num_models, 0, 1))

    @classmethod
    def from_table(
        cls,
        table: dict[tuple[int, ParallelConfig], Any],
        slo_s: Any,
        workload: Workload,
        **options: Any,
    ) -> Simulator:
        """A simulator over explicit batch-1 stage latencies ``{(model, config): [seconds per stage]}``.

        Pairs missing from ``table`` cannot run (their requests there are misses). For batching, give
        ``latency_fn`` to the constructor instead.
        """
        frozen = {k: np.asarray(v, dtype=np.float64) for k, v in table.items()}

        def fn(m: int, c: ParallelConfig, bs: int) -> np.ndarray | None:
            return frozen.get((m, c)) if bs == 1 else None

        return cls(None, workload, latency_fn=fn, slo_s=slo_s, **options)

    # ------------------------------------------------------------------ tables
    def _config_idx(self, config: ParallelConfig) -> int:
        idx = self._cfg_index.get(config)
        if idx is not None:
            return idx
        B, M = self.max_batch_size, self.num_models
        C = len(self._cfg_index)
        K = max(self._lat.shape[3], config.pp)
        lat = np.full((B, M, C + 1, K), np.inf)
        lat[:, :, :C, : self._lat.shape[3]] = self._lat
        mult = 1.0 + self.stage_penalty * config.pp
        for m in range(M):
            for b in range(B):
                stages = self.latency_fn(m, config, b + 1)
                if stages is None:
                    continue
                stages = np.asarray(stages, dtype=np.float64)
                if stages.shape != (config.pp,):
                    raise InputError(
                        "latency table has the wrong number of stages",
                        field=f"latency[{m}][{config}]",
                        value=stages.shape,
                    )
                lat[b, m, C, : config.pp] = stages * mult
        self._lat = np.ascontiguousarray(lat)
        self._nst = np.append(self._nst, config.pp).astype(np.int64)
        self._cfg_index[config] = C
        self._cfg_by_key[(config.pp, config.op)] = C
        return C

    def with_workload(self, workload: Workload) -> Simulator:
        """A simulator for another workload of the same models that reuses the latency tables built so far."""
        if workload.num_models != self.num_models:
            raise InputError(
                "workload and SLO list disagree on the number of models",
                field="workload.num_models",
                value=(workload.num_models, self.num_models),
            )
        new = copy.copy(self)
        new.workload = workload
        new._arrival = workload.arrival_s
        new._model_id = workload.model_id
        new._cfg_index = dict(self._cfg_index)
        new._cfg_by_key = dict(self._cfg_by_key)
        return new

    def prepare(self, configs: Any) -> None:
        """Precompute the tables of these configs now (else they are built on first use)."""
        for c in configs:
            self._config_idx(c)

    def _arrays(self, placement: Placement) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Config index and model count of each group, and all groups' models concatenated.

        Kept to one pass over the groups with C-level list operations: this is the per-call cost a
        placement search pays on top of the kernel.
        """
        keyed = self._cfg_by_key
        cfg: list[int] = []
        lens: list[int] = []
        flat: list[int] = []
        for g in placement.groups:
            c = g.config
            idx = keyed.get((c.pp, c.op))
            cfg.append(self._config_idx(c) if idx is None else idx)
            lens.append(len(g.models))
            flat.extend(g.models)
        return np.array(cfg, np.int64), np.array(lens, np.int64), np.array(flat, np.int64)

    # ------------------------------------------------------------------ runs
    def _simulate(self, placement: Placement | TimeVaryingPlacement, lo: int, hi: int, finish, good, mg, mt, ls):
        if isinstance(placement, TimeVaryingPlacement):
            starts = np.asarray(placement.start_times_s)
            cuts = np.searchsorted(self._arrival, starts[1:], side="left")
            bounds = [lo, *(int(x) for x in cuts), hi]
            counts = []
            for j, p in enumerate(placement.placements):
                counts.append(self._simulate(p, bounds[j], bounds[j + 1], finish, good, mg, mt, ls))
            return np.concatenate(counts) if counts else np.zeros(0, np.int64)
        grp_cfg, grp_len, grp_models = self._arrays(placement)
        gc = np.zeros(len(grp_cfg), np.int64)
        if hi > lo or grp_models.size:
            code = _kernel(
                self._arrival[lo:hi],
                self._model_id[lo:hi],
                self.slo_s,
                self._lat,
                self._nst,
                grp_cfg,
                grp_len,
                grp_models,
                self.fixed_overhead_s,
                self._dispatch_code,
                finish[lo:hi],
                good[lo:hi],
                gc,
                mg,
                mt,
                ls,
            )
            if code < 0:
                bad = -code - 1
                gi = int(np.searchsorted(np.cumsum(grp_len), bad, side="right"))
                raise InputError(
                    f"model index outside [0, {self.num_models})",
                    field=f"groups[{gi}].models",
                    value=int(grp_models[bad]),
                )
        return gc

    def _run(self, placement: Placement | TimeVaryingPlacement) -> SimResult:
        n = self._arrival.size
        finish = np.empty(n)
        good = np.empty(n, np.bool_)
        mg = np.zeros(self.num_models, np.int64)
        mt = np.zeros(self.num_models, np.int64)
        ls = np.zeros(self.num_models)
        gc = self._simulate(placement, 0, n, finish, good, mg, mt, ls)
        att = float(mg.sum() / n) if n else 1.0
        return SimResult(finish, good, att, mt, mg, gc, ls, self._arrival, self.workload.duration_s, self.warmup_s)

    def run_fast(self, placement: Placement | TimeVaryingPlacement) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Attainment-only path for searches: ``(attainment, model_good, model_requests, group_requests)``."""
        r = self._run(placement)
        return r.attainment, r.model_good, r.model_requests, r.group_requests

    def run(self, placement: Placement | TimeVaryingPlacement) -> SimResult:
        """Simulate ``placement`` on the workload: per-request output, counts, latency statistics.

        Percentiles (and the warm-up-trimmed mean) are computed when first read, so a search that
        only reads attainment and the mean latency pays for neither.
        """
        return self._run(placement)


def latency_stats(
    arrival_s: np.ndarray, finish_s: np.ndarray, good: np.ndarray, duration_s: float, warmup_s: float = 0.0
) -> tuple[float, float, float]:
    """Mean, P90 and P99 latency of accepted requests arriving in ``[warmup_s, duration_s - warmup_s]``."""
    mask = good
    if warmup_s > 0:
        mask = mask & (arrival_s >= warmup_s) & (arrival_s <= duration_s - warmup_s)
    lat = finish_s[mask] - arrival_s[mask]
    if lat.size == 0:
        return float("nan"), float("nan"), float("nan")
    p90, p99 = np.percentile(lat, [90, 99])
    return float(lat.mean()), float(p90), float(p99)


def simulate(
    instance: AlpaInstance,
    placement: Placement | TimeVaryingPlacement,
    workload: Workload | None = None,
    **options: Any,
) -> SimResult:
    """One-shot convenience: ``Simulator(instance, workload, **options).run(placement)`` (workload default: test)."""
    return Simulator(instance, workload, **options).run(placement)


def simulate_train_test(
    instance: AlpaInstance, placement: Placement | TimeVaryingPlacement
) -> tuple[SimResult, SimResult]:
    """``placement`` simulated on the instance's train and test workloads, with default options.

    How every placement method scores its answer (train: the objective it optimised; test: held out). When
    the two workloads are the same object the one run serves both.
    """
    train = Simulator(instance, instance.train).run(placement)
    test = train if instance.test is instance.train else Simulator(instance, instance.test).run(placement)
    return train, test
