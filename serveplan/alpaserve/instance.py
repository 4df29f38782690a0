"""An AlpaServe placement instance: cluster, models, SLOs, latency model, train and test workloads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serveplan.alpaserve.cluster import Cluster, ParallelConfig
from serveplan.alpaserve.latency import LatencyModel
from serveplan.alpaserve.model import ModelSpec, get_model
from serveplan.errors import InputError
from serveplan.workloads.workload import Workload


@dataclass(frozen=True, eq=False)
class AlpaInstance:
    """Everything a placement method and the simulator need.

    Parameters
    ----------
    cluster : Cluster
        GPUs, node size, per-GPU memory budget, GPU type.
    models : tuple of ModelSpec
        The models to serve; model index = position here (workload ``model_id`` and group
        ``models`` refer to it). The same spec may appear several times (e.g. 48 x BERT-1.3B).
    slo_s : tuple of float
        Latency SLO per model, seconds (end-to-end, including the simulator's fixed overhead).
    latency : LatencyModel
        Per-stage latency and weight memory.
    train : Workload
        What placement searches may look at.
    test : Workload
        What evaluation scores. A distinct draw by default (held-out); families that set
        ``oracle=True`` use the same sample for both and say so in ``name``.
    name : str
        Free-form label (families encode their parameters here).
    """

    cluster: Cluster
    models: tuple[ModelSpec, ...]
    slo_s: tuple[float, ...]
    latency: LatencyModel
    train: Workload
    test: Workload
    name: str = ""

    def __post_init__(self) -> None:
        models = tuple(self.models)
        slo = tuple(float(s) for s in self.slo_s)
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "slo_s", slo)
        if not models:
            raise InputError("an instance needs at least one model", field="models", value=[])
        if len(slo) != len(models):
            raise InputError("need one SLO per model", field="slo_s", value=(len(slo), len(models)))
        for i, s in enumerate(slo):
            if not (s > 0) or not np.isfinite(s):
                raise InputError("SLO must be a positive finite number of seconds", field=f"slo_s[{i}]", value=s)
        for label, w in (("train", self.train), ("test", self.test)):
            if w.num_models != len(models):
                raise InputError(
                    "workload model count differs from the instance's",
                    field=f"{label}.num_models",
                    value=(w.num_models, len(models)),
                )

    @property
    def num_models(self) -> int:
        """Number of models."""
        return len(self.models)

    def slo_array(self) -> np.ndarray:
        """SLOs as a float64 array."""
        return np.asarray(self.slo_s, dtype=np.float64)

    def _fitting_configs(self, model: int, max_pp: int, max_op: int) -> list[ParallelConfig]:
        spec = self.models[model]
        budget = self.cluster.memory_budget_bytes
        return [
            c
            for c in self.cluster.parallel_configs(max_pp=max_pp, max_op=max_op)
            if c.pp <= spec.num_layers and self.latency.max_stage_weight_bytes(spec, c) <= budget
        ]

    def fits_anywhere(self, model: int, max_pp: int = 64, max_op: int = 8) -> bool:
        """Whether ``model`` alone fits the per-GPU budget under some valid config of the cluster."""
        return bool(self._fitting_configs(model, max_pp, max_op))

    def fastest_latency_s(
        self,
        model: int,
        max_pp: int = 64,
        max_op: int = 8,
        *,
        fixed_overhead_s: float = 0.0,
        stage_penalty: float = 0.0,
    ) -> float:
        """Smallest single-request latency over valid configs where the model fits (inf if none).

        With the simulator's ``fixed_overhead_s`` and ``stage_penalty`` it is the smallest latency
        the simulator can produce for the model, so an SLO below it can never be met.
        """
        spec = self.models[model]
        lat = [
            self.latency.latency_s(spec, c) * (1.0 + stage_penalty * c.pp) + fixed_overhead_s
            for c in self._fitting_configs(model, max_pp, max_op)
        ]
        return min(lat, default=float("inf"))

    def diagnose(self, *, fixed_overhead_s: float = 0.011, stage_penalty: float = 0.009) -> list[str]:
        """Notes on models that cannot score.

        A model cannot score when it fits no config, or when its SLO is below the fastest latency the
        simulator can produce (with these overheads; defaults are the simulator's). Such models are
        not an error; their requests simply miss.
        """
        notes = []
        seen: dict[tuple[ModelSpec, float], str | None] = {}
        for i, (m, slo) in enumerate(zip(self.models, self.slo_s, strict=True)):
            key = (m, slo)
            if key not in seen:
                best = self.fastest_latency_s(i, fixed_overhead_s=fixed_overhead_s, stage_penalty=stage_penalty)
                if not np.isfinite(best):
                    seen[key] = f"fits no parallel config within the {self.cluster.memory_budget_gb:g} GiB budget"
                elif slo < best:
                    seen[key] = f"SLO {slo:.4g} s is below the fastest achievable latency {best:.4g} s"
                else:
                    seen[key] = None
            if seen[key]:
                notes.append(f"model {i} ({m.name}): {seen[key]}")
        return notes

    def latency_sources(self, placement: Any) -> list[str]:
        """Where the latencies of ``placement``'s hosted (model, config) pairs come from.

        ``"measured"`` (a shipped or given GPU profile table has the key) and/or ``"modelled"`` (the
        analytic model), sorted; a :class:`TimeVaryingPlacement` counts all of its placements.
        """
        placements = getattr(placement, "placements", (placement,))
        return sorted(
            {
                self.latency.source(self.models[m], g.config)
                for p in placements
                for g in p.groups
                for m in g.models
                if 0 <= m < self.num_models and g.config.pp <= self.models[m].num_layers
            }
        )

    def with_workloads(self, train: Workload, test: Workload | None = None) -> AlpaInstance:
        """A copy with other workloads (``test`` defaults to ``train``)."""
        return AlpaInstance(self.cluster, self.models, self.slo_s, self.latency, train, test or train, self.name)

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (workloads as their generator spec when they have one, else inline arrays)."""
        return {
            "name": self.name,
            "cluster": self.cluster.to_dict(),
            "models": [m.to_dict() for m in self.models],
            "slo_s": list(self.slo_s),
            "latency_model": self.latency.to_dict(),
            "train": self.train.to_dict(),
            "test": self.test.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str | None = None, base_dir: Path | None = None) -> AlpaInstance:
        """Build from the JSON form.

        Accepted forms: ``models`` entries are full model dicts or catalogue names (``"bert-1.3b"``);
        ``slo_s`` is a list, or give ``slo_scale`` (SLO = scale x single-GPU latency, AlpaServe's rule);
        ``train``/``test`` are ``{"spec": "gamma:..."}``, ``{"file": "w.npz"}`` (relative to the
        instance file) or inline ``{"arrival_s": [...], "model_id": [...], "duration_s": ..}``;
        ``test`` defaults to ``train``.
        """
        from serveplan.workloads.spec import workload_from_spec

        if not isinstance(d, dict):
            raise InputError("an instance must be a JSON object", source=source)
        for key in ("cluster", "models", "train"):
            if key not in d:
                raise InputError("missing field", source=source, field=key)
        cluster = Cluster.from_dict(d["cluster"], source=source)
        models = []
        if not isinstance(d["models"], list) or not d["models"]:
            raise InputError("must be a non-empty list", source=source, field="models")
        for i, m in enumerate(d["models"]):
            if isinstance(m, str):
                try:
                    models.append(get_model(m))
                except InputError as exc:
                    raise exc.relabel(source=source, field=f"models[{i}]", value=m) from None
            else:
                models.append(ModelSpec.from_dict(m, source=source))
        lm = LatencyModel.from_dict(d.get("latency_model") or {"gpu": cluster.gpu}, source=source, base_dir=base_dir)
        if "slo_s" in d:
            slo = d["slo_s"]
            if not isinstance(slo, list):
                raise InputError("must be a list (one per model)", source=source, field="slo_s", value=slo)
        elif "slo_scale" in d:
            slo = [float(d["slo_scale"]) * lm.single_gpu_latency_s(m) for m in models]
        else:
            raise InputError("give slo_s (per model) or slo_scale", source=source, field="slo_s")

        def wl(entry: Any, label: str) -> Workload:
            if not isinstance(entry, dict):
                raise InputError("must be an object", source=source, field=label, value=entry)
            try:
                if "spec" in entry:
                    return workload_from_spec(entry["spec"], len(models))
                if "file" in entry:
                    p = Path(entry["file"])
                    if base_dir is not None and not p.is_absolute():
                        p = base_dir / p
                    return Workload.load(p, num_models=len(models))
                arrivals = entry["arrival_s"]
                return Workload(
                    np.asarray(arrivals, dtype=np.float64),
                    np.asarray(entry["model_id"], dtype=np.int64),
                    float(entry.get("duration_s", arrivals[-1] if arrivals else 0.0)),
                    len(models),
                )
            except KeyError as exc:
                raise InputError("missing field", source=source, field=f"{label}.{exc.args[0]}") from None
            except (TypeError, ValueError) as exc:
                if isinstance(exc, InputError):
                    raise exc.relabel(source=exc.source or source, field=f"{label}.{exc.field}") from None
                raise InputError(f"bad workload: {exc}", source=source, field=label) from None

        train = wl(d["train"], "train")
        test = wl(d["test"], "test") if "test" in d else train
        try:
            return cls(cluster, tuple(models), tuple(slo), lm, train, test, str(d.get("name", "")))
        except InputError as exc:
            raise exc.relabel(source=source) from None

    def save(self, path: str | Path) -> Path:
        """Write the JSON form."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> AlpaInstance:
        """Read an instance JSON file."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError("instance file not found", source=str(path)) from None
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON: {exc}", source=str(path)) from None
        return cls.from_dict(d, source=str(path), base_dir=path.parent)
