"""Independent feasibility check of an AlpaServe placement (digest 1.1-1.2).

Shares nothing with the placement algorithms: it recomputes every quantity from the instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serveplan.alpaserve.cluster import Placement, TimeVaryingPlacement
    from serveplan.alpaserve.instance import AlpaInstance

# Weights are summed in floating point; allow a relative slack far below any real model size.
_MEMORY_RTOL = 1e-9


@dataclass
class VerifyReport:
    """Outcome of :func:`verify`: ``ok`` and one line per violation."""

    ok: bool
    violations: list[str] = field(default_factory=list)
    memory_bytes_per_group: list[float] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok


def verify(instance: AlpaInstance, placement: Placement | TimeVaryingPlacement) -> VerifyReport:
    """Check a placement against an instance.

    Checks (each violation is reported, none raises):

    * model indices are in ``[0, num_models)`` and appear at most once per group;
    * every group's config is valid on the cluster: size ``pp*op <= gpus_per_node`` or a multiple of
      it (AlpaServe's mesh rule), ``op <= gpus_per_node``, ``pp <= num_layers`` of each hosted model;
    * group sizes sum to at most ``num_gpus``;
    * memory per GPU: for every group, the sum over its models of the **max-stage** weight per GPU
      is ``<= memory_budget`` (AlpaServe's ``<=``; activations are not counted).

    A :class:`TimeVaryingPlacement` is verified placement by placement.

    Complexity O(total replicas) after the latency model's cached per-(model, config) lookups.
    """
    from serveplan.alpaserve.cluster import TimeVaryingPlacement

    if isinstance(placement, TimeVaryingPlacement):
        out = VerifyReport(True)
        for i, p in enumerate(placement.placements):
            r = verify(instance, p)
            out.violations += [f"placements[{i}]: {v}" for v in r.violations]
            out.memory_bytes_per_group += r.memory_bytes_per_group
        out.ok = not out.violations
        return out

    cluster = instance.cluster
    budget = cluster.memory_budget_bytes
    n_models = len(instance.models)
    violations: list[str] = []
    mem_per_group: list[float] = []
    total = 0
    for gi, g in enumerate(placement.groups):
        c = g.config
        total += c.size
        if c.size > cluster.gpus_per_node and c.size % cluster.gpus_per_node:
            violations.append(
                f"groups[{gi}]: size {c.size} ({c}) spans nodes but is not a multiple of {cluster.gpus_per_node}"
            )
        if c.op > cluster.gpus_per_node:
            violations.append(f"groups[{gi}]: op={c.op} exceeds the {cluster.gpus_per_node} GPUs of a node")
        if len(set(g.models)) != len(g.models):
            violations.append(f"groups[{gi}]: a model appears twice")
        used = 0.0
        for m in g.models:
            if not 0 <= m < n_models:
                violations.append(f"groups[{gi}]: model index {m} outside [0, {n_models})")
                continue
            spec = instance.models[m]
            if c.pp > spec.num_layers:
                violations.append(f"groups[{gi}]: pp={c.pp} exceeds {spec.name}'s {spec.num_layers} layers")
                continue
            used += instance.latency.max_stage_weight_bytes(spec, c)
        mem_per_group.append(used)
        if used > budget * (1 + _MEMORY_RTOL):
            violations.append(
                f"groups[{gi}]: weights {used / 2**30:.3f} GiB per GPU exceed the budget "
                f"{cluster.memory_budget_gb:g} GiB ({c}, models {list(g.models)})"
            )
    if total > cluster.num_gpus:
        violations.append(f"groups use {total} GPUs, the cluster has {cluster.num_gpus}")
    return VerifyReport(not violations, violations, mem_per_group)
