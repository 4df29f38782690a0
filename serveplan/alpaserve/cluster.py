"""Cluster, parallel configurations, device groups and placements (AlpaServe section 4; digest 1.1-1.2).

A placement partitions (part of) the cluster into device groups. Each group runs one parallel
configuration ``(pp, op)``: ``pp`` pipeline stages, each sharded over ``op`` GPUs (intra-op), so a
group has ``pp * op`` GPUs. Every model hosted by a group is split the same way, and a model may sit
on several groups (its replicas). Data parallelism is expressed by replication, so ``dp`` is 1.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serveplan.errors import InputError

GIB = 2**30


@dataclass(frozen=True, order=True)
class ParallelConfig:
    """Pipeline stages x intra-op degree.

    Parameters
    ----------
    pp : int
        Number of pipeline (inter-op) stages, >= 1.
    op : int
        GPUs per stage (intra-op / tensor-parallel degree), >= 1.
    """

    pp: int
    op: int

    def __post_init__(self) -> None:
        for f in ("pp", "op"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError("must be a positive integer", field=f, value=v)

    @property
    def size(self) -> int:
        """GPUs in a group with this config (``pp * op``)."""
        return self.pp * self.op

    def __str__(self) -> str:
        return f"pp{self.pp}xop{self.op}"


@dataclass(frozen=True)
class Cluster:
    """``num_gpus`` identical GPUs in nodes of ``gpus_per_node``.

    Parameters
    ----------
    num_gpus : int
        GPUs in the cluster.
    gpus_per_node : int, default 8
        GPUs per node (AlpaServe: 8 V100 per p3.16xlarge).
    memory_budget_gb : float, default 13.0
        Per-GPU budget for model weights, in GiB (2**30 bytes) as AlpaServe's ``--mem-budget``:
        13 GiB of a 16 GB V100, the rest left for activations and the runtime.
    gpu : str, default "v100-16gb"
        GPU type; selects the profile table ``data/profiles/<gpu>.csv`` and the analytic model's
        hardware constants.
    """

    num_gpus: int
    gpus_per_node: int = 8
    memory_budget_gb: float = 13.0
    gpu: str = "v100-16gb"

    def __post_init__(self) -> None:
        for f in ("num_gpus", "gpus_per_node"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError("must be a positive integer", field=f"cluster.{f}", value=v)
        if not (self.memory_budget_gb > 0):
            raise InputError("must be > 0", field="cluster.memory_budget_gb", value=self.memory_budget_gb)

    @property
    def memory_budget_bytes(self) -> float:
        """Per-GPU weight budget in bytes."""
        return float(self.memory_budget_gb) * GIB

    def group_size_ok(self, size: int) -> bool:
        """AlpaServe's mesh rule: a group fits in one node, or spans whole nodes."""
        return size <= self.gpus_per_node or size % self.gpus_per_node == 0

    def config_ok(self, config: ParallelConfig) -> bool:
        """Whether a group with ``config`` can exist here (size rule; a stage stays inside one node)."""
        return config.size <= self.num_gpus and self.group_size_ok(config.size) and config.op <= self.gpus_per_node

    def parallel_configs(
        self, max_pp: int = 8, max_op: int = 4, sizes: tuple[int, ...] | None = None
    ) -> list[ParallelConfig]:
        """Candidate configs: powers of two ``pp <= max_pp``, ``op <= max_op`` that :meth:`config_ok`.

        Parameters
        ----------
        max_pp, max_op : int
            Search limits (AlpaServe's defaults 8 and 4).
        sizes : tuple of int, optional
            Keep only group sizes in this set.
        """
        out = []
        pp = 1
        while pp <= max_pp:
            op = 1
            while op <= max_op:
                c = ParallelConfig(pp, op)
                if self.config_ok(c) and (sizes is None or c.size in sizes):
                    out.append(c)
                op *= 2
            pp *= 2
        return sorted(out, key=lambda c: (c.size, c.pp))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "num_gpus": self.num_gpus,
            "gpus_per_node": self.gpus_per_node,
            "memory_budget_gb": self.memory_budget_gb,
            "gpu": self.gpu,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str | None = None) -> Cluster:
        """Build from a dict (unknown keys are an error)."""
        known = {"num_gpus", "gpus_per_node", "memory_budget_gb", "gpu"}
        bad = sorted(set(d) - known)
        if bad:
            raise InputError(
                "unknown cluster field", source=source, field=f"cluster.{bad[0]}", hint=f"known: {sorted(known)}"
            )
        if "num_gpus" not in d:
            raise InputError("missing field", source=source, field="cluster.num_gpus")
        try:
            return cls(**d)
        except InputError as exc:
            raise exc.relabel(source=source, hint=None) from None


