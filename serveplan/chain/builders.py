"""Build server-chain instances from GPU types, model specs and RIPE Atlas RTTs (Sun, He, Hou 2026, simulations).

* GPU types (``data/gpu_types/*.toml``) and model specs (``data/chain_models/*.toml``) are documented in the
  README.md beside them.
* Per-block computation time (the paper's footnote): tau^p_j = t_o + (F / f_j) l_in + (s_m / b_j) (l_out - 1) ms.
* Communication time tau^c_j from the orchestrator-to-server RTT, two readings (``comm_reading``):
  ``"paper"`` (default): l_out (RTT_j + 18 ms), one relayed round trip per output token plus PETALS' 18 ms
  serialisation overhead per hop; ``"author_code"``: (RTT_j + 50 ms) + (l_out - 1) RTT_j (the authors' v4
  simulator: a 50 ms prefill overhead, then one plain round trip per further token).
* Network (RIPE Atlas EU anchors): each anchor's characteristic RTT is the median of all its measurements (the
  four monitor columns of all its rows); the RTT between anchors i and j is
  0.3 median_i + 0.3 median_j + 0.01 ms/km x great-circle distance (the authors' construction; the paper only
  says the RTTs come from RIPE Atlas). The orchestrator is the lowest-median anchor (``orchestrator=
  "lowest_median"``, authors' code) or a random one (``"random"``, the paper's words); the J servers are drawn
  at random from the other anchors (without replacement; ``allow_repeat=True`` draws with replacement so J may
  exceed the 319 other anchors).
* Heterogeneity: floor(eta J) servers are high-performance (``eta_rounding="floor"``, authors' code; or
  ``"round"``), chosen at random (``high_perf="random"``, the paper) or as the servers of lowest RTT to the
  orchestrator (``"lowest_rtt"``, the authors' code, which favours chains of fast, close servers).

Every draw uses ``numpy.random.default_rng(seed)``: same arguments, same instance.
"""

from __future__ import annotations

import csv
import math
import tomllib
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from serveplan.chain.instance import ChainInstance, Server
from serveplan.errors import InputError
from serveplan.paths import data_path

PETALS_HOP_OVERHEAD_MS = 18.0
"""Serialisation/deserialisation overhead per relayed hop (PETALS' constant, used by the paper)."""
AUTHOR_CODE_PREFILL_OVERHEAD_MS = 50.0
"""The authors' v4 simulator's overhead on the prefill round trip."""
RTT_LOCAL_SHARE = 0.3
"""Share of each anchor's median RTT counted as its local delay in the pairwise RTT construction."""
RTT_MS_PER_KM = 0.01
"""Round-trip propagation delay per km of great-circle distance (about 200 km/ms in fibre, both ways)."""
EARTH_RADIUS_KM = 6371.0


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(".", "_").replace(" ", "_")


def _load_toml(folder: str, name: str, what: str) -> tuple[dict[str, Any], Path]:
    root = data_path(folder)
    path = root / f"{_normalise(name)}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in root.glob("*.toml"))
        raise InputError(f"unknown {what}", field=what, value=name, hint=f"known: {', '.join(known)}")
    with path.open("rb") as fh:
        try:
            return tomllib.load(fh), path
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"invalid TOML: {exc}", source=str(path)) from None


def _take(cls: type, raw: dict[str, Any], path: Path) -> Any:
    unknown = sorted(set(raw) - {f.name for f in fields(cls)})
    if unknown:
        raise InputError("unknown fields", source=str(path), value=unknown)
    try:
        return cls(**raw)
    except TypeError as exc:
        raise InputError(f"missing fields ({exc})", source=str(path)) from None
    except InputError as exc:
        raise exc.relabel(source=str(path), hint=None) from None


# Where per-block compute times come from: the paper's formula, the authors' simulator constants, or
# measured decoder-block tables (data/profiles/).
PROFILE_READINGS = ("paper", "author_code", "measured")


