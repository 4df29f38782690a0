"""Cache allocation for given chains: the multidimensional-knapsack ILP (Sun, He, Hou 2026, digest section 2.3).

With the placement and a chain set K fixed, T_k and w_jk (the blocks chain k processes on server j, 0 if it
does not visit j) are constants and the problem is

    min sum_k c_k   s.t.  sum_k c_k / T_k >= lambda / rho_bar,
                          sum_k w_jk c_k <= M~_j = floor((M_j - s_m m_j) / s_c)   for every server j,
                          c_k in N.

This is exactly the cache-allocation part of BPCA restricted to the chains in K (with K = every chain of the
placement it is BPCA for a fixed placement). NP-hard in general (Theorem 3.1, reduction from MKP); the ILP
is small (|K| integer variables, J + 1 rows) and solved exactly by any backend.
"""

from __future__ import annotations

import pyomo.environ as pyo

from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import Chain, ChainSolution, Placement, blocks_after, residual_slots, service_time_s
from serveplan.errors import InputError


def check_chains(instance: ChainInstance, placement: Placement, chains: list[Chain]) -> None:
    """Raise :class:`InputError` unless every chain is a source-to-sink path of the placement's routing graph."""
    if placement.num_servers != instance.num_servers:
        raise InputError(
            "placement and instance differ in server count",
            field="placement",
            value=(placement.num_servers, instance.num_servers),
        )
    L = instance.num_blocks
    for k, ch in enumerate(chains):
        prev = -1
        done = 0
        for j, mij in zip(ch.servers, ch.blocks, strict=True):
            if not 0 <= j < instance.num_servers or blocks_after(placement, prev, j) != mij:
                raise InputError(
                    "chain does not follow the placement's routing graph", field=f"chains[{k}]", value=ch.to_dict()
                )
            done += mij
            prev = j
        if done != L or placement.last_block(prev) != L:
            raise InputError("chain does not end at block L", field=f"chains[{k}]", value=ch.to_dict())


def build_model(
    instance: ChainInstance, placement: Placement, chains: list[Chain] | tuple[Chain, ...]
) -> pyo.ConcreteModel:
    """The cache-allocation ILP over ``chains`` under ``placement``.

    Parameters
    ----------
    instance : ChainInstance
    placement : Placement
    chains : sequence of Chain
        Chains of the placement's routing graph (checked; an invalid chain raises :class:`InputError`).

    Returns
    -------
    pyomo.ConcreteModel
        Integer c[k] with upper bounds min_j floor(M~_j / w_jk); attributes ``cache_placement`` and
        ``cache_chains`` for :func:`decode`. When some used server cannot hold its blocks (M~_j < 0) the model
        contains an unsatisfiable row, so the solver reports it infeasible.
    """
    chains = list(chains)
    check_chains(instance, placement, chains)
    slots = residual_slots(instance, placement)
    required = instance.required_rate
    m = pyo.ConcreteModel(name="chain_cache")
    m.cache_placement = placement
    m.cache_chains = chains
    K = range(len(chains))
    ub = []
    for ch in chains:
        cap = min(int(slots[j]) // mij for j, mij in zip(ch.servers, ch.blocks, strict=True))
        ub.append(max(cap, 0))
    m.c = pyo.Var(K, domain=pyo.NonNegativeIntegers, bounds=lambda _, k: (0, ub[k]))
    m.fit = pyo.Var(bounds=(0, 0))  # keeps rows with no chain well formed
    times = [service_time_s(instance, ch) for ch in chains]
    m.rate = pyo.Constraint(expr=sum(m.c[k] * (1.0 / (times[k] * required)) for k in K) + m.fit >= 1.0)
    usage: dict[int, dict[int, int]] = {j: {} for j in placement.used_servers()}
    for k, ch in enumerate(chains):
        for j, mij in zip(ch.servers, ch.blocks, strict=True):
            usage[j][k] = usage[j].get(k, 0) + mij
    m.slots = pyo.Constraint(
        list(usage), rule=lambda mm, j: sum(w * mm.c[k] for k, w in usage[j].items()) + mm.fit <= int(slots[j])
    )
    m.obj = pyo.Objective(expr=sum(m.c[k] for k in K) + m.fit, sense=pyo.minimize)
    return m


def decode(instance: ChainInstance, model: pyo.ConcreteModel) -> ChainSolution:
    """The placement with the chains that received c_k >= 1 and their capacities."""
    chains, caps = [], []
    for k, ch in enumerate(model.cache_chains):
        v = model.c[k].value
        c = round(v) if v is not None else 0
        if c >= 1:
            chains.append(ch)
            caps.append(int(c))
    return ChainSolution(model.cache_placement, tuple(chains), tuple(caps))
