"""Random feasible placements: the comparator of GBP-CR's unit test (Sun, He, Hou 2026; digest section 5.5).

A random placement visits the servers in a uniformly random order instead of increasing amortized time, and
otherwise forms disjoint chains with GBP-CR's rules (same c, same last-server and stop rules). Orders whose
chains never reach the scaled rate are redrawn, up to ``max_tries`` times. Seeded: same instance, c and seed give
the same placements.
"""

from __future__ import annotations

import numpy as np

from heuristics.gbp_cr import GbpCrResult, gbp_cr, max_blocks
from serveplan.chain.instance import ChainInstance


def random_placement(
    instance: ChainInstance,
    c: int,
    rng: np.random.Generator,
    *,
    last_server: str = "shift",
    stop_rule: str = "rate",
    max_tries: int = 100,
) -> GbpCrResult | None:
    """One random feasible placement at cache reservation ``c`` (None if ``max_tries`` orders all fail)."""
    if int(max_blocks(instance, c).sum()) < instance.num_blocks:
        return None  # no order can place the blocks at this c
    for _ in range(max_tries):
        order = rng.permutation(instance.num_servers)
        run = gbp_cr(instance, c, last_server=last_server, stop_rule=stop_rule, order=order)
        if run.feasible:
            return run
    return None


def random_placements(
    instance: ChainInstance,
    c: int,
    n: int,
    seed: int = 0,
    *,
    last_server: str = "shift",
    stop_rule: str = "rate",
    max_tries: int = 100,
) -> list[GbpCrResult]:
    """``n`` independent random feasible placements (fewer if some draws find none), seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        run = random_placement(instance, c, rng, last_server=last_server, stop_rule=stop_rule, max_tries=max_tries)
        if run is not None:
            out.append(run)
    return out
