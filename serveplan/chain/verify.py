"""Independent verification of a server-chain solution against its instance.

Written from the paper's constraints only (BPCA, Sun, He, Hou 2026) and sharing no code with the algorithms
or with :mod:`serveplan.chain.placement`'s helper functions: it re-derives ranges, chain rules, memory and
service times with plain Python arithmetic, so a bug in the shared helpers cannot hide itself.

Checks (each has a name in :attr:`VerifyReport.checks`):

``placement``
    One (a_j, m_j) per server; a used server hosts blocks inside 1..L.
``coverage``
    Every block 1..L is hosted by some server.
``chains``
    Every chain starts at a server hosting block 1 and processing from block 1, each next server hosts the
    block right after the previous server's last block (a_j <= a_i + m_i <= a_j + m_j - 1), each server runs to
    its own last block (m_ij = a_j + m_j - a_i - m_i), the last server ends at block L, and servers are
    distinct and used.
``memory``
    s_m m_j <= M_j and s_m m_j + s_c * sum_{chains k through j} m_ij c_k <= M_j (equivalently the cache slots
    stay within M~_j = floor((M_j - s_m m_j) / s_c)); a relative tolerance of 1e-9 absorbs float round-off.
``rate``
    sum_k c_k / T_k >= lambda / rho_bar. A solution failing only this check is "feasible but below target".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import ChainSolution

_TOL = 1e-9
CHECKS = ("placement", "coverage", "chains", "memory", "rate")


@dataclass
class VerifyReport:
    """What :func:`verify` found.

    Attributes
    ----------
    ok : bool
        Every check passed (including the rate target).
    violations : list of str
        One line per violated constraint, prefixed by the check's name.
    total_rate : float
        nu = sum_k c_k / T_k, jobs per second (over the chains that are valid).
    required_rate : float
        lambda / rho_bar.
    total_capacity : int
        sum_k c_k.
    checks : dict of str to bool
        Pass/fail of each named check.
    """

    ok: bool
    violations: list[str]
    total_rate: float
    required_rate: float
    total_capacity: int
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        """Every constraint except the rate target holds."""
        return all(v for k, v in self.checks.items() if k != "rate")

    @property
    def status(self) -> str:
        """``ok``, ``feasible_below_target`` or ``infeasible``."""
        if self.ok:
            return "ok"
        return "feasible_below_target" if self.feasible else "infeasible"

    @property
    def failed_checks(self) -> list[str]:
        """Names of the checks that failed."""
        return [k for k, v in self.checks.items() if not v]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "ok": self.ok,
            "status": self.status,
            "failed_checks": self.failed_checks,
            "violations": list(self.violations),
            "total_rate": self.total_rate,
            "required_rate": self.required_rate,
            "total_capacity": self.total_capacity,
        }


def verify(instance: ChainInstance, solution: ChainSolution, *, max_violations: int = 50) -> VerifyReport:
    """Check ``solution`` against every constraint of BPCA (see module docstring).

    Parameters
    ----------
    instance : ChainInstance
    solution : ChainSolution
    max_violations : int, default 50
        Stop listing violations after this many (the checks' pass/fail stays exact).

    Returns
    -------
    VerifyReport
    """
    servers = instance.servers
    J = len(servers)
    L = instance.num_blocks
    violations: list[str] = []
    failed: set[str] = set()

    def bad(check: str, text: str) -> None:
        failed.add(check)
        if len(violations) < max_violations:
            violations.append(f"{check}: {text}")

    # -- placement ranges
    first = list(solution.placement.first_block)
    count = list(solution.placement.num_blocks)
    if len(first) != J or len(count) != J:
        bad("placement", f"placement covers {len(first)} servers, instance has {J}")
        first = (first + [0] * J)[:J]
        count = (count + [0] * J)[:J]
    for j in range(J):
        if count[j] == 0:
            continue
        if first[j] < 1 or first[j] + count[j] - 1 > L:
            bad(
                "placement",
                f"server {j} ({servers[j].name}) hosts blocks {first[j]}..{first[j] + count[j] - 1}, outside 1..{L}",
            )

    # -- coverage
    hosted = [False] * (L + 2)
    for j in range(J):
        for b in range(max(first[j], 1), min(first[j] + count[j] - 1, L) + 1):
            hosted[b] = True
    missing = [b for b in range(1, L + 1) if not hosted[b]]
    if missing:
        shown = ", ".join(str(b) for b in missing[:10]) + (" ..." if len(missing) > 10 else "")
        bad("coverage", f"{len(missing)} block(s) hosted by no server: {shown}")

    # -- chains and their service times
    rate = 0.0
    slots_used = [0] * J
    capacity = 0
    for k, (chain, c) in enumerate(zip(solution.chains, solution.capacities, strict=True)):
        capacity += c
        ok_chain = True
        next_block = 1
        if len(set(chain.servers)) != len(chain.servers):
            bad("chains", f"chain {k} visits a server twice")
            ok_chain = False
        t = 0.0
        for pos, (j, mij) in enumerate(zip(chain.servers, chain.blocks, strict=True)):
            if not 0 <= j < J:
                bad("chains", f"chain {k} names server {j}, instance has {J}")
                ok_chain = False
                break
            a, m = first[j], count[j]
            if m == 0:
                bad("chains", f"chain {k} position {pos}: server {j} ({servers[j].name}) hosts no block")
                ok_chain = False
                break
            if not a <= next_block <= a + m - 1:
                bad(
                    "chains",
                    f"chain {k} position {pos}: server {j} hosts {a}..{a + m - 1}, does not host the "
                    f"next block {next_block}",
                )
                ok_chain = False
                break
            expected = a + m - next_block
            if mij != expected:
                bad(
                    "chains",
                    f"chain {k} position {pos}: server {j} must process blocks {next_block}..{a + m - 1} "
                    f"({expected}), chain says {mij}",
                )
                ok_chain = False
                break
            t += servers[j].comm_time_s + servers[j].compute_time_s * mij
            next_block = a + m
        if ok_chain and next_block != L + 1:
            bad("chains", f"chain {k} ends after block {next_block - 1}, not at block {L}")
            ok_chain = False
        if c < 0:
            bad("chains", f"chain {k} has negative capacity {c}")
            ok_chain = False
        if ok_chain:
            rate += c / t
            for j, mij in zip(chain.servers, chain.blocks, strict=True):
                slots_used[j] += mij * c

    # -- memory (in GB, not via floored slots, so the arithmetic differs from the algorithms')
    s_m, s_c = instance.block_memory_gb, instance.cache_memory_gb
    for j in range(J):
        mem = servers[j].memory_gb
        block_gb = s_m * count[j]
        slack = _TOL * max(1.0, mem)
        if block_gb > mem + slack:
            bad("memory", f"server {j} ({servers[j].name}): {count[j]} blocks need {block_gb:.6g} GB > M_j = {mem:.6g}")
            continue
        total = block_gb + s_c * slots_used[j]
        if slots_used[j] and total > mem + slack:
            bad(
                "memory",
                f"server {j} ({servers[j].name}): blocks {block_gb:.6g} GB + cache {slots_used[j]} slots x "
                f"{s_c:.6g} GB = {total:.6g} GB > M_j = {mem:.6g}",
            )

    # -- rate target
    required = instance.arrival_rate / instance.target_load
    if rate < required * (1 - _TOL):
        bad(
            "rate",
            f"total service rate {rate:.6g}/s below the target lambda/rho_bar = "
            f"{instance.arrival_rate:.6g}/{instance.target_load:.6g} = {required:.6g}/s",
        )

    checks = {name: name not in failed for name in CHECKS}
    return VerifyReport(
        ok=not failed,
        violations=violations,
        total_rate=rate,
        required_rate=required,
        total_capacity=capacity,
        checks=checks,
    )
