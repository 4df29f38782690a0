"""Multi-model placement with model parallelism (AlpaServe, Li et al., OSDI 2023).

Public API (import from ``serveplan.alpaserve``)
------------------------------------------------
Data types (frozen dataclasses, validated on construction; bad input raises
:class:`serveplan.errors.InputError` naming the field and value):

``ModelSpec(name, num_layers, hidden_size, seq_len, weight_bytes, kind="dense"|"moe", num_heads,
vocab_size, num_experts, moe_every, reference_latency_s, source)``
    One model. Shipped catalogue: ``get_model("bert-1.3b")`` (``data/alpaserve_models/*.toml``:
    bert-1.3b, bert-2.6b, bert-6.7b, bert-104b, moe-1.3b, moe-2.4b, moe-5.3b), ``load_models(dir)``.
``ParallelConfig(pp, op)``
    ``pp`` pipeline stages x ``op`` GPUs per stage; ``.size == pp * op``.
``Cluster(num_gpus, gpus_per_node=8, memory_budget_gb=13.0, gpu="v100-16gb")``
    Budget in GiB per GPU for weights; ``.memory_budget_bytes``; ``.parallel_configs(max_pp=8, max_op=4)``
    lists valid candidate configs (powers of two; a group fits one node or spans whole nodes).
``Group(config, models)`` / ``Placement(groups)`` / ``TimeVaryingPlacement(start_times_s, placements)``
    ``Placement.num_gpus``, ``.num_replicas``, ``.to_dict()``/``from_dict``; JSON files via
    ``load_placement``/``save_placement`` (format: docs/alpaserve.md "Placement files").
``LatencyModel(gpu, table=None, gpus_per_node=8, params)``
    ``stage_latencies_s(model, config, batch_size=1) -> np.ndarray`` (per stage, seconds),
    ``stage_weight_bytes(model, config) -> np.ndarray`` (per GPU of each stage),
    ``source(model, config, batch_size) -> "measured" | "modelled"``, ``single_gpu_latency_s(model)``,
    ``max_stage_weight_bytes(model, config)``. ``latency_model_for(gpu)`` uses
    ``data/profiles/<gpu>.csv`` (docs/profile_format.md) when shipped, the analytic model otherwise.
``AlpaInstance(cluster, models, slo_s, latency, train, test, name)``
    ``to_dict``/``from_dict``/``save``/``load`` (JSON), ``slo_array()``, ``fits_anywhere(m)``,
    ``fastest_latency_s(m)``.
``Workload(arrival_s, model_id, duration_s, num_models)`` (from :mod:`serveplan.workloads`)
    Sorted float64 arrivals and int32 model ids; never an object per request.

Functions:

``verify(instance, placement) -> VerifyReport(ok, violations)``
    Memory per GPU (sum over a group's models of the max-stage weight per GPU <= budget), group sizes
    sum <= num_gpus, valid configs (node rule, op <= node size, pp <= layers), valid model indices.
``Simulator(instance, workload=None, *, fixed_overhead_s=0.011, stage_penalty=0.009,
dispatch="earliest"|"fewest_inflight", max_batch_size=1, warmup_s=0.0)``
    Or ``Simulator(None, workload, latency_fn=fn, slo_s=...)`` with ``fn(model_index, config, bs) ->
    stage latencies | None``, or ``Simulator.from_table({(model, config): stages}, slo_s, workload)``.
    Latency tables per (model, config) are built once per config and kept.
    ``.run(placement) -> SimResult`` (``finish_s``, ``good`` per request; ``attainment``,
    ``model_attainment``, ``model_requests``, ``model_good``, ``group_requests``, ``latency_mean_s``,
    ``latency_p90_s``, ``latency_p99_s``, ``summary()``); ``.run_fast(placement) -> (attainment,
    model_good, model_requests, group_requests)`` for searches; ``.prepare(configs)`` precomputes tables;
    ``.with_workload(w)`` reuses the tables for another trace.
``simulate(instance, placement, workload=None, **options) -> SimResult``
    One-shot convenience.

Semantics of the simulator: :mod:`serveplan.alpaserve.simulator` and docs/alpaserve.md.
"""

from serveplan.alpaserve.cluster import (
    Cluster,
    Group,
    ParallelConfig,
    Placement,
    TimeVaryingPlacement,
    load_placement,
    save_placement,
)
from serveplan.alpaserve.instance import AlpaInstance
from serveplan.alpaserve.latency import GPUS, AnalyticParams, GpuSpec, LatencyModel, latency_model_for
from serveplan.alpaserve.model import ModelSpec, get_model, load_models
from serveplan.alpaserve.profile_table import ProfileTable, load_profile_table
from serveplan.alpaserve.simulator import SimResult, Simulator, simulate
from serveplan.alpaserve.verify import VerifyReport, verify
from serveplan.workloads.workload import Workload

__all__ = [
    "GPUS",
    "AlpaInstance",
    "AnalyticParams",
    "Cluster",
    "GpuSpec",
    "Group",
    "LatencyModel",
    "ModelSpec",
    "ParallelConfig",
    "Placement",
    "ProfileTable",
    "SimResult",
    "Simulator",
    "TimeVaryingPlacement",
    "VerifyReport",
    "Workload",
    "get_model",
    "latency_model_for",
    "load_models",
    "load_placement",
    "load_profile_table",
    "save_placement",
    "simulate",
    "verify",
]