@dataclass(frozen=True)
class Group:
    """A device group: one parallel config and the model indices it hosts (each at most once).

    Parameters
    ----------
    config : ParallelConfig
        How every hosted model is split over the group's ``config.size`` GPUs.
    models : tuple of int
        Indices into the instance's model list. Order carries no meaning.
    """

    config: ParallelConfig
    models: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        models = tuple(int(m) for m in self.models)
        if len(set(models)) != len(models):
            raise InputError("a model appears twice in one group", field="models", value=models)
        object.__setattr__(self, "models", models)

    @property
    def size(self) -> int:
        """GPUs in the group."""
        return self.config.size

    def to_dict(self) -> dict[str, Any]:
        """JSON form ``{"pp": .., "op": .., "models": [...]}``."""
        return {"pp": self.config.pp, "op": self.config.op, "models": list(self.models)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "group", source: str | None = None) -> Group:
        """Read ``{"pp": int, "op": int, "models": [int, ...]}`` (op defaults to 1)."""
        if not isinstance(d, dict):
            raise InputError("a group must be an object", source=source, field=where, value=d)
        try:
            config = ParallelConfig(int(d.get("pp", 1)), int(d.get("op", 1)))
            models = d.get("models", [])
            if not isinstance(models, list | tuple):
                raise InputError("must be a list of model indices", field="models", value=models)
            return cls(config, tuple(int(m) for m in models))
        except InputError as exc:
            raise exc.relabel(source=source, field=f"{where}.{exc.field}", hint=None) from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"bad group: {exc}", source=source, field=where, value=d) from None


@dataclass(frozen=True)
class Placement:
    """A static placement: device groups with their configs and hosted models.

    The GPUs of the groups are disjoint; groups are laid out in order, so the verifier only needs sizes.
    """

    groups: tuple[Group, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))

    @property
    def num_gpus(self) -> int:
        """GPUs used by all groups together."""
        return sum(g.size for g in self.groups)

    @property
    def num_replicas(self) -> int:
        """Total (group, model) pairs."""
        return sum(len(g.models) for g in self.groups)

    def replicas_of(self, model: int) -> list[int]:
        """Indices of the groups hosting ``model``."""
        return [i for i, g in enumerate(self.groups) if model in g.models]

    def normalized(self) -> Placement:
        """Canonical form: models sorted within groups, groups sorted (for de-duplication)."""
        gs = [Group(g.config, tuple(sorted(g.models))) for g in self.groups]
        return Placement(tuple(sorted(gs, key=lambda g: (g.config.pp, g.config.op, g.models))))

    def to_dict(self) -> dict[str, Any]:
        """JSON form ``{"groups": [{"pp":..,"op":..,"models":[..]}, ...]}``."""
        return {"groups": [g.to_dict() for g in self.groups]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str | None = None) -> Placement:
        """Read the JSON form (see :meth:`to_dict`)."""
        if not isinstance(d, dict) or "groups" not in d:
            raise InputError("a placement needs a 'groups' list", source=source, field="groups")
        groups = d["groups"]
        if not isinstance(groups, list):
            raise InputError("must be a list", source=source, field="groups", value=type(groups).__name__)
        return cls(tuple(Group.from_dict(g, where=f"groups[{i}]", source=source) for i, g in enumerate(groups)))


@dataclass(frozen=True)
class TimeVaryingPlacement:
    """Placements that switch at given times (Clockwork++; digest 3.1 "time-varying placements").

    ``placements[i]`` serves arrivals in ``[start_times_s[i], start_times_s[i+1])``; the first start
    is normally 0 and arrivals before it are served by ``placements[0]``. At every switch the queues
    are flushed (fresh stage clocks) and swapping costs nothing.
    """

    start_times_s: tuple[float, ...]
    placements: tuple[Placement, ...]

    def __post_init__(self) -> None:
        st = tuple(float(t) for t in self.start_times_s)
        if len(st) != len(self.placements) or not st:
            raise InputError(
                "need one start time per placement (and at least one)",
                field="start_times_s",
                value=(len(st), len(self.placements)),
            )
        if any(b <= a for a, b in itertools.pairwise(st)):
            raise InputError("start times must increase", field="start_times_s", value=st)
        object.__setattr__(self, "start_times_s", st)
        object.__setattr__(self, "placements", tuple(self.placements))

    @property
    def num_gpus(self) -> int:
        """Most GPUs any of the placements uses."""
        return max(p.num_gpus for p in self.placements)

    def to_dict(self) -> dict[str, Any]:
        """JSON form ``{"start_times_s": [...], "placements": [{"groups": ...}, ...]}``."""
        return {"start_times_s": list(self.start_times_s), "placements": [p.to_dict() for p in self.placements]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str | None = None) -> TimeVaryingPlacement:
        """Read the JSON form."""
        try:
            return cls(
                tuple(d["start_times_s"]),
                tuple(Placement.from_dict(p, source=source) for p in d["placements"]),
            )
        except KeyError as exc:
            raise InputError("missing field", source=source, field=str(exc.args[0])) from None


def load_placement(path: str | Path) -> Placement | TimeVaryingPlacement:
    """Read a placement JSON file (static ``{"groups": ...}`` or time-varying ``{"start_times_s": ...}``)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("placement file not found", source=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc}", source=str(path)) from None
    if isinstance(d, dict) and "placements" in d:
        return TimeVaryingPlacement.from_dict(d, source=str(path))
    return Placement.from_dict(d, source=str(path))


def save_placement(placement: Placement | TimeVaryingPlacement, path: str | Path) -> Path:
    """Write a placement as JSON."""
    path = Path(path)
    path.write_text(json.dumps(placement.to_dict(), indent=2) + "\n")
    return path