@dataclass(frozen=True)
class GpuType:
    """A GPU type (see ``data/gpu_types/README.md``): memory, prefill TFLOPS, decode bandwidth."""

    name: str
    memory_gb: float
    tflops: float
    bandwidth_gb_per_ms: float
    description: str = ""
    tflops_author_code: float | None = None
    profile: str | None = None  # stem of a measured table in data/profiles/ (``h100-80gb``), if one exists
    source: str = ""

    def __post_init__(self) -> None:
        for f in ("memory_gb", "tflops", "bandwidth_gb_per_ms"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise InputError("must be a positive number", field=f, value=v)


@dataclass(frozen=True)
class ModelSpec:
    """A model of L identical blocks (see ``data/chain_models/README.md``)."""

    name: str
    num_blocks: int
    block_memory_gb: float
    cache_memory_gb: float
    block_gflop_per_token: float
    mean_input_tokens: float
    mean_output_tokens: float
    per_block_overhead_ms: float = 1.0
    max_sequence_tokens: int = 2048
    precision: str = ""
    description: str = ""
    source: str = ""
    author_code: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.num_blocks, int) or self.num_blocks < 1:
            raise InputError("must be an integer >= 1", field="num_blocks", value=self.num_blocks)
        for f in ("block_memory_gb", "cache_memory_gb", "block_gflop_per_token", "mean_input_tokens"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise InputError("must be a positive number", field=f, value=v)
        if not self.mean_output_tokens >= 1:
            raise InputError("must be >= 1", field="mean_output_tokens", value=self.mean_output_tokens)

    def reading(self, profile_reading: str) -> ModelSpec:
        """The spec as read: unchanged (``"paper"``), or with the ``[author_code]`` overrides applied."""
        if profile_reading not in PROFILE_READINGS:
            raise InputError(
                f"must be one of {', '.join(PROFILE_READINGS)}", field="profile_reading", value=profile_reading
            )
        if profile_reading != "author_code" or not self.author_code:
            return self
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(self.author_code)
        values["author_code"] = None
        return ModelSpec(**values)


def load_gpu_type(name: str) -> GpuType:
    """The GPU type ``data/gpu_types/<name>.toml`` (name case-insensitive; '-' and '.' read as '_')."""
    raw, path = _load_toml("gpu_types", name, "gpu_type")
    return _take(GpuType, raw, path)


def load_model_spec(name: str) -> ModelSpec:
    """The model spec ``data/chain_models/<name>.toml``."""
    raw, path = _load_toml("chain_models", name, "model")
    return _take(ModelSpec, raw, path)


def list_gpu_types() -> list[str]:
    """Names of the shipped GPU types."""
    return sorted(p.stem for p in data_path("gpu_types").glob("*.toml"))


def list_model_specs() -> list[str]:
    """Names of the shipped model specs."""
    return sorted(p.stem for p in data_path("chain_models").glob("*.toml"))


def block_rates_ms(model: ModelSpec, gpu: GpuType, profile_reading: str = "paper") -> tuple[float, float, float]:
    """Per block: ``(t_o, prefill ms per input token, decode ms per output token)`` for one job.

    ``paper``: F / f_j (GFLOP / TFLOPS, compute-bound prefill) and s_m / b_j (GB / (GB/ms), bandwidth-bound
    decode), the paper's footnote; ``author_code``: the same with the authors' simulator constants;
    ``measured``: both rates read from the GPU's measured decoder-block table
    (:func:`measured_block_rates_ms`). t_o is the model spec's per-block overhead in every reading.
    """
    if profile_reading == "measured":
        prefill, decode = measured_block_rates_ms(model, gpu)
        return model.per_block_overhead_ms, prefill, decode
    model = model.reading(profile_reading)
    tflops = gpu.tflops
    if profile_reading == "author_code" and gpu.tflops_author_code is not None:
        tflops = gpu.tflops_author_code
    return (
        model.per_block_overhead_ms,
        model.block_gflop_per_token / tflops,
        model.block_memory_gb / gpu.bandwidth_gb_per_ms,
    )


def measured_block_rates_ms(model: ModelSpec, gpu: GpuType) -> tuple[float, float]:
    """Prefill ms per input token and decode ms per output token of one block, from measured tables.

    Reads ``data/profiles/<gpu.profile>_blocks.csv`` (``serveplan profile``; docs/profiles.md) at batch size 1,
    one job alone, as the chain model serves each reserved job: prefill is the longest measured prompt's
    latency over its length (per token, a 2048-token prefill costs 0.9-1.0 x a 512-token one on an H100),
    decode the latency at the measured KV-cache length closest to the model's mean input length.
    """
    if gpu.profile is None:
        raise InputError(
            "no measured block table for this GPU type",
            field="profile_reading",
            value=gpu.name,
            hint="GPU types with one: " + ", ".join(t for t in list_gpu_types() if load_gpu_type(t).profile),
        )
    path = data_path("profiles") / f"{gpu.profile}_blocks.csv"
    if not path.exists():
        raise InputError("measured block table not found", source=str(path), field="profile", value=gpu.profile)
    if model.precision.lower() not in ("", "fp16", "bf16"):  # same bytes and kernel speed
        raise InputError(
            "the measured block tables are fp16; this model spec is quantised",
            field="precision",
            value=model.precision,
            hint="use profile_reading='paper' for quantised specs",
        )
    key = model.name.lower()
    table = _measured_blocks(path)
    rows = [r for r in table if r.model == key and r.batch_size == 1]
    if not rows:
        measured = sorted({r.model for r in table})
        raise InputError(
            "model not in the measured block table",
            source=str(path),
            field="model",
            value=key,
            hint=f"measured: {measured}",
        )
    prefill = max((r for r in rows if r.phase == "prefill"), key=lambda r: r.seq_len)
    decode = min((r for r in rows if r.phase == "decode"), key=lambda r: abs(r.seq_len - model.mean_input_tokens))
    return prefill.latency_s * 1e3 / prefill.seq_len, decode.latency_s * 1e3


@lru_cache(maxsize=4)
def _measured_blocks(path: Path) -> tuple[Any, ...]:
    """The rows of a measured block table, read once per process (an instance asks once per server)."""
    from serveplan.profiles.profile_table import read_blocks_csv

    return tuple(read_blocks_csv(path))


def per_block_compute_time_s(
    model: ModelSpec,
    gpu: GpuType,
    *,
    input_tokens: float | None = None,
    output_tokens: float | None = None,
    profile_reading: str = "paper",
) -> float:
    """tau^p_j = t_o + (F / f_j) l_in + (s_m / b_j) (l_out - 1), in seconds (paper's footnote).

    The two per-token rates come from :func:`block_rates_ms` in the chosen reading (``paper``,
    ``author_code`` or ``measured``).
    """
    overhead, prefill, decode = block_rates_ms(model, gpu, profile_reading)
    spec = model.reading(profile_reading)
    l_in = spec.mean_input_tokens if input_tokens is None else input_tokens
    l_out = spec.mean_output_tokens if output_tokens is None else output_tokens
    return (overhead + prefill * l_in + decode * (l_out - 1)) / 1000.0


def comm_time_s(rtt_ms: np.ndarray | float, output_tokens: float, reading: str = "paper") -> np.ndarray:
    """tau^c_j from the orchestrator-server RTT (ms), in seconds; see the module docstring for the readings."""
    rtt = np.asarray(rtt_ms, dtype=float)
    if reading == "paper":
        ms = output_tokens * (rtt + PETALS_HOP_OVERHEAD_MS)
    elif reading == "author_code":
        ms = (rtt + AUTHOR_CODE_PREFILL_OVERHEAD_MS) + (output_tokens - 1) * rtt
    else:
        raise InputError("must be 'paper' or 'author_code'", field="comm_reading", value=reading)
    return ms / 1000.0


@dataclass(frozen=True)
class RipeAtlasNetwork:
    """RIPE Atlas anchors: id, characteristic (median) RTT in ms, and location in degrees."""

    anchor_ids: np.ndarray
    median_rtt_ms: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray

    @property
    def num_anchors(self) -> int:
        """Number of anchors."""
        return int(self.anchor_ids.size)

    def distance_km(self, i: np.ndarray | int, j: np.ndarray | int) -> np.ndarray:
        """Great-circle (haversine) distance between anchors (index arrays broadcast)."""
        lat1, lon1 = np.radians(self.latitude[i]), np.radians(self.longitude[i])
        lat2, lon2 = np.radians(self.latitude[j]), np.radians(self.longitude[j])
        h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
        return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))

    def rtt_ms(self, i: np.ndarray | int, j: np.ndarray | int) -> np.ndarray:
        """RTT(i, j) = 0.3 median_i + 0.3 median_j + 0.01 ms/km x distance (0 on the diagonal)."""
        i, j = np.asarray(i), np.asarray(j)
        r = RTT_LOCAL_SHARE * (self.median_rtt_ms[i] + self.median_rtt_ms[j]) + RTT_MS_PER_KM * self.distance_km(i, j)
        return np.where(i == j, 0.0, r)


