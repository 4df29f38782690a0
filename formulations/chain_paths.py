"""Segments and segment paths: the combinatorial objects behind the path-based chain MILPs.

A *segment* (j, b, e) says that server j processes blocks b..e of a job; a *segment path* is a sequence of
segments (j_1, 1, e_1), (j_2, e_1 + 1, e_2), ..., (j_n, e_{n-1} + 1, L) with distinct servers. Under a
placement in which every j_t hosts a range [a_t, e_t] with a_t <= b_t (e_t being j_t's *last* block), the
path is exactly one chain of the routing graph G_{a,m} (Sun, He, Hou 2026, "System model"), and conversely
every chain is such a path; see ``docs/formulations_chain.md`` for the argument.

Placement options are (j, a, m): server j hosts blocks a..a+m-1. Option (j, a, m) leaves
``slots[j, m] = floor((M_j - s_m m) / s_c)`` cache slots (the same flooring as
:func:`serveplan.chain.placement.residual_slots`); it is allowed iff ``slots[j, m] >= 0``.

A segment (j, b, e) can carry a job only if some allowed option (j, a, e - a + 1) with a <= b leaves at least
e - b + 1 slots; slots decrease with m, so the best option is a = b and the test is
``slots[j, e - b + 1] >= e - b + 1``. Segments failing it force every path through them to capacity 0 in any
feasible solution, so leaving them out keeps the models exact (the *useful-segment cut-off*).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import slots_from_memory
from serveplan.errors import InputError


@dataclass(frozen=True)
class Segment:
    """Server ``server`` (0-based) processes blocks ``first..last`` (1-based, inclusive)."""

    server: int
    first: int
    last: int

    @property
    def num_blocks(self) -> int:
        """Number of blocks processed, e - b + 1."""
        return self.last - self.first + 1


@dataclass(frozen=True)
class SegmentPath:
    """A chain written as segments; ``time_s`` is its service time T_p (a constant of the path)."""

    segments: tuple[Segment, ...]
    time_s: float

    @property
    def servers(self) -> tuple[int, ...]:
        """Servers in processing order."""
        return tuple(s.server for s in self.segments)

    @property
    def blocks(self) -> tuple[int, ...]:
        """Blocks processed by each server (the chain's m_ij)."""
        return tuple(s.num_blocks for s in self.segments)

    @property
    def is_elementary(self) -> bool:
        """No server appears twice."""
        return len(set(self.servers)) == len(self.segments)


def option_slots(instance: ChainInstance) -> np.ndarray:
    """``slots[j, m]`` = floor((M_j - s_m m) / s_c) for m = 0..L (negative: m blocks do not fit on j).

    Shape (J, L + 1), integer. O(J L).
    """
    L = instance.num_blocks
    m = np.arange(L + 1, dtype=float)
    free = instance.memory_gb[:, None] - instance.block_memory_gb * m[None, :]
    return slots_from_memory(free, instance.cache_memory_gb)


def segment_time_s(instance: ChainInstance, seg: Segment) -> float:
    """tau^c_j + tau^p_j (e - b + 1)."""
    s = instance.servers[seg.server]
    return s.comm_time_s + s.compute_time_s * seg.num_blocks


def useful_segments(instance: ChainInstance, slots: np.ndarray | None = None) -> list[Segment]:
    """Every segment that can carry at least one job under some allowed option (see module docstring).

    O(J L^2).
    """
    slots = option_slots(instance) if slots is None else slots
    L = instance.num_blocks
    out = []
    for j in range(instance.num_servers):
        for b in range(1, L + 1):
            for e in range(b, L + 1):
                if slots[j, e - b + 1] >= e - b + 1:
                    out.append(Segment(j, b, e))
    return out


def path_capacity_bound(path: SegmentPath, slots: np.ndarray) -> int:
    """The path's capacity bound min over segments of floor(slots[j, e-b+1] / (e-b+1)) (never exceeded)."""
    return int(min(slots[s.server, s.num_blocks] // s.num_blocks for s in path.segments))


def iter_paths(instance: ChainInstance, segments: list[Segment]) -> Iterator[SegmentPath]:
    """Every elementary segment path built from ``segments`` (depth-first, in a deterministic order).

    The number of paths is exponential in J and L in general.
    """
    L = instance.num_blocks
    by_first: dict[int, list[Segment]] = {}
    for s in segments:
        by_first.setdefault(s.first, []).append(s)
    times = {s: segment_time_s(instance, s) for s in segments}
    stack: list[Segment] = []
    used: set[int] = set()

    def walk(b: int, t: float) -> Iterator[SegmentPath]:
        for s in by_first.get(b, []):
            if s.server in used:
                continue
            stack.append(s)
            used.add(s.server)
            if s.last == L:
                yield SegmentPath(tuple(stack), t + times[s])
            else:
                yield from walk(s.last + 1, t + times[s])
            stack.pop()
            used.discard(s.server)

    yield from walk(1, 0.0)


def enumerate_paths(instance: ChainInstance, max_paths: int = 20_000) -> list[SegmentPath]:
    """All elementary paths over the useful segments.

    Raises
    ------
    InputError
        If there are more than ``max_paths`` (use column generation for such instances).
    """
    out = []
    for p in iter_paths(instance, useful_segments(instance)):
        out.append(p)
        if len(out) > max_paths:
            raise InputError(
                "too many chains to enumerate",
                field="max_paths",
                value=max_paths,
                hint="raise max_paths or use mode='colgen'",
            )
    return out
