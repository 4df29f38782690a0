"""Brute-force enumerators shared by the proof checks (test-only, independent of the project's code)."""

from __future__ import annotations

from collections.abc import Iterator


def disjoint_families(J: int) -> Iterator[list[tuple[int, ...]]]:
    """All families of pairwise disjoint non-empty subsets of range(J) (restricted-growth labels, 0 = unused)."""

    def rec(j: int, labels: list[int], used: int):
        if j == J:
            yield [tuple(i for i in range(J) if labels[i] == lab) for lab in range(1, used + 1)]
            return
        for lab in range(used + 2):
            labels.append(lab)
            yield from rec(j + 1, labels, max(used, lab))
            labels.pop()

    yield from rec(0, [], 0)