@lru_cache(maxsize=4)
def load_ripe_atlas(path: str | None = None) -> RipeAtlasNetwork:
    """Read the RIPE Atlas CSV (default: the shipped copy) into per-anchor median RTTs and locations.

    Anchors are sorted by id. Non-positive or non-finite latencies are ignored.
    """
    p = Path(path) if path else data_path("ripe_atlas_eu_rtt", "LearningDataset_RTT_RipeAtlasEU.csv")
    samples: dict[int, list[float]] = {}
    where: dict[int, tuple[float, float]] = {}
    try:
        with p.open(newline="") as fh:
            for n, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    aid = int(row["anchor_id"])
                    lats = [float(row[f"latency_m{k}"]) for k in range(1, 5)]
                    loc = (float(row["latitude"]), float(row["longitude"]))
                except (KeyError, TypeError, ValueError) as exc:
                    raise InputError(f"bad row {n}: {exc}", source=str(p)) from None
                samples.setdefault(aid, []).extend(x for x in lats if x > 0 and math.isfinite(x))
                where.setdefault(aid, loc)
    except OSError as exc:
        raise InputError(f"cannot read RIPE Atlas data: {exc.strerror}", source=str(p)) from None
    ids = np.array(sorted(a for a in samples if samples[a]), dtype=np.int64)
    if ids.size < 2:
        raise InputError("need at least two anchors with valid RTTs", source=str(p))
    med = np.array([float(np.median(samples[a])) for a in ids])
    lat = np.array([where[a][0] for a in ids])
    lon = np.array([where[a][1] for a in ids])
    return RipeAtlasNetwork(ids, med, lat, lon)


