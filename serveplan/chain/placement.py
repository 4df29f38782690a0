"""Block placements, server chains and cache allocations (Sun, He, Hou 2026, "System model").

Conventions
-----------
* Servers are 0-based indices into ``instance.servers``; blocks are 1-based, 1..L.
* A placement gives each server j one contiguous block range {a_j, ..., a_j + m_j - 1}; (a_j, m_j) = (0, 0)
  means j is unused.
* A chain is a sequence of servers and the number of blocks m_ij each one processes. Each block is processed by
  the first server on the chain that hosts it, so server j always runs up to its last block; (i, j) may be
  consecutive iff a_j <= a_i + m_i <= a_j + m_j - 1, and then m_ij = a_j + m_j - a_i - m_i.
* The dummy source j_0 "hosts block 0" and the dummy sink j_{J+1} "hosts block L+1"; in edge lists they are
  :data:`SOURCE` and :data:`SINK`.
* A cache allocation c_k reserves room for c_k concurrent jobs on chain k: m_ij * c_k cache slots on each of
  its servers; server j has M~_j = floor((M_j - s_m m_j) / s_c) slots (:func:`residual_slots`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serveplan.chain.instance import ChainInstance
from serveplan.errors import InputError

SOURCE = -1
"""Index of the dummy source server j_0 in edge lists."""
SINK = -2
"""Index of the dummy sink server j_{J+1} in edge lists."""

SLOT_TOLERANCE = 1e-9
"""Relative slack when flooring memory into cache slots, so (2.0 - 1.0) / 0.1 gives 10 slots, not 9."""


def _int_tuple(values: Any, field: str, *, minimum: int) -> tuple[int, ...]:
    if isinstance(values, tuple | list | np.ndarray) and len(values) > 0:
        arr = np.asarray(values)
        if arr.ndim == 1 and arr.dtype.kind in "iu" and arr.min() >= minimum:  # fast path: one vectorised check
            return tuple(arr.tolist())
    try:
        items = tuple(values)
    except TypeError:
        raise InputError("must be a list of integers", field=field, value=values) from None
    out = []
    for i, v in enumerate(items):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or int(v) < minimum:
            raise InputError(f"must be an integer >= {minimum}", field=f"{field}[{i}]", value=v)
        out.append(int(v))
    return tuple(out)


@dataclass(frozen=True)
class Placement:
    """A block placement (a_j, m_j) for every server; (0, 0) marks an unused server.

    Parameters
    ----------
    first_block : tuple of int
        a_j, 1-based first hosted block (0 when unused).
    num_blocks : tuple of int
        m_j, number of hosted blocks (0 when unused).
    """

    first_block: tuple[int, ...]
    num_blocks: tuple[int, ...]

    def __post_init__(self) -> None:
        a = _int_tuple(self.first_block, "first_block", minimum=0)
        m = _int_tuple(self.num_blocks, "num_blocks", minimum=0)
        if len(a) != len(m):
            raise InputError("first_block and num_blocks differ in length", field="num_blocks", value=(len(a), len(m)))
        mismatch = np.flatnonzero((np.asarray(a) == 0) != (np.asarray(m) == 0)) if a else ()
        if len(mismatch):
            j = int(mismatch[0])
            raise InputError(
                "a server is either unused (0, 0) or hosts >= 1 block from block >= 1",
                field=f"placement[{j}]",
                value=(a[j], m[j]),
            )
        object.__setattr__(self, "first_block", a)
        object.__setattr__(self, "num_blocks", m)

    @property
    def num_servers(self) -> int:
        """Number of servers the placement covers."""
        return len(self.first_block)

    def last_block(self, j: int) -> int:
        """a_j + m_j - 1 (or -1 for an unused server)."""
        return self.first_block[j] + self.num_blocks[j] - 1 if self.num_blocks[j] else -1

    def used_servers(self) -> list[int]:
        """Indices of servers that host at least one block."""
        return [j for j, m in enumerate(self.num_blocks) if m > 0]

    @classmethod
    def unused(cls, num_servers: int) -> Placement:
        """The placement that uses no server."""
        return cls((0,) * num_servers, (0,) * num_servers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"first_block": list(self.first_block), "num_blocks": list(self.num_blocks)}


@dataclass(frozen=True)
class Chain:
    """A server chain: servers in processing order and the blocks m_ij each one processes.

    Parameters
    ----------
    servers : tuple of int
        Distinct server indices, first to last.
    blocks : tuple of int
        m_ij >= 1 for each server, in the same order; they sum to L in a complete chain.
    """

    servers: tuple[int, ...]
    blocks: tuple[int, ...]

    def __post_init__(self) -> None:
        s = _int_tuple(self.servers, "servers", minimum=0)
        b = _int_tuple(self.blocks, "blocks", minimum=1)
        if not s:
            raise InputError("a chain needs at least one server", field="servers", value=[])
        if len(s) != len(b):
            raise InputError("servers and blocks differ in length", field="blocks", value=(len(s), len(b)))
        if len(set(s)) != len(s):
            raise InputError("a chain visits each server at most once", field="servers", value=s)
        object.__setattr__(self, "servers", s)
        object.__setattr__(self, "blocks", b)

    @classmethod
    def trusted(cls, servers: tuple[int, ...], blocks: tuple[int, ...]) -> Chain:
        """A chain from tuples of Python ints that an algorithm built correctly; skips validation (hot loops)."""
        chain = object.__new__(cls)
        object.__setattr__(chain, "servers", servers)
        object.__setattr__(chain, "blocks", blocks)
        return chain

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"servers": list(self.servers), "blocks": list(self.blocks)}


@dataclass(frozen=True)
class ChainSolution:
    """A placement, the chains used for dispatching and the cache allocation c_k of each chain.

    Parameters
    ----------
    placement : Placement
    chains : tuple of Chain
    capacities : tuple of int
        c_k >= 0, the number of concurrent jobs reserved on chain k.
    """

    placement: Placement
    chains: tuple[Chain, ...]
    capacities: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.placement, Placement):
            raise InputError("must be a Placement", field="placement", value=self.placement)
        chains = tuple(self.chains)
        for k, ch in enumerate(chains):
            if not isinstance(ch, Chain):
                raise InputError("must be a Chain", field=f"chains[{k}]", value=ch)
        caps = _int_tuple(self.capacities, "capacities", minimum=0)
        if len(caps) != len(chains):
            raise InputError("one capacity per chain", field="capacities", value=(len(caps), len(chains)))
        object.__setattr__(self, "chains", chains)
        object.__setattr__(self, "capacities", caps)

    @property
    def total_capacity(self) -> int:
        """C = sum_k c_k, the number of job servers (the paper's surrogate objective)."""
        return int(sum(self.capacities))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "placement": self.placement.to_dict(),
            "chains": [{**ch.to_dict(), "capacity": c} for ch, c in zip(self.chains, self.capacities, strict=True)],
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> ChainSolution:
        """Inverse of :meth:`to_dict`; errors name ``source`` and the field.

        Also accepts a ``serveplan solve chain --save`` report, which nests the solution under ``"solution"``.
        """
        if isinstance(data, dict) and "placement" not in data and isinstance(data.get("solution"), dict):
            data = data["solution"]
        try:
            if not isinstance(data, dict):
                raise InputError("a solution must be an object", value=type(data).__name__)
            for key in ("placement", "chains"):
                if key not in data:
                    raise InputError("missing required field", field=key)
            p = data["placement"]
            if not isinstance(p, dict) or "first_block" not in p or "num_blocks" not in p:
                raise InputError("needs first_block and num_blocks lists", field="placement")
            placement = Placement(tuple(p["first_block"]), tuple(p["num_blocks"]))
            chains, caps = [], []
            for k, c in enumerate(data["chains"]):
                if not isinstance(c, dict) or not {"servers", "blocks", "capacity"} <= set(c):
                    raise InputError("needs servers, blocks and capacity", field=f"chains[{k}]")
                try:
                    chains.append(Chain(tuple(c["servers"]), tuple(c["blocks"])))
                except InputError as exc:
                    raise exc.relabel(source=None, field=f"chains[{k}].{exc.field}", hint=None) from None
                caps.append(c["capacity"])
            return cls(placement, tuple(chains), tuple(caps))
        except InputError as exc:
            raise exc.relabel(source=source) from None
        except TypeError as exc:
            raise InputError(f"malformed solution: {exc}", source=source) from None

    def save_json(self, path: str | Path) -> None:
        """Write the solution as JSON (``docs/schemas/chain_solution.schema.json``)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load_json(cls, path: str | Path) -> ChainSolution:
        """Read a solution written by :meth:`save_json` (or a ``solve chain --save`` report)."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except OSError as exc:
            raise InputError(f"cannot read file: {exc.strerror}", source=str(p)) from None
        except json.JSONDecodeError as exc:
            raise InputError(
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", source=str(p)
            ) from None
        return cls.from_dict(data, source=str(p))


# ---------------------------------------------------------------------------------------------------
# Functions of (instance, placement) used by the algorithms (verify.py re-derives all of this on its own).


def service_time_s(instance: ChainInstance, chain: Chain) -> float:
    """T_k = sum over the chain's servers of tau^c_j + tau^p_j * m_ij (seconds)."""
    tc = instance.comm_time_s
    tp = instance.compute_time_s
    idx = np.asarray(chain.servers)
    return float(np.sum(tc[idx] + tp[idx] * np.asarray(chain.blocks, dtype=float)))


def service_rates(instance: ChainInstance, chains: tuple[Chain, ...] | list[Chain]) -> np.ndarray:
    """mu_k = 1 / T_k for every chain (jobs per second per job server)."""
    return np.array([1.0 / service_time_s(instance, ch) for ch in chains], dtype=float)


def total_service_rate(instance: ChainInstance, solution: ChainSolution) -> float:
    """Total service rate nu = sum_k c_k / T_k (jobs per second)."""
    if not solution.chains:
        return 0.0
    return float(np.dot(service_rates(instance, solution.chains), np.asarray(solution.capacities, dtype=float)))


def slots_from_memory(free_memory_gb: np.ndarray | float, cache_memory_gb: float) -> np.ndarray:
    """floor(free / s_c) with a relative tolerance of :data:`SLOT_TOLERANCE` (float round-off)."""
    q = np.asarray(free_memory_gb, dtype=float) / cache_memory_gb
    return np.floor(q + SLOT_TOLERANCE * np.maximum(1.0, np.abs(q))).astype(np.int64)


def residual_slots(instance: ChainInstance, placement: Placement) -> np.ndarray:
    """M~_j = floor((M_j - s_m m_j) / s_c), cache slots left on each server (negative: blocks do not fit)."""
    m = np.asarray(placement.num_blocks, dtype=float)
    return slots_from_memory(instance.memory_gb - instance.block_memory_gb * m, instance.cache_memory_gb)


def blocks_after(placement: Placement, i: int, j: int) -> int:
    """m_ij = a_j + m_j - a_i - m_i, the blocks j processes right after i (i may be :data:`SOURCE`).

    Returns 0 when (i, j) is not an edge of the routing graph.
    """
    aj, mj = placement.first_block[j], placement.num_blocks[j]
    if mj == 0:
        return 0
    next_block = 1 if i == SOURCE else placement.first_block[i] + placement.num_blocks[i]
    if i != SOURCE and placement.num_blocks[i] == 0:
        return 0
    if aj <= next_block <= aj + mj - 1:
        return aj + mj - next_block
    return 0


def routing_edges(instance: ChainInstance, placement: Placement) -> list[tuple[int, int, int]]:
    """Edges (i, j, m_ij) of the routing graph G_{a,m}, with :data:`SOURCE`/:data:`SINK` for the dummies.

    Edges into the sink carry m = 0 (no blocks, no cost). O(J^2); meant for small instances and tests.
    """
    L = instance.num_blocks
    used = placement.used_servers()
    edges = []
    for j in used:
        if placement.first_block[j] == 1:
            edges.append((SOURCE, j, placement.num_blocks[j]))
    for i in used:
        for j in used:
            if i != j:
                mij = blocks_after(placement, i, j)
                if mij > 0:
                    edges.append((i, j, mij))
        if placement.last_block(i) == L:
            edges.append((i, SINK, 0))
    return edges


def chain_through(placement: Placement, servers: tuple[int, ...] | list[int]) -> Chain:
    """The chain that visits ``servers`` in order, with m_ij from the placement.

    Raises
    ------
    InputError
        If two consecutive servers are not an edge of the routing graph.
    """
    blocks = []
    prev = SOURCE
    for j in servers:
        mij = blocks_after(placement, prev, j)
        if mij <= 0:
            raise InputError("servers cannot be consecutive on a chain", field="chain", value=(prev, j))
        blocks.append(mij)
        prev = j
    return Chain(tuple(servers), tuple(blocks))


def chains_of_placement(instance: ChainInstance, placement: Placement, max_chains: int = 100_000) -> list[Chain]:
    """Every source-to-sink path of G_{a,m} (the chain set K_{a,m}), by depth-first search.

    The graph is a DAG (each edge advances the next unprocessed block), so the search terminates; the
    number of chains can be exponential in J, hence ``max_chains``.

    Raises
    ------
    InputError
        If more than ``max_chains`` chains exist.
    """
    L = instance.num_blocks
    succ: dict[int, list[tuple[int, int]]] = {}
    for i, j, mij in routing_edges(instance, placement):
        succ.setdefault(i, []).append((j, mij))
    out: list[Chain] = []

    def walk(node: int, servers: list[int], blocks: list[int]) -> None:
        for j, mij in succ.get(node, []):
            if j == SINK:
                if placement.last_block(node) == L and servers:
                    out.append(Chain(tuple(servers), tuple(blocks)))
                    if len(out) > max_chains:
                        raise InputError("too many chains to enumerate", field="max_chains", value=max_chains)
                continue
            walk(j, [*servers, j], [*blocks, mij])

    walk(SOURCE, [], [])
    return out


def slot_usage(instance: ChainInstance, solution: ChainSolution) -> np.ndarray:
    """Cache slots each server spends on the allocation: sum over chains through j of m_ij * c_k."""
    used = np.zeros(instance.num_servers, dtype=np.int64)
    for ch, c in zip(solution.chains, solution.capacities, strict=True):
        for j, mij in zip(ch.servers, ch.blocks, strict=True):
            used[j] += mij * c
    return used
