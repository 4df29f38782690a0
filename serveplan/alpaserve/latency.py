"""Per-stage latency and weight memory of a model under a parallel config (digest 1.3, 5).

:class:`LatencyModel` answers two questions for (model, config, batch size):

* ``stage_latencies_s``: forward time of each pipeline stage (a request runs the stages in order;
  single-request latency = sum, pipeline throughput = 1 / max);
* ``stage_weight_bytes``: weights held by **each GPU** of each stage (the memory check uses the max).

It takes measured rows from a :class:`~serveplan.alpaserve.profile_table.ProfileTable` when the
table has the key (``source == "measured"``) and otherwise the analytic model below
(``source == "modelled"``).

Analytic model ("modelled")
---------------------------
Per layer (T = batch_size x seq_len tokens, h = hidden size, s = seq_len):

* dense layer FLOPs ``24 T h^2 + 4 T s h`` (QKV/out/MLP matmuls + attention scores);
  MoE layer (top-2 GShard, every ``moe_every``-th layer) ``8 T h^2 + 4 T s h + 2 x 16 T h^2 + 2 T h E``;
  output layer ``2 T h V`` on the last stage, embeddings on the first;
* compute time ``max(FLOPs / (peak x efficiency), weight bytes / memory bandwidth)``;
  batch sizes above 1 run ``efficiency x batch_gain^log2(bs)`` faster per token (default 5 % per doubling);
* intra-op degree ``op``: compute / op, times ``1 + op_penalty x log2(op)`` (smaller GEMMs run less
  efficiently), plus two ring all-reduces of the activations ``(T h 2 bytes)`` per layer costing
  ``2 (op-1)/op x bytes / allreduce bandwidth + allreduce latency``;
* pipeline ``pp``: layers are cut into ``pp`` contiguous stages minimising the slowest stage (the DP of
  AlpaServe's inter-op pass, on layer granularity; embeddings stay with stage 0, the output layer with
  the last stage), so integer layer counts produce the uneven-partition overhead; each stage
  boundary adds the activation transfer to the receiving stage (NVLink inside a node, the network
  across nodes);
* calibration: every compute term is scaled (communication terms are not) so that the single-GPU
  batch-1 latency equals, in order of preference, the profile table's measured (1, 1) batch-1 row of
  the model on this GPU, or the model's ``reference_latency_s`` (which holds on its
  ``reference_gpu``; on another GPU the compute efficiency it implies is kept). The shipped BERT
  models use the paper's Table 1 V100 latencies (151 / 238 / 395 ms, 4.6 s for BERT-104B). With a
  measured anchor the modelled weights also sum to the measured total.

Weights are split in proportion to parameter counts (layers, embeddings) and then evenly over the
``op`` GPUs of a stage; they sum to ``ModelSpec.weight_bytes``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from serveplan.alpaserve.cluster import ParallelConfig
from serveplan.alpaserve.model import ModelSpec
from serveplan.alpaserve.profile_table import ProfileTable, load_profile_table
from serveplan.errors import InputError
from serveplan.paths import data_path


@dataclass(frozen=True)
class GpuSpec:
    """Hardware constants of the analytic model.

    Parameters
    ----------
    name : str
        GPU type key (``v100-16gb``).
    peak_flops : float
        Dense fp16 tensor-core peak, FLOP/s.
    memory_bandwidth : float
        HBM bandwidth, bytes/s.
    allreduce_bandwidth : float
        Ring all-reduce bus bandwidth inside a node (NVLink), bytes/s.
    allreduce_latency_s : float
        Fixed cost of one all-reduce call.
    p2p_bandwidth : float
        Point-to-point bandwidth between GPUs of one node, bytes/s.
    network_bandwidth : float
        Per-node network bandwidth between nodes, bytes/s.
    memory_gb : float
        Physical memory per GPU (informational; the placement budget is the cluster's).
    efficiency : float
        Fraction of peak a batch-1 transformer forward reaches (used when a model has no
        ``reference_latency_s``).
    """

    name: str
    peak_flops: float
    memory_bandwidth: float
    allreduce_bandwidth: float
    allreduce_latency_s: float
    p2p_bandwidth: float
    network_bandwidth: float
    memory_gb: float
    efficiency: float = 0.35


GPUS: dict[str, GpuSpec] = {
    # p3.16xlarge: 8 x V100-SXM2-16GB, NVLink (300 GB/s aggregate), 25 Gbit/s network.
    "v100-16gb": GpuSpec("v100-16gb", 125e12, 900e9, 100e9, 30e-6, 50e9, 25e9 / 8, 16.0),
    "a100-40gb": GpuSpec("a100-40gb", 312e12, 1555e9, 200e9, 25e-6, 150e9, 400e9 / 8, 40.0),
    "a100-80gb": GpuSpec("a100-80gb", 312e12, 2039e9, 200e9, 25e-6, 150e9, 400e9 / 8, 80.0),
    "h100-80gb": GpuSpec("h100-80gb", 989e12, 3350e9, 350e9, 20e-6, 300e9, 3200e9 / 8, 80.0),
    "h200-141gb": GpuSpec("h200-141gb", 989e12, 4800e9, 350e9, 20e-6, 300e9, 3200e9 / 8, 141.0),
}


@dataclass(frozen=True)
class AnalyticParams:
    """Tunable overhead constants of the analytic model (defaults documented in docs/alpaserve.md)."""

    op_penalty: float = 0.05
    batch_gain: float = 0.95
    allreduces_per_layer: int = 2
    dtype_bytes: int = 2


@dataclass(frozen=True)
class _Piece:
    """One partitionable unit of a model (a layer, or the embedding / output layer)."""

    flops: float  # at batch 1
    params: float
    boundary: bool  # True for transformer layers (stage cuts happen between them)


def _pieces(model: ModelSpec) -> tuple[list[float], list[float], float, float, float, float]:
    """Per-layer FLOPs and params; embedding FLOPs and params; output-layer FLOPs and streamed params (batch 1)."""
    h, s, T, V = model.hidden_size, model.seq_len, model.seq_len, model.vocab_size
    attn_scores = 4.0 * T * s * h
    layer_flops, layer_params = [], []
    for i in range(model.num_layers):
        if model.kind == "moe" and (i % model.moe_every) == model.moe_every - 1:
            e = model.num_experts
            layer_flops.append(8.0 * T * h * h + attn_scores + 2 * 16.0 * T * h * h + 2.0 * T * h * e)
            layer_params.append(4.0 * h * h + e * 8.0 * h * h + h * e)
        else:
            layer_flops.append(24.0 * T * h * h + attn_scores)
            layer_params.append(12.0 * h * h + 13.0 * h)
    emb_params = float(V * h + s * h)
    head_flops = 2.0 * T * h * V
    # The output layer is tied to the token embedding: it streams V x h weights (its time) but the
    # weights are counted once, with the embedding on the first stage.
    head_stream_params = float(V * h)
    return layer_flops, layer_params, 0.0, emb_params, head_flops, head_stream_params


def _minmax_partition(costs: np.ndarray, k: int) -> list[int]:
    """Cut ``costs`` into ``k`` non-empty contiguous parts minimising the largest part sum.

    Returns the ``k+1`` cut indices. O(k n^2) dynamic programme (n = layers <= a few hundred);
    ties prefer earlier cuts, deterministically.
    """
    n = len(costs)
    prefix = np.concatenate([[0.0], np.cumsum(costs)])
    inf = float("inf")
    best = np.full((k + 1, n + 1), inf)
    arg = np.zeros((k + 1, n + 1), dtype=np.int64)
    best[0, 0] = 0.0
    for j in range(1, k + 1):
        for i in range(j, n - (k - j) + 1):
            # part j covers [p, i)
            ps = np.arange(j - 1, i)
            vals = np.maximum(best[j - 1, ps], prefix[i] - prefix[ps])
            t = int(np.argmin(vals))
            best[j, i] = vals[t]
            arg[j, i] = ps[t]
    cuts = [n]
    i = n
    for j in range(k, 0, -1):
        i = int(arg[j, i])
        cuts.append(i)
    return cuts[::-1]


@dataclass(eq=False)
class LatencyModel:
    """Per-stage latency and weight memory for (model, config, batch size).

    Parameters
    ----------
    gpu : str, default "v100-16gb"
        GPU type (key of :data:`GPUS` for the analytic model; name of the profile CSV).
    table : ProfileTable, optional
        Measured profiles; keys present here are used as measured, the rest modelled.
    gpus_per_node : int, default 8
        Decides which pipeline boundaries cross nodes (analytic model only).
    params : AnalyticParams
        Overhead constants of the analytic model.
    profile_path : str, optional
        Where ``table`` was read from.
    profile_setting : str, optional
        What instance files record as ``profile`` (``"auto"``, a path, or None); defaults to
        ``profile_path``.
    """

    gpu: str = "v100-16gb"
    table: ProfileTable | None = None
    gpus_per_node: int = 8
    params: AnalyticParams = field(default_factory=AnalyticParams)
    profile_path: str | None = None
    profile_setting: str | None = None
    _cache: dict[Any, tuple[np.ndarray, np.ndarray, str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.gpu not in GPUS and self.table is None:
            raise InputError(
                "no analytic constants and no profile table for this GPU",
                field="gpu",
                value=self.gpu,
                hint=f"use one of {sorted(GPUS)} or give a profile table",
            )

    # ------------------------------------------------------------------ public API
    def stage_latencies_s(self, model: ModelSpec, config: ParallelConfig, batch_size: int = 1) -> np.ndarray:
        """Forward latency of each of the ``config.pp`` stages, seconds (read-only array)."""
        return self._get(model, config, batch_size)[0]

    def stage_weight_bytes(self, model: ModelSpec, config: ParallelConfig) -> np.ndarray:
        """Weight bytes held by each GPU of each stage (read-only array)."""
        return self._get(model, config, 1)[1]

    def source(self, model: ModelSpec, config: ParallelConfig, batch_size: int = 1) -> str:
        """``"measured"`` when the profile table has this key, else ``"modelled"``."""
        return self._get(model, config, batch_size)[2]

    def latency_s(self, model: ModelSpec, config: ParallelConfig, batch_size: int = 1) -> float:
        """End-to-end latency of one request alone (sum of stage latencies)."""
        return float(self.stage_latencies_s(model, config, batch_size).sum())

    def single_gpu_latency_s(self, model: ModelSpec) -> float:
        """The (pp=1, op=1) batch-1 latency: AlpaServe's SLO base (even if the model does not fit one GPU)."""
        return self.latency_s(model, ParallelConfig(1, 1), 1)

    def max_stage_weight_bytes(self, model: ModelSpec, config: ParallelConfig) -> float:
        """What the memory check counts for one model on one GPU of a group with ``config``."""
        return float(self.stage_weight_bytes(model, config).max())

    # ------------------------------------------------------------------ internals
    def _get(self, model: ModelSpec, config: ParallelConfig, batch_size: int) -> tuple[np.ndarray, np.ndarray, str]:
        key = (model, config.pp, config.op, int(batch_size))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if batch_size < 1:
            raise InputError("batch size must be >= 1", field="batch_size", value=batch_size)
        prof = None
        if self.table is not None:
            prof = self.table.get(model.name, config.pp, config.op, int(batch_size), model.seq_len)
        if prof is not None:
            lat, w, src = prof.latency_s.copy(), prof.weight_bytes.copy(), "measured"
        else:
            lat, w = self._analytic(model, config, int(batch_size))
            src = "modelled"
        lat.setflags(write=False)
        w.setflags(write=False)
        self._cache[key] = (lat, w, src)
        return lat, w, src

    def _anchor(self, model: ModelSpec) -> tuple[float, float, GpuSpec] | None:
        """What the analytic model is calibrated to: (single-GPU batch-1 latency, total weight bytes, GPU).

        1. A measured (pp=1, op=1, batch 1) row of this model in the profile table: the modelled
           configs then agree with the measured single-GPU point of the same GPU (and use the measured
           weight total).
        2. Else the model's ``reference_latency_s``, which holds on ``reference_gpu``: the compute
           efficiency it implies there is carried over to this GPU's constants.
        3. Else nothing (plain FLOPs / (peak x efficiency)).
        """
        if self.table is not None:
            prof = self.table.get(model.name, 1, 1, 1, model.seq_len)
            if prof is not None and prof.latency_s.sum() > 0:
                w = float(prof.weight_bytes.sum()) or model.weight_bytes
                return float(prof.latency_s.sum()), w, self._gpu_spec()
        if model.reference_latency_s is not None:
            return model.reference_latency_s, model.weight_bytes, GPUS.get(model.reference_gpu, self._gpu_spec())
        return None

    def _gpu_spec(self) -> GpuSpec:
        return GPUS.get(self.gpu, GPUS["v100-16gb"])

    def _calibration(self, model: ModelSpec) -> tuple[float, float]:
        """(compute-time multiplier, total weight bytes) of the analytic model for ``model`` (cached)."""
        key = ("calibration", model)
        hit = self._cache.get(key)
        if hit is not None:
            return hit  # type: ignore[return-value]
        anchor = self._anchor(model)
        if anchor is None:
            out = (1.0, model.weight_bytes)
        else:
            target, weight_bytes, gpu = anchor
            lf, lp, _ef, ep, hf, hp = _pieces(model)
            bpp = weight_bytes / (sum(lp) + ep)
            flops = np.array([*lf, hf]) / (gpu.peak_flops * gpu.efficiency)
            mem = np.array([*lp, hp]) * bpp / gpu.memory_bandwidth
            if mem.sum() >= target:
                raise InputError(
                    "reference latency is below the time to read the weights once",
                    field=f"models[{model.name}].reference_latency_s",
                    value=target,
                )
            # sum(max(scale * flops, mem)) is increasing in scale: bisection to 1e-12 relative
            lo, hi = 0.0, target / max(flops.sum(), 1e-300)
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                if np.maximum(mid * flops, mem).sum() < target:
                    lo = mid
                else:
                    hi = mid
            out = (0.5 * (lo + hi), weight_bytes)
        self._cache[key] = out  # type: ignore[assignment]
        return out

    def _analytic(self, model: ModelSpec, config: ParallelConfig, bs: int) -> tuple[np.ndarray, np.ndarray]:
        gpu = self._gpu_spec()
        prm = self.params
        pp, op = config.pp, config.op
        lf, lp, ef, ep, hf, hp = _pieces(model)
        if pp > model.num_layers:
            raise InputError(
                "more pipeline stages than layers",
                field="config.pp",
                value=pp,
                hint=f"{model.name} has {model.num_layers} layers",
            )
        scale, weight_bytes = self._calibration(model)
        bpp = weight_bytes / (sum(lp) + ep)
        eff = gpu.peak_flops * gpu.efficiency
        batch_factor = bs * prm.batch_gain ** math.log2(bs)
        op_factor = (1.0 + prm.op_penalty * math.log2(op)) / op

        def compute(f: float, p: float) -> float:
            # memory-bound floor: each GPU streams its shard of the weights once per forward
            return max(f * batch_factor / eff * scale * op_factor, p * bpp / op / gpu.memory_bandwidth)

        act_bytes = bs * model.seq_len * model.hidden_size * prm.dtype_bytes
        if op > 1:
            ar = prm.allreduces_per_layer * (
                2.0 * (op - 1) / op * act_bytes / gpu.allreduce_bandwidth + gpu.allreduce_latency_s
            )
        else:
            ar = 0.0
        layer_t = np.array([compute(f, p) + ar for f, p in zip(lf, lp, strict=True)])
        emb_t, head_t = compute(ef, 0.0), compute(hf, hp)  # a lookup reads T rows only

        # stage cut on batch-1 costs, so the partition (and the weights) do not depend on batch size
        def cost1(f: float, p: float) -> float:
            return max(f / eff * scale * op_factor, p * bpp / op / gpu.memory_bandwidth)

        costs = np.array([cost1(f, p) + ar for f, p in zip(lf, lp, strict=True)])
        costs[0] += cost1(ef, 0.0)
        costs[-1] += cost1(hf, hp)
        cuts = _minmax_partition(costs, pp)
        lat = np.empty(pp)
        w = np.empty(pp)
        for k in range(pp):
            a, b = cuts[k], cuts[k + 1]
            lat[k] = layer_t[a:b].sum()
            params = sum(lp[a:b])
            if k == 0:
                lat[k] += emb_t
                params += ep
            if k == pp - 1:
                lat[k] += head_t
            if k > 0:
                crosses = (k * op) % self.gpus_per_node == 0
                bw = gpu.network_bandwidth if crosses else gpu.p2p_bandwidth
                lat[k] += act_bytes / bw
            w[k] = params * bpp / op
        return lat, w

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """JSON form ``{"gpu":.., "profile": path|None, "gpus_per_node":.., "params": {...}}``."""
        return {
            "gpu": self.gpu,
            "profile": self.profile_setting if self.profile_setting is not None else self.profile_path,
            "gpus_per_node": self.gpus_per_node,
            "params": asdict(self.params),
        }

    @classmethod
    def from_dict(
        cls, d: dict[str, Any] | None, *, source: str | None = None, base_dir: Path | None = None
    ) -> LatencyModel:
        """Read the JSON form.

        ``profile: "auto"`` loads ``data/profiles/<gpu>.csv`` when it exists; a relative path is taken
        relative to ``base_dir`` (the instance file's folder) when given.
        """
        d = dict(d or {})
        gpu = d.get("gpu", "v100-16gb")
        profile = d.get("profile", "auto")
        params = d.get("params") or {}
        try:
            ap = replace(AnalyticParams(), **params)
        except TypeError as exc:
            raise InputError(f"bad analytic parameter: {exc}", source=source, field="latency_model.params") from None
        table, path = None, None
        if profile == "auto":
            cand = default_profile_path(gpu)
            if cand.exists():
                table, path = load_profile_table(cand), str(cand)
        elif profile:
            p = Path(profile)
            if base_dir is not None and not p.is_absolute():
                p = base_dir / p
            table, path = load_profile_table(p), str(p)
        try:
            return cls(
                gpu=gpu,
                table=table,
                gpus_per_node=int(d.get("gpus_per_node", 8)),
                params=ap,
                profile_path=path,
                profile_setting=None if profile is None else str(profile),
            )
        except InputError as exc:
            raise exc.relabel(source=source, field="latency_model.gpu") from None


def default_profile_path(gpu: str) -> Path:
    """``data/profiles/<gpu>.csv``."""
    return data_path("profiles", f"{gpu}.csv")


def latency_model_for(
    gpu: str = "v100-16gb", gpus_per_node: int = 8, profile: str | Path | None = "auto"
) -> LatencyModel:
    """A latency model for ``gpu``: measured rows from ``data/profiles/<gpu>.csv`` if shipped, analytic otherwise."""
    return LatencyModel.from_dict({"gpu": gpu, "gpus_per_node": gpus_per_node, "profile": profile})
