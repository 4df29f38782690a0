"""AlpaServe Algorithm 2: enumerate model buckets, device splits, group partitions and configs (digest 2.2).

For every way of cutting the cluster the search runs a replica selector (Algorithm 1's fast greedy by
default, :mod:`heuristics.alpaserve_greedy`) and keeps the placement with the best simulated score.

The enumeration follows the reference ``ModelParallelismSearch`` (``mp-search``, and ``mp-search-sep`` with
model buckets):

* **group partitions** (:func:`group_partitions`): for every power-of-two group size ``s <= N`` (sizes above a
  node only when a multiple of the node size) make ``N // s`` equal groups sharing one config ``(pp, op)``
  with ``pp * op = s``, ``pp <= max_pp``, ``op <= max_op``; split the remainder ``N % s`` into its binary
  parts, each a pure-pipeline group ``(part, 1)``;
* **model buckets** (:func:`model_buckets`): models in index order join the first bucket whose first member's
  single-GPU latency is within ``threshold`` (0.38) relative difference ``|a - b| / max(a, b)``, else open a
  new bucket (short requests then never queue behind long ones);
* **device splits** (:func:`device_splits`): ordered compositions of ``N`` into one part per bucket, each part
  node-aligned by the reference rule, pruned to those whose throughput share (``devices / latency``,
  normalised) is within ``tau`` of the bucket's request-rate share, with the first ``tau`` of
  ``(1.0, 0.5, 0.3, 0.2, 0.1)`` that leaves fewer than 100 splits;
* finally the bucketed answer is compared with the single-bucket search and the better is kept.

What makes it fast (the enumeration is the reference's; with items 1-3 alone every candidate gets the same good
count as in the reference loop, but a bucket's score is normalised by the bucket's own requests instead of the
whole trace, which changes the weight of the latency/replica tie-breakers, so near-ties may resolve differently):

1. **Exact decomposition by bucket.** Buckets own disjoint models and disjoint groups, so the simulation of a
   concatenated placement is the sum of independent per-bucket simulations. Each bucket is therefore solved on
   its own requests only (a simulator built once per bucket), not on the whole trace.
2. **Memoisation.** The best placement of bucket ``b`` on ``n`` devices does not depend on how the other
   devices are split, so each (bucket, n) is solved once across all splits; the split is then chosen by adding
   per-bucket scores, without simulating the concatenations.
3. The simulator's tables are built once per workload (:class:`serveplan.alpaserve.simulator.Simulator`).
4. **Best-first split search** (``prune_monotone=True``, the default): splits are visited in order of an upper
   bound on their good requests (for each bucket, the smallest good count already found on at least as many
   devices), starting from the rate-proportional split, and the search stops when no unvisited split's bound
   beats the best found. It returns a split of maximum good count whenever every bucket's good count is
   nondecreasing in its device count: observed on every instance we ran, not guaranteed (the fast greedy is
   not monotone). On the 64-GPU / 72-model benchmark it visits 5-6 of 63 splits.

``prune_monotone=False`` keeps items 1-3 only; ``reference_loop=True`` switches all of that off and runs the
reference's structure (every split solves every bucket again against the whole trace and simulates the
concatenation); it is the baseline of ``serveplan/alpaserve/bench_placement.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from heuristics.alpaserve_greedy import (
    LATENCY_TIEBREAK,
    REPLICA_TIEBREAK,
    Selection,
    SelectionContext,
    fast_greedy,
    parallel_map,
    score,
)
from serveplan.alpaserve.cluster import Cluster, Group, ParallelConfig, Placement
from serveplan.alpaserve.simulator import Simulator
from serveplan.errors import InputError
from serveplan.workloads.workload import Workload

SAME_MODEL_THRESHOLD = 0.38
TAUS = (1.0, 0.5, 0.3, 0.2, 0.1)
MAX_SPLITS = 100


def _powers_of_two(limit: int) -> list[int]:
    out, s = [], 1
    while s <= limit:
        out.append(s)
        s *= 2
    return out


def group_partitions(cluster: Cluster, num_gpus: int, max_pp: int = 8, max_op: int = 4) -> list[list[ParallelConfig]]:
    """Candidate group partitions with configs for ``num_gpus`` devices (reference ``enumerate_group_configs_uneven``).

    Returns one list of configs per candidate (the groups, regular ones first, then the remainder's
    pure-pipeline groups in increasing size). For 64 GPUs that is 12 candidates. O(log^2 N).
    """
    out: list[list[ParallelConfig]] = []
    gpn = cluster.gpus_per_node
    for s in _powers_of_two(num_gpus):
        if s > gpn and s % gpn:
            continue
        regular, rem = divmod(num_gpus, s)
        parts = [p for p in _powers_of_two(rem) if rem & p]
        tail = [ParallelConfig(p, 1) for p in parts]
        for pp in _powers_of_two(min(max_pp, s)):
            op = s // pp
            if op > max_op or pp * op != s:
                continue
            out.append([ParallelConfig(pp, op)] * regular + tail)
    return out


def model_buckets(
    instance, models: Sequence[int] | None = None, threshold: float = SAME_MODEL_THRESHOLD
) -> list[list[int]]:
    """Cluster models by single-GPU latency (reference ``enumerate_separations``).

    A model joins the first bucket whose *first* member's latency ``a`` satisfies ``|l - a| / max(l, a) <=
    threshold``, else it opens a new bucket. Models are visited in index order. O(M x buckets).
    """
    models = range(len(instance.models)) if models is None else models
    lat = [instance.latency.single_gpu_latency_s(instance.models[m]) for m in range(len(instance.models))]
    buckets: list[list[int]] = []
    for m in models:
        for b in buckets:
            a = lat[b[0]]
            if abs(lat[m] - a) / max(lat[m], a) <= threshold:
                b.append(m)
                break
        else:
            buckets.append([m])
    return buckets


def _valid_part(n: int, i: int, gpn: int) -> bool:
    """Reference ``is_valid_size``: the part keeps the split node-aligned."""
    return i <= n % gpn or (n - i) % gpn == 0 or n % gpn == 0


def _compositions(n: int, k: int, gpn: int) -> list[tuple[int, ...]]:
    if k == 1:
        return [(n,)]
    out = []
    for i in range(1, n - k + 2):
        if not _valid_part(n, i, gpn):
            continue
        out.extend((i, *rest) for rest in _compositions(n - i, k - 1, gpn))
    return out


def device_splits(
    num_gpus: int, rates: Sequence[float], latencies_s: Sequence[float], gpus_per_node: int = 8
) -> list[tuple[int, ...]]:
    """Device splits among buckets, pruned by rate share vs throughput share (reference ``get_partitions``).

    Parameters
    ----------
    num_gpus : int
        Devices to split.
    rates : sequence of float
        Request rate (or count) of each bucket.
    latencies_s : sequence of float
        Single-GPU latency of each bucket (its first model's).
    gpus_per_node : int
        Node size for the alignment rule.
    """
    k = len(rates)
    comps = _compositions(num_gpus, k, gpus_per_node)
    if k == 1:
        return comps
    rates = np.asarray(rates, dtype=float)
    rate_share = rates / max(rates.sum(), 1e-12)
    lat = np.asarray(latencies_s, dtype=float)
    arr = np.asarray(comps, dtype=float)
    tput = arr / lat
    tput_share = tput / tput.sum(axis=1, keepdims=True)
    dev = np.abs(tput_share - rate_share).max(axis=1)
    kept = comps
    for tau in TAUS:
        kept = [c for c, d in zip(comps, dev, strict=True) if d < tau]
        if len(kept) < MAX_SPLITS:
            break
    return kept


@dataclass
class BucketAnswer:
    """Best placement of one bucket on a number of devices, with the parts of its score."""

    groups: list[Group]
    good: float
    latency_sum_s: float
    num_replicas: int


@dataclass
class SearchResult:
    """What Algorithm 2 returns."""

    placement: Placement
    score: float
    attainment: float
    buckets: list[list[int]]
    split: tuple[int, ...]
    num_simulations: int
    num_splits: int
    wall_s: float
    stats: dict = field(default_factory=dict)


def _workload_subset(workload: Workload, models: Sequence[int]) -> Workload:
    mask = np.isin(workload.model_id, np.asarray(models, dtype=np.int32))
    return Workload(workload.arrival_s[mask], workload.model_id[mask], workload.duration_s, workload.num_models)


class PlacementSearch:
    """Algorithm 2 on one instance and workload.

    Parameters
    ----------
    instance : AlpaInstance
        Cluster, models, SLOs, latency model.
    workload : Workload
        What the search optimises (normally ``instance.train``).
    max_pp, max_op : int
        Config limits (reference 8 and 4).
    selector : callable, optional
        ``selector(ctx, configs) -> Selection``; default :func:`fast_greedy`.
    reference_loop : bool
        Run the reference's loop (no per-bucket workloads, no memoisation); for benchmarks.
    threads : int
        Threads that run the selector on a bucket's group partitions at once (the simulator's kernel
        releases the GIL); the answer is the same for every thread count.
    """

    def __init__(
        self,
        instance,
        workload: Workload,
        *,
        max_pp: int = 8,
        max_op: int = 4,
        selector=fast_greedy,
        reference_loop: bool = False,
        prune_monotone: bool = True,
        threads: int = 1,
    ) -> None:
        if threads < 1:
            raise InputError("threads must be >= 1", field="threads", value=threads)
        self.threads = int(threads)
        self.instance = instance
        self.workload = workload
        self.max_pp = max_pp
        self.max_op = max_op
        self.selector = selector
        self.reference_loop = reference_loop
        self.prune_monotone = prune_monotone
        self.splits_evaluated = 0
        self.total_requests = max(workload.num_requests, 1)
        self._full_sim = Simulator(instance, workload)
        self._contexts: dict[tuple[int, ...], SelectionContext] = {}
        self._memo: dict[tuple[tuple[int, ...], int], BucketAnswer] = {}
        self.num_simulations = 0

    def _context(self, bucket: Sequence[int]) -> SelectionContext:
        key = tuple(bucket)
        ctx = self._contexts.get(key)
        if ctx is None:
            if self.reference_loop:
                sim = self._full_sim
            else:
                sim = Simulator(self.instance, _workload_subset(self.workload, bucket))
            ctx = SelectionContext(self.instance, sim, bucket)
            self._contexts[key] = ctx
        return ctx

    def solve_bucket(self, bucket: Sequence[int], num_gpus: int) -> BucketAnswer:
        """Best placement of ``bucket``'s models on ``num_gpus`` devices over all group partitions."""
        key = (tuple(bucket), num_gpus)
        if not self.reference_loop and key in self._memo:
            return self._memo[key]
        ctx = self._context(bucket)
        partitions = list(group_partitions(self.instance.cluster, num_gpus, self.max_pp, self.max_op))
        if self.threads > 1:
            ctx.simulator.prepare({c for configs in partitions for c in configs})

        def select(configs: list[ParallelConfig]) -> tuple[Selection, int]:
            own = ctx.fork()
            return self.selector(own, configs), own.num_simulations

        best = None
        for sel, n in parallel_map(select, partitions, self.threads):
            ctx.num_simulations += n
            self.num_simulations += n
            if best is None or sel.score > best.score:
                best = sel
        if best is None:
            ans = BucketAnswer([], 0.0, 0.0, 0)
        else:
            res = best.result
            good = float(np.asarray(res.model_good, dtype=float)[list(bucket)].sum())
            mean = float(res.latency_mean_s) if good > 0 else 0.0
            ans = BucketAnswer(list(best.placement.groups), good, mean * good, best.placement.num_replicas)
        if not self.reference_loop:
            self._memo[key] = ans
        return ans

    def _combine(self, answers: Sequence[BucketAnswer]) -> float:
        good = sum(a.good for a in answers)
        mean_latency = sum(a.latency_sum_s for a in answers) / max(good, 1.0)
        reps = sum(a.num_replicas for a in answers)
        return good / self.total_requests - mean_latency * LATENCY_TIEBREAK + reps * REPLICA_TIEBREAK

    def _simulate(self, placement: Placement) -> tuple[float, float]:
        res = self._full_sim.run(placement)
        self.num_simulations += 1
        return score(res, placement), float(res.attainment)

    def _all_splits(self, buckets: list[list[int]], splits: list[tuple[int, ...]]):
        best = None
        for split in splits:
            answers = [self.solve_bucket(b, k) for b, k in zip(buckets, split, strict=True)]
            groups = [g for a in answers for g in a.groups]
            if self.reference_loop:
                sc, _ = self._simulate(Placement(tuple(groups)))
            else:
                sc = self._combine(answers)
            if best is None or sc > best[0]:
                best = (sc, split, groups)
        self.splits_evaluated = len(splits)
        return best

    def _best_first_splits(self, buckets, splits, rates, lats):
        """Best-first search over splits, pruned by monotone upper bounds on each bucket's good requests.

        ``UB(b, n)`` is the smallest good count found for bucket ``b`` on ``n' >= n`` devices (or all of its
        requests if none was evaluated yet); a split's bound is the sum over its buckets. Splits are taken in
        order of decreasing bound (ties: closest to the rate-proportional split), their buckets solved
        (memoised), until no unevaluated split's bound exceeds the best good count found. This returns a split of
        maximum good count among ``splits`` whenever every bucket's good count is nondecreasing in its device
        count, an assumption of the pruning (see module docstring), not a theorem.
        """
        totals = [float(self._context(b).requests[b].sum()) for b in buckets]
        share = np.asarray(rates) / max(sum(rates), 1e-12)
        inv = 1.0 / np.asarray(lats)

        def distance(split):
            t = np.asarray(split) * inv
            return float(np.abs(t / t.sum() - share).max())

        order = sorted(range(len(splits)), key=lambda i: distance(splits[i]))
        pending = set(order)
        best = None  # (good, score, split, groups)
        while pending:

            def bound(i):
                tot = 0.0
                for bi, (b, k) in enumerate(zip(buckets, splits[i], strict=True)):
                    vals = [a.good for (key, kk), a in self._memo.items() if key == tuple(b) and kk >= k]
                    tot += min(vals) if vals else totals[bi]
                return tot

            i = max(order, key=lambda j: (bound(j), -order.index(j)) if j in pending else (-1.0, 0))
            if i not in pending:
                break
            if best is not None and bound(i) <= best[0]:
                break
            pending.discard(i)
            answers = [self.solve_bucket(b, k) for b, k in zip(buckets, splits[i], strict=True)]
            good = sum(a.good for a in answers)
            sc = self._combine(answers)
            if best is None or (good, sc) > (best[0], best[1]):
                best = (good, sc, splits[i], [g for a in answers for g in a.groups])
        self.splits_evaluated = len(splits) - len(pending)
        return best[1:] if best is not None else None

    def run(self, use_buckets: bool = True) -> SearchResult:
        """Search; with ``use_buckets`` the bucketed search is compared with the single-bucket one."""
        t0 = time.perf_counter()
        n = self.instance.cluster.num_gpus
        all_models = list(range(len(self.instance.models)))
        buckets = model_buckets(self.instance) if use_buckets else [all_models]
        candidates: list[tuple[float, tuple[int, ...], list[Group], list[list[int]]]] = []
        num_splits = 0
        if len(buckets) > 1:
            counts = self.workload.counts()
            rates = [float(counts[b].sum()) for b in buckets]
            lats = [self.instance.latency.single_gpu_latency_s(self.instance.models[b[0]]) for b in buckets]
            splits = device_splits(n, rates, lats, self.instance.cluster.gpus_per_node)
            num_splits = len(splits)
            if self.reference_loop or not self.prune_monotone:
                best_split = self._all_splits(buckets, splits)
            else:
                best_split = self._best_first_splits(buckets, splits, rates, lats)
            if best_split is not None:
                candidates.append((*best_split, buckets))
        single = self.solve_bucket(all_models, n)
        candidates.append((self._combine([single]), (n,), single.groups, [all_models]))
        finals = []
        for _, split, groups, bks in candidates:
            p = Placement(tuple(groups))
            sc, att = self._simulate(p)
            finals.append((sc, att, p, split, bks))
        sc, att, p, split, bks = max(finals, key=lambda t: t[0])
        return SearchResult(
            placement=p,
            score=sc,
            attainment=att,
            buckets=bks,
            split=split,
            num_simulations=self.num_simulations,
            num_splits=num_splits,
            wall_s=time.perf_counter() - t0,
            stats={
                "splits_evaluated": self.splits_evaluated,
                "bucketed_score": finals[0][0] if len(finals) > 1 else None,
                "single_score": finals[-1][0],
            },
        )


def alpaserve_search(instance, workload: Workload | None = None, *, use_buckets: bool = True, **kwargs) -> SearchResult:
    """Run Algorithm 2 (``mp-search-sep`` with buckets, ``mp-search`` without) on ``workload`` (default train)."""
    return PlacementSearch(instance, workload if workload is not None else instance.train, **kwargs).run(use_buckets)