def ripe_instance(
    num_servers: int = 20,
    eta: float = 0.2,
    arrival_rate: float = 0.2,
    *,
    target_load: float = 0.7,
    model: str = "bloom_176b",
    high_gpu: str = "a100_3g_40gb",
    low_gpu: str = "a100_2g_20gb",
    seed: int = 0,
    orchestrator: str = "lowest_median",
    high_perf: str = "random",
    eta_rounding: str = "floor",
    comm_reading: str = "paper",
    profile_reading: str = "paper",
    allow_repeat: bool = False,
    network: RipeAtlasNetwork | None = None,
) -> ChainInstance:
    """The paper's simulated instance: J servers drawn from RIPE Atlas EU anchors (see the module docstring).

    Defaults are the paper's: J = 20, eta = 0.2, lambda = 0.2 jobs/s, rho_bar = 0.7, BLOOM-176B on A100
    3g.40gb (high-perf) and 2g.20gb (low-perf) slices.

    Parameters
    ----------
    num_servers : int
        J (>= 1).
    eta : float
        Fraction of high-performance servers, in [0, 1].
    arrival_rate : float
        lambda, jobs per second.
    orchestrator : {"lowest_median", "random"}
    high_perf : {"random", "lowest_rtt"}
    eta_rounding : {"floor", "round"}
    comm_reading : {"paper", "author_code"}
    profile_reading : {"paper", "author_code", "measured"}
        Per-block compute numbers: the paper's, the authors' simulator overrides, or the GPU types'
        measured decoder-block tables (only GPU types with a ``profile``, e.g. ``h100_80gb``).
    allow_repeat : bool
        Draw servers' anchors with replacement (needed for J > number of anchors - 1).
    """
    if isinstance(num_servers, bool) or not isinstance(num_servers, int) or num_servers < 1:
        raise InputError("must be an integer >= 1", field="num_servers", value=num_servers)
    if not 0.0 <= eta <= 1.0:
        raise InputError("must lie in [0, 1]", field="eta", value=eta)
    choices = {
        "orchestrator": (orchestrator, ("lowest_median", "random")),
        "high_perf": (high_perf, ("random", "lowest_rtt")),
        "eta_rounding": (eta_rounding, ("floor", "round")),
        "comm_reading": (comm_reading, ("paper", "author_code")),
        "profile_reading": (profile_reading, PROFILE_READINGS),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise InputError(f"must be one of {', '.join(allowed)}", field=key, value=value)
    net = network or load_ripe_atlas()
    rng = np.random.default_rng(seed)
    spec = load_model_spec(model).reading(profile_reading)
    hi, lo = load_gpu_type(high_gpu), load_gpu_type(low_gpu)
    random_hub = int(rng.integers(net.num_anchors))  # drawn in both readings so the server draw is comparable
    hub = int(np.argmin(net.median_rtt_ms)) if orchestrator == "lowest_median" else random_hub
    others = np.delete(np.arange(net.num_anchors), hub)
    if num_servers > others.size and not allow_repeat:
        raise InputError(
            f"only {others.size} anchors besides the orchestrator",
            field="num_servers",
            value=num_servers,
            hint="pass allow_repeat=True to draw anchors with replacement",
        )
    anchors = rng.choice(others, size=num_servers, replace=allow_repeat)
    rtt = net.rtt_ms(hub, anchors)
    n_high = math.floor(eta * num_servers) if eta_rounding == "floor" else round(eta * num_servers)
    shuffled = rng.permutation(num_servers)
    high = shuffled[:n_high] if high_perf == "random" else np.argsort(rtt, kind="stable")[:n_high]
    is_high = np.zeros(num_servers, dtype=bool)
    is_high[high] = True
    tau_c = comm_time_s(rtt, spec.mean_output_tokens, comm_reading)
    tau_p = {
        True: per_block_compute_time_s(spec, hi, profile_reading=profile_reading),
        False: per_block_compute_time_s(spec, lo, profile_reading=profile_reading),
    }
    servers = tuple(
        Server(
            name=f"{'hi' if is_high[j] else 'lo'}-{int(net.anchor_ids[anchors[j]])}-{j}",
            memory_gb=(hi if is_high[j] else lo).memory_gb,
            comm_time_s=float(tau_c[j]),
            compute_time_s=tau_p[bool(is_high[j])],
        )
        for j in range(num_servers)
    )
    return ChainInstance(
        servers=servers,
        num_blocks=spec.num_blocks,
        block_memory_gb=spec.block_memory_gb,
        cache_memory_gb=spec.cache_memory_gb,
        arrival_rate=arrival_rate,
        target_load=target_load,
        name=f"ripe-{_normalise(model)}-J{num_servers}-eta{eta:g}-lam{arrival_rate:g}-seed{seed}",
    )


def synthetic_instance(
    num_servers: int,
    num_blocks: int,
    *,
    arrival_rate: float,
    seed: int = 0,
    memory_choices_gb: tuple[float, ...] = (20.0, 40.0),
    block_memory_gb: float = 1.32,
    cache_memory_gb: float = 0.11,
    comm_range_s: tuple[float, float] = (0.2, 1.5),
    compute_range_s: tuple[float, float] = (0.09, 0.18),
    target_load: float = 0.7,
) -> ChainInstance:
    """Random servers (memory from ``memory_choices_gb``, times uniform in the ranges), seeded.

    For scale tests and benchmarks where the RIPE Atlas anchors are too few; the defaults resemble the paper's
    BLOOM-176B setting.
    """
    rng = np.random.default_rng(seed)
    mem = rng.choice(np.asarray(memory_choices_gb, dtype=float), size=num_servers)
    comm = rng.uniform(*comm_range_s, size=num_servers)
    comp = rng.uniform(*compute_range_s, size=num_servers)
    servers = tuple(Server(f"s{j}", float(mem[j]), float(comm[j]), float(comp[j])) for j in range(num_servers))
    return ChainInstance(
        servers,
        num_blocks,
        block_memory_gb,
        cache_memory_gb,
        arrival_rate,
        target_load,
        name=f"synthetic-J{num_servers}-L{num_blocks}-seed{seed}",
    )
