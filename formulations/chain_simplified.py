"""The simplified block-placement problem with cache reservation c, as an exact set-partitioning MILP.

Sun, He, Hou 2026 (digest section 2.4): every server j reserves cache for c jobs on each hosted block and
therefore hosts m_j(c) = min(floor(M_j / (s_m + s_c c)), L) blocks, contributing at most
t_j(c) = tau^c_j + tau^p_j m_j(c) to a chain's time. The problem is

    min |K|  s.t.  sum_k (sum_{j in J_k} t_j(c))^{-1} >= lambda / (rho_bar c),
                   sum_{j in J_k} m_j(c) >= L  for every k,   the J_k pairwise disjoint.

The rate row is nonlinear in a subset formulation; over *candidate subsets* it becomes linear. Candidates are
the minimal covering subsets S (sum_{S} m_j(c) >= L, but not after removing any one server). This keeps the
MILP exact: replacing a chosen covering subset by a minimal covering subset inside it keeps disjointness and
coverage, and only lowers sum t_j(c) (t_j(c) > 0), so some optimum uses minimal subsets only. The MILP

    min sum_S x_S  s.t.  sum_S x_S / T_S >= lambda / (rho_bar c),  sum_{S ∋ j} x_S <= 1,  x_S binary

(T_S = sum_{j in S} t_j(c)) is therefore exact for the simplified problem, for any J small enough to
enumerate the candidates (their number is exponential in J in general; ``max_subsets`` guards it).

By Lemma 3.2 each chosen subset becomes a chain with capacity c; the resulting BPCA solution has total
capacity c |K|.
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo

from heuristics.gbp_cr import max_blocks
from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import Chain, ChainSolution, Placement
from serveplan.errors import InputError


def reserved_time_s(instance: ChainInstance, c: int) -> np.ndarray:
    """t_j(c) = tau^c_j + tau^p_j m_j(c) (seconds), m_j(c) from :func:`heuristics.gbp_cr.max_blocks`."""
    return instance.comm_time_s + instance.compute_time_s * max_blocks(instance, c)


def minimal_covers(blocks: np.ndarray, L: int, max_subsets: int = 200_000) -> list[tuple[int, ...]]:
    """Every minimal set of servers whose blocks sum to >= L (servers with 0 blocks never appear).

    Depth-first: a set is only extended while its sum is below L (a covering set plus any server is not minimal).

    Raises
    ------
    InputError
        If there are more than ``max_subsets`` candidates.
    """
    idx = [j for j in range(len(blocks)) if blocks[j] > 0]
    out: list[tuple[int, ...]] = []

    def walk(start: int, chosen: list[int], total: int) -> None:
        for pos in range(start, len(idx)):
            j = idx[pos]
            new_total = total + int(blocks[j])
            if new_total >= L:
                members = [*chosen, j]
                if new_total - min(int(blocks[i]) for i in members) < L:
                    out.append(tuple(members))
                    if len(out) > max_subsets:
                        raise InputError("too many candidate chains", field="max_subsets", value=max_subsets)
            else:
                walk(pos + 1, [*chosen, j], new_total)

    walk(0, [], 0)
    return out


def build_model(instance: ChainInstance, c: int, *, max_subsets: int = 200_000) -> pyo.ConcreteModel:
    """Set-partitioning MILP of the simplified problem for reservation ``c`` (module docstring).

    Returns
    -------
    pyomo.ConcreteModel
        Binary x[S] per minimal covering subset; attributes ``simplified_c`` and ``simplified_subsets``.
    """
    if isinstance(c, bool) or not isinstance(c, int | np.integer) or c < 1:
        raise InputError("the reservation parameter must be an integer >= 1", field="c", value=c)
    c = int(c)
    blocks = max_blocks(instance, c)
    t = reserved_time_s(instance, c)
    subsets = minimal_covers(blocks, instance.num_blocks, max_subsets)
    target = instance.required_rate / c
    m = pyo.ConcreteModel(name="chain_simplified")
    m.simplified_c = c
    m.simplified_subsets = subsets
    S = range(len(subsets))
    m.x = pyo.Var(S, domain=pyo.Binary)
    m.none = pyo.Var(bounds=(0, 0))  # keeps the model well formed when no subset covers L
    m.rate = pyo.Constraint(
        expr=sum(m.x[s] * (1.0 / (float(t[list(subsets[s])].sum()) * target)) for s in S) + m.none >= 1.0
    )
    members: dict[int, list[int]] = {}
    for s, sub in enumerate(subsets):
        for j in sub:
            members.setdefault(j, []).append(s)
    m.disjoint = pyo.Constraint(sorted(members), rule=lambda mm, j: sum(mm.x[s] for s in members[j]) <= 1)
    m.obj = pyo.Objective(expr=sum(m.x[s] for s in S) + m.none, sense=pyo.minimize)
    return m


def decode(instance: ChainInstance, model: pyo.ConcreteModel) -> ChainSolution:
    """Lemma 3.2's placement: each chosen subset becomes a chain with capacity c.

    In a chain the servers take consecutive ranges of m_j(c) blocks; the one with the largest tau^p_j goes last
    and is shifted left to end at block L (a minimal cover overlaps by less than any one server's range, so
    the chain is valid), which makes T_k <= sum_j t_j(c).
    """
    c = model.simplified_c
    blocks = max_blocks(instance, c)
    tp = instance.compute_time_s
    L = instance.num_blocks
    J = instance.num_servers
    first, count = [0] * J, [0] * J
    chains = []
    for s, sub in enumerate(model.simplified_subsets):
        v = model.x[s].value
        if v is None or v < 0.5:
            continue
        last = max(sub, key=lambda j: (tp[j], j))
        order = [j for j in sub if j != last] + [last]
        a = 1
        processed = []
        for j in order[:-1]:
            first[j], count[j] = a, int(blocks[j])
            processed.append(int(blocks[j]))
            a += int(blocks[j])
        first[last], count[last] = L - int(blocks[last]) + 1, int(blocks[last])
        processed.append(L - a + 1)
        chains.append(Chain(tuple(order), tuple(processed)))
    return ChainSolution(Placement(tuple(first), tuple(count)), tuple(chains), (c,) * len(chains))
