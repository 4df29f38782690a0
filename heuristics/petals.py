"""PETALS (Borzunov et al., ACL 2023) as the chain-serving baseline of Sun, He, Hou 2026.

Re-implemented from PETALS' published algorithms (digest section 5.1), in the units of a
:class:`~serveplan.chain.instance.ChainInstance`:

Number of blocks (``Server._choose_num_blocks``)
    m_j = min(L, floor((M_j - autograd_gb) / (s_m + pool_slots_per_block * s_c))): each hosted block comes
    with a fixed attention-cache pool of ``cache_tokens`` tokens, i.e. ``cache_tokens / max_length`` job
    slots of s_c GB (default 4096 / 2048 = 2), independent of load. ``low_perf_block_cap`` optionally caps
    low-perf (smaller-memory) servers (the authors' simulator caps them at 4 blocks; off by default).
Block selection (``block_selection.choose_best_blocks``)
    Servers join one by one in a random order (seeded); each picks the window [i, i + m_j) whose sorted
    per-block swarm throughputs are lexicographically smallest (ties: smallest i). A server's throughput is
    min(1 / (tau^p_j (m_j + 1) / 2), 1 / tau^c_j) jobs per second: PETALS' compute throughput divided by the
    average number of blocks a request uses, capped by its network throughput. ``selection="sum"`` uses the
    smallest window sum instead (the authors' MATLAB v4 simulator).
Rebalancing (``should_choose_other_blocks``)
    Repeated rounds over the servers in random order: a server moves when, after simulating its move and
    the ensuing moves of all others, min-throughput(before) / min-throughput(after) < balance_quality - eps
    (0.75, 1e-3). Stops when a round moves nobody (at most ``max_rebalance_rounds``).
Routing (``sequence_manager._make_sequence_with_min_latency``), per request
    Shortest path over "next block" positions: using server j from block p costs its share of the job's
    time tau^c_j + tau^p_j (a_j + m_j - p) (a server always runs to its last block), plus
    ``alloc_penalty_s`` when the server's pool lacks the slots (PETALS adds 10 s per token step; here the
    penalty is per job and defaults to 10 s * mean output tokens). The cache belief counts every request
    routed to the server and not finished. The request then waits until all its servers can allocate.

The paper's PETALS numbers come from a real deployment; our simulation keeps PETALS' rules but uses the
chain model's service times (docs/chain_serving.md lists the differences).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from serveplan.chain.instance import ChainInstance
from serveplan.chain.path_simulator import PlacedRouter, Route, ServerState, placement_only_result
from serveplan.chain.placement import Placement
from serveplan.errors import InputError
from serveplan.registry import Budget, MethodResult

BALANCE_QUALITY = 0.75
EPS = 1e-3


@dataclass(frozen=True)
class PetalsOptions:
    """PETALS parameters.

    Parameters
    ----------
    cache_tokens : int, default 4096
        attn_cache_tokens: tokens of attention cache PETALS allocates per hosted block.
    max_length : int, default 2048
        Tokens one request reserves (its cache slot covers max_length tokens; s_c is sized for it).
    autograd_gb : float, default 2.147
        Memory PETALS keeps for autograd: 2 GiB * hidden / 14336 (2.147 GB for BLOOM-176B; 0.61 for LLaMA-2-7B).
    low_perf_block_cap : int or None
        Cap on the blocks of low-perf servers, those with less memory than the largest server (the paper's
        two GPU types; None: no cap).
    selection : str, default "lexicographic"
        ``lexicographic`` (PETALS) or ``sum`` (authors' MATLAB v4 simulator).
    rebalance : bool, default True
        Run PETALS' rebalancing after all servers joined.
    max_rebalance_rounds : int, default 20
    alloc_penalty_s : float or None
        Routing penalty for a server without free cache; default 10 s * mean_output_tokens.
    mean_output_tokens : float, default 20
    """

    cache_tokens: int = 4096
    max_length: int = 2048
    autograd_gb: float = 2.0 * 2**30 / 1e9
    low_perf_block_cap: int | None = None
    selection: str = "lexicographic"
    rebalance: bool = True
    max_rebalance_rounds: int = 20
    alloc_penalty_s: float | None = None
    mean_output_tokens: float = 20.0

    def __post_init__(self) -> None:
        if self.selection not in ("lexicographic", "sum"):
            raise InputError("must be 'lexicographic' or 'sum'", field="selection", value=self.selection)
        if self.cache_tokens < self.max_length:
            raise InputError("cache pool must hold one request", field="cache_tokens", value=self.cache_tokens)

    @property
    def slots_per_block(self) -> int:
        """Job slots in each hosted block's cache pool."""
        return self.cache_tokens // self.max_length

    @property
    def penalty_s(self) -> float:
        """The routing penalty in seconds per job."""
        return self.alloc_penalty_s if self.alloc_penalty_s is not None else 10.0 * self.mean_output_tokens

    @classmethod
    def from_dict(cls, options: dict) -> PetalsOptions:
        """Options from a budget's ``options`` (keys of other methods are ignored; CLI strings are converted)."""
        kinds = {
            "cache_tokens": int,
            "max_length": int,
            "autograd_gb": float,
            "low_perf_block_cap": int,
            "selection": str,
            "rebalance": bool,
            "max_rebalance_rounds": int,
            "alloc_penalty_s": float,
            "mean_output_tokens": float,
        }
        values = {}
        for key, kind in kinds.items():
            if key not in options or options[key] is None:
                continue
            raw = options[key]
            try:
                if kind is bool:
                    value = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on")
                else:
                    value = kind(raw)
            except (TypeError, ValueError):
                raise InputError(f"must be {kind.__name__}", field=f"options.{key}", value=raw) from None
            values[key] = value
        return cls(**values)


def petals_num_blocks(instance: ChainInstance, options: PetalsOptions) -> np.ndarray:
    """PETALS' block count per server (0 when not even one block with its cache pool fits)."""
    per_block = instance.block_memory_gb + options.slots_per_block * instance.cache_memory_gb
    m = np.floor((instance.memory_gb - options.autograd_gb) / per_block + 1e-9).astype(np.int64)
    m = np.clip(m, 0, instance.num_blocks)
    if options.low_perf_block_cap is not None:
        low = instance.memory_gb < instance.memory_gb.max() * (1 - 1e-9)
        m = np.where(low, np.minimum(m, options.low_perf_block_cap), m)
    return m


def server_throughput(instance: ChainInstance, num_blocks: np.ndarray) -> np.ndarray:
    """min(1 / (tau^p_j (m_j + 1) / 2), 1 / tau^c_j): PETALS' announced throughput in jobs per second."""
    compute = 1.0 / (instance.compute_time_s * (num_blocks + 1) / 2.0)
    comm = np.where(instance.comm_time_s > 0, 1.0 / np.maximum(instance.comm_time_s, 1e-300), np.inf)
    return np.minimum(compute, comm)


def choose_best_start(throughputs: np.ndarray, length: int, selection: str = "lexicographic") -> int:
    """PETALS ``_choose_best_start``: the window start whose sorted throughputs are lexicographically smallest.

    Ties go to the smallest start (Python's ``min`` over (key, start) pairs, as in PETALS). With
    ``selection="sum"`` the smallest window sum wins instead. O(L m log m).
    """
    L = len(throughputs)
    if not 1 <= length <= L:
        raise InputError("window length must lie in 1..L", field="length", value=length)
    if selection == "sum":
        sums = [float(np.sum(throughputs[i : i + length])) for i in range(L - length + 1)]
        return int(np.argmin(sums))
    options = [(tuple(sorted(throughputs[i : i + length].tolist())), i) for i in range(L - length + 1)]
    return min(options)[1]


def _swarm_throughput(L: int, starts: dict[int, int], lengths: np.ndarray, thr: np.ndarray) -> np.ndarray:
    out = np.zeros(L)
    for j, s in starts.items():
        out[s : s + lengths[j]] += thr[j]
    return out


def should_choose_other_blocks(
    j: int,
    starts: dict[int, int],
    lengths: np.ndarray,
    thr: np.ndarray,
    L: int,
    rng: np.random.Generator,
    selection: str = "lexicographic",
    balance_quality: float = BALANCE_QUALITY,
) -> bool:
    """PETALS ``should_choose_other_blocks`` for server ``j`` (does not change ``starts``)."""
    spans = dict(starts)
    tp = _swarm_throughput(L, spans, lengths, thr)
    initial = tp.min()
    s, m = spans[j], lengths[j]
    tp[s : s + m] -= thr[j] * (1 + EPS)
    new = choose_best_start(tp, int(m), selection)
    if new == s:
        return False
    tp[s : s + m] += thr[j] * EPS
    spans[j] = new
    tp[new : new + m] += thr[j]
    moved = True
    rounds = 0
    while moved and rounds < 100:
        rounds += 1
        moved = False
        for p in rng.permutation(list(spans)):
            p = int(p)
            s, m = spans[p], int(lengths[p])
            tp[s : s + m] -= thr[p] * (1 + EPS)
            ns = choose_best_start(tp, m, selection)
            tp[s : s + m] += thr[p] * EPS
            if ns != s:
                spans[p] = ns
                moved = True
            tp[spans[p] : spans[p] + m] += thr[p]
    new_min = tp.min()
    if new_min < initial or new_min < EPS:
        return False
    return initial / new_min < balance_quality - EPS


def petals_placement(instance: ChainInstance, options: PetalsOptions, seed: int) -> Placement:
    """Block counts, block selection in join order, then rebalancing (PETALS' swarm formation).

    Returns a :class:`Placement`; servers whose block count is 0 stay unused.
    """
    L = instance.num_blocks
    rng = np.random.default_rng(seed)
    m = petals_num_blocks(instance, options)
    thr = server_throughput(instance, m)
    order = [int(j) for j in rng.permutation(instance.num_servers) if m[j] > 0]
    starts: dict[int, int] = {}
    tp = np.zeros(L)
    for j in order:
        s = choose_best_start(tp, int(m[j]), options.selection)
        starts[j] = s
        tp[s : s + m[j]] += thr[j]
    if options.rebalance:
        for _ in range(options.max_rebalance_rounds):
            any_move = False
            for j in rng.permutation(order):
                j = int(j)
                if should_choose_other_blocks(j, starts, m, thr, L, rng, options.selection):
                    tp = _swarm_throughput(L, starts, m, thr)
                    tp[starts[j] : starts[j] + m[j]] -= thr[j]
                    starts[j] = choose_best_start(tp, int(m[j]), options.selection)
                    any_move = True
            if not any_move:
                break
    a = [0] * instance.num_servers
    mm = [0] * instance.num_servers
    for j, s in starts.items():
        a[j] = s + 1
        mm[j] = int(m[j])
    return Placement(tuple(a), tuple(mm))


class PetalsRouter(PlacedRouter):
    """PETALS' min-latency routing with the cache penalty, over a placement (see the module docstring)."""

    def __init__(self, instance: ChainInstance, placement: Placement, penalty_s: float) -> None:
        super().__init__(instance, placement)
        self.penalty_s = float(penalty_s)

    def route(self, now: float, request: int, state: ServerState) -> Route | None:
        """Dynamic program over next-block positions 1..L+1 (edges only move forward)."""

        def edge(j: int, p: int, b: int, cost_to_p: float) -> tuple[float, None]:
            cost = self.comm[j] + self.compute[j] * b
            if state.assigned[j] + b > state.slot_capacity[j]:
                cost += self.penalty_s
            return cost_to_p + cost, None

        path = self.shortest_path(edge)
        if path is None:
            return None
        servers, blocks, _ = path
        return Route(servers, blocks, now)


def slot_capacity(instance: ChainInstance, placement: Placement, options: PetalsOptions) -> np.ndarray:
    """Each server's PETALS cache pool in job slots: slots_per_block * m_j."""
    return options.slots_per_block * np.asarray(placement.num_blocks, dtype=np.int64)


def solve_petals(instance: ChainInstance, budget: Budget, param: str | None = None) -> MethodResult:
    """The ``petals`` method: PETALS' swarm placement; routing happens at simulation time.

    The solution holds the placement and no chains (PETALS reserves no per-chain cache); ``verified`` means
    every constraint except the rate target holds (placement, coverage, memory with PETALS' own pools).
    ``info["routing"] = "petals"`` tells the ``simulate`` evaluator to route per request.
    """
    t0 = time.perf_counter()
    options = PetalsOptions.from_dict(budget.options)
    placement = petals_placement(instance, options, budget.seed)
    m = np.asarray(placement.num_blocks, dtype=float)
    pool_ok = bool(
        np.all(
            instance.block_memory_gb * m + options.slots_per_block * m * instance.cache_memory_gb
            <= instance.memory_gb + 1e-9
        )
    )
    extra = [] if pool_ok else ["memory: PETALS cache pools do not fit"]
    info = {
        "routing": "petals",
        "slot_capacity": slot_capacity(instance, placement, options).tolist(),
        "penalty_s": options.penalty_s,
        "options": options.__dict__,
    }
    return placement_only_result("petals", instance, placement, extra, t0, info)
