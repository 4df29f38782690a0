"""Dispatch policies for chain serving: JFFC and the four load-balancing comparators.

Sun, He, Hou 2026, section "Join-the-Fastest-Free-Chain" (JFFC) and the unit-test comparators of the
evaluation. Every chain k serves at most c_k jobs at once (its c_k "job servers", each at rate mu_k). The
policies differ in where a job waits and which chain it joins:

``jffc``
    Central FIFO queue. An arrival joins the fastest chain with a free slot (largest mu_k; ties by the
    fixed chain order: mu descending, then index); if every chain is full it waits in the central queue.
    A completion on chain k starts the head-of-line job on k. Throughput-optimal (Lemma "ergodicity"),
    bounded by Theorem 3.7 (:mod:`serveplan.chain.bounds`).
``sa_jsq``
    Speed-aware JSQ (JFSQ): among chains with a free slot, the one with the fewest jobs Z_k, ties to the
    fastest; else the central queue. Completions take the head of the central queue.
``jiq``
    Join-idle-queue: a uniformly random idle chain (Z_k = 0); else a uniformly random chain with a free
    slot; else the central queue. Completions take the head of the central queue.
``jsq``
    Join-shortest-queue with per-chain FIFO queues and no central queue: an arrival joins the chain with
    the fewest jobs (in service plus queued), ties to the fastest; it starts at once if the chain has a free
    slot, else waits in that chain's queue.
``sed``
    Smallest expected delay with per-chain FIFO queues: minimise 1/mu_k + (Z_k - c_k + 1)_+ / (mu_k c_k),
    ties to the fastest; the job joins that chain's queue even when the chain is full.

These semantics follow the authors' simulator (digest section 5.4); the paper names the policies only.
Every policy is work-conserving on its queues: a chain never idles a slot while its own queue (or the
central queue) holds a job.
"""

from __future__ import annotations

from serveplan.errors import InputError

JFFC = 0
SA_JSQ = 1
JIQ = 2
JSQ = 3
SED = 4

POLICIES: dict[str, int] = {"jffc": JFFC, "sa_jsq": SA_JSQ, "jiq": JIQ, "jsq": JSQ, "sed": SED}
"""Policy name -> integer code used by the compiled event loop."""

CENTRAL_QUEUE: frozenset[int] = frozenset({JFFC, SA_JSQ, JIQ})
"""Policies that keep waiting jobs in one central FIFO queue (the others keep one queue per chain)."""

ALIASES = {"jfsq": "sa_jsq", "sa-jsq": "sa_jsq", "sajsq": "sa_jsq"}


def policy_code(name: str) -> int:
    """The integer code of a policy name (case-insensitive; ``jfsq``/``sa-jsq`` are accepted).

    Raises
    ------
    InputError
        For an unknown name, listing the known ones.
    """
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in POLICIES:
        hint = f"choose one of {sorted(POLICIES)}"
        raise InputError("unknown dispatch policy", field="policy", value=name, hint=hint)
    return POLICIES[key]


def policy_name(code: int) -> str:
    """The name of a policy code."""
    for name, c in POLICIES.items():
        if c == code:
            return name
    raise InputError("unknown dispatch policy code", field="policy", value=code)
