"""Measured profile tables: the model shapes that are profiled, stage aggregation and the CSV formats.

This module is pure Python (no PyTorch): it turns per-layer measurements into the per-stage rows that
the AlpaServe latency model reads, and writes and reads the shipped tables under ``data/profiles/``.
The measuring itself lives in :mod:`serveplan.profiles.torch_profiler`.

Table formats (one file per GPU type, ``<gpu>`` a slug such as ``h100-80gb``):

* ``<gpu>.csv`` -- ``model,pp,op,batch_size,seq_len,stage,latency_s,weight_bytes,act_bytes``: one row per
  pipeline stage of a (pp, op) configuration. The stage latency is the sum of the measured latencies of
  the stage's layers (each measured under tensor parallelism of degree ``op``), plus, for every stage
  after the first, the measured GPU-to-GPU transfer of the activation entering it when the table was
  measured on a machine with more than one GPU. ``weight_bytes`` is the weight held by each GPU of the
  stage, ``act_bytes`` the peak activation memory of one GPU of the stage (largest over its layers).
* ``<gpu>_blocks.csv`` -- ``model,phase,batch_size,seq_len,latency_s,weight_bytes,kv_cache_bytes``: one
  decoder block of a chain model; ``phase`` is ``prefill`` (``seq_len`` tokens) or ``decode`` (one token
  attending to a KV cache of ``seq_len`` tokens).
* ``<gpu>_layers.csv`` -- the raw per-layer measurements the stage rows are built from.
* ``<gpu>_e2e.csv`` -- whole-model forward latencies measured end to end, next to the sum of stages.
* ``<gpu>_block_stack.csv`` --
  ``model,phase,n_blocks,gpus,batch_size,seq_len,latency_s,sum_of_blocks_s,transfer_s``: a chain model's
  ``n_blocks`` decoder blocks (all of them for a whole model) run back to back on one GPU, or split into
  a chain over ``gpus`` GPUs, next to ``n_blocks`` times the single block's latency and the measured
  transfers between the GPUs (the chain model's composition rule).
* ``<gpu>_p2p.csv`` -- measured GPU-to-GPU transfer latency by message size.
* ``<gpu>.meta.json`` -- GPU model, driver, torch and CUDA versions, date, command and notes.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from serveplan.errors import InputError

PROFILE_HEADER = ("model", "pp", "op", "batch_size", "seq_len", "stage", "latency_s", "weight_bytes", "act_bytes")
BLOCK_HEADER = ("model", "phase", "batch_size", "seq_len", "latency_s", "weight_bytes", "kv_cache_bytes")
LAYER_HEADER = ("model", "op", "kind", "batch_size", "seq_len", "latency_s", "weight_bytes", "act_bytes")
E2E_HEADER = ("model", "pp", "op", "batch_size", "seq_len", "latency_s", "sum_of_stages_s")
P2P_HEADER = ("nbytes", "latency_s")
STACK_HEADER = (
    "model", "phase", "n_blocks", "gpus", "batch_size", "seq_len", "latency_s", "sum_of_blocks_s", "transfer_s"
)  # fmt: skip

LAYER_KINDS = ("embed", "dense", "moe", "head")
PHASES = ("prefill", "decode")


@dataclass(frozen=True)
class TransformerShape:
    """The shape of a transformer that the profiler builds with random weights.

    Parameters
    ----------
    name : str
        Model name as in the AlpaServe catalogue (``bert-1.3b``) or the chain models (``llama-2-7b``).
    family : {"bert", "moe", "llama", "bloom"}
        ``bert``: post-LayerNorm encoder, GELU MLP, biases (Alpa's BERT benchmark model).
        ``moe``: the same encoder with a top-2 mixture-of-experts FFN every ``moe_every`` layers
        (GShard-style, as in Alpa's MoE benchmark suite). ``llama``: pre-RMSNorm decoder block,
        SwiGLU MLP, no biases, grouped-query attention when ``kv_heads < heads``. ``bloom``:
        pre-LayerNorm decoder block with biases and a GELU MLP.
    hidden : int
        Hidden size.
    layers : int
        Transformer layers (blocks).
    heads : int
        Attention heads.
    seq_len : int
        Tokens per request that the AlpaServe tables are measured at (decoder blocks take their
        sequence lengths from the command line instead).
    vocab : int
        Vocabulary size (embedding and output head); 0 for decoder-block-only models.
    ffn : int
        FFN intermediate size (per expert for MoE layers).
    experts : int
        Experts per MoE layer (0 for dense models).
    moe_every : int
        Layer ``i`` (0-based) is an MoE layer when ``i % moe_every == moe_every - 1``.
    kv_heads : int
        Key/value heads (grouped-query attention); equal to ``heads`` for multi-head attention.
    """

    name: str
    family: str
    hidden: int
    layers: int
    heads: int
    seq_len: int
    vocab: int
    ffn: int
    experts: int = 0
    moe_every: int = 2
    kv_heads: int = 0

    def __post_init__(self) -> None:
        if self.family not in ("bert", "moe", "llama", "bloom"):
            raise InputError("unknown model family", field=f"{self.name}.family", value=self.family)
        for f in ("hidden", "layers", "heads", "seq_len", "ffn", "moe_every"):
            if getattr(self, f) < 1:
                raise InputError("must be a positive integer", field=f"{self.name}.{f}", value=getattr(self, f))
        if self.hidden % self.heads:
            raise InputError("hidden must be a multiple of heads", field=f"{self.name}.hidden", value=self.hidden)
        if self.kv_heads == 0:
            object.__setattr__(self, "kv_heads", self.heads)
        if self.heads % self.kv_heads:
            raise InputError("heads must be a multiple of kv_heads", field=f"{self.name}.kv_heads", value=self.kv_heads)
        if self.family == "moe" and self.experts < 2:
            raise InputError("an MoE model needs at least 2 experts", field=f"{self.name}.experts", value=self.experts)

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden // self.heads

    def layer_kinds(self) -> list[str]:
        """The model's layers in order: ``embed``, the transformer layers (``dense``/``moe``), ``head``."""
        body = [
            "moe" if self.family == "moe" and i % self.moe_every == self.moe_every - 1 else "dense"
            for i in range(self.layers)
        ]
        return ["embed", *body, "head"]

    def distinct_kinds(self) -> list[str]:
        """Layer kinds to measure once each (identical layers are measured once and reused)."""
        return [k for k in LAYER_KINDS if k in set(self.layer_kinds())]

    def max_tp(self) -> int:
        """Largest power-of-two tensor-parallel degree the shape divides into evenly."""
        tp = 1
        while all(x % (2 * tp) == 0 for x in (self.heads, self.kv_heads, self.ffn, self.vocab or 2 * tp)):
            tp *= 2
        return tp


# AlpaServe's models (digest section 5: seq_len/hidden/layers/heads/vocab from alpa-projects/mms
# benchmarks/alpa/bert_model.py). MoE models follow Alpa's GShard benchmark suite (suite_manual_moe:
# seq 1024, 16 heads, vocab 32000, FFN intermediate 8*hidden, an MoE layer every second layer); its
# "1.3B" and "2.4B" entries give 1.35e9 and 2.38e9 parameters (2.7 GB, 4.8 GB in fp16). That suite has
# no 5.3B entry: hidden 1280 with 24 experts gives 5.4e9 parameters (10.8 GB), the size AlpaServe's
# Table 1 lists (10.6 GB).
ALPASERVE_SHAPES: dict[str, TransformerShape] = {
    s.name: s
    for s in (
        TransformerShape("bert-1.3b", "bert", 2048, 24, 32, 2048, 51200, 4 * 2048),
        TransformerShape("bert-2.6b", "bert", 2560, 32, 32, 2048, 51200, 4 * 2560),
        TransformerShape("bert-6.7b", "bert", 4096, 32, 32, 2048, 51200, 4 * 4096),
        TransformerShape("bert-104b", "bert", 8192, 128, 64, 1024, 51200, 4 * 8192),
        TransformerShape("moe-1.3b", "moe", 768, 16, 16, 1024, 32000, 8 * 768, experts=16),
        TransformerShape("moe-2.4b", "moe", 1024, 16, 16, 1024, 32000, 8 * 1024, experts=16),
        TransformerShape("moe-5.3b", "moe", 1280, 16, 16, 1024, 32000, 8 * 1280, experts=24),
    )
}

# Chain models: one decoder block each (server_chain.md 6.1, 6.4). Rotary/ALiBi position encodings are
# left out (elementwise work, a few percent of a block).
BLOCK_SHAPES: dict[str, TransformerShape] = {
    s.name: s
    for s in (
        TransformerShape("llama-2-7b", "llama", 4096, 32, 32, 4096, 0, 11008),
        TransformerShape("llama-2-70b", "llama", 8192, 80, 64, 4096, 0, 28672, kv_heads=8),
        TransformerShape("bloom-176b", "bloom", 14336, 70, 112, 2048, 0, 4 * 14336),
    )
}

# Tiny shapes for the CPU tests and the --device cpu smoke run.
TINY_SHAPES: dict[str, TransformerShape] = {
    s.name: s
    for s in (
        TransformerShape("tiny-bert", "bert", 64, 4, 4, 16, 128, 256),
        TransformerShape("tiny-moe", "moe", 64, 4, 4, 16, 128, 128, experts=4),
        TransformerShape("tiny-llama", "llama", 64, 2, 4, 32, 0, 160, kv_heads=2),
    )
}


def get_shape(name: str) -> TransformerShape:
    """The shape registered under ``name`` (AlpaServe, chain or tiny test models)."""
    for table in (ALPASERVE_SHAPES, BLOCK_SHAPES, TINY_SHAPES):
        if name in table:
            return table[name]
    known = sorted([*ALPASERVE_SHAPES, *BLOCK_SHAPES, *TINY_SHAPES])
    raise InputError("unknown model", field="models", value=name, hint=f"known: {', '.join(known)}")


@dataclass(frozen=True)
class LayerMeasurement:
    """One layer kind measured at one batch size (latency: median of the timed repeats)."""

    model: str
    op: int
    kind: str
    batch_size: int
    seq_len: int
    latency_s: float
    weight_bytes: int
    act_bytes: int


@dataclass(frozen=True)
class ProfileRow:
    """One pipeline stage of one (model, pp, op, batch_size) configuration."""

    model: str
    pp: int
    op: int
    batch_size: int
    seq_len: int
    stage: int
    latency_s: float
    weight_bytes: int
    act_bytes: int


@dataclass(frozen=True)
class BlockRow:
    """One decoder block of a chain model in one phase."""

    model: str
    phase: str
    batch_size: int
    seq_len: int
    latency_s: float
    weight_bytes: int
    kv_cache_bytes: int


@dataclass(frozen=True)
class BlockStackRow:
    """``n_blocks`` decoder blocks run back to back on ``gpus`` GPUs in a chain, next to the model's prediction.

    The chain model predicts ``sum_of_blocks_s + transfer_s``: ``n_blocks`` x the single block's latency
    plus the measured one-way transfers of the hidden states between consecutive GPUs (0 on one GPU).
    """

    model: str
    phase: str
    n_blocks: int
    gpus: int
    batch_size: int
    seq_len: int
    latency_s: float
    sum_of_blocks_s: float
    transfer_s: float


@dataclass(frozen=True)
class E2ERow:
    """A whole forward pass measured end to end, next to the sum of its stages' table latencies."""

    model: str
    pp: int
    op: int
    batch_size: int
    seq_len: int
    latency_s: float
    sum_of_stages_s: float


def even_split(n_layers: int, pp: int) -> list[range]:
    """Split ``n_layers`` transformer layers into ``pp`` contiguous stages of near-equal size.

    The first ``n_layers % pp`` stages get one layer more (numpy's ``array_split`` rule).
    O(pp).
    """
    if pp < 1 or pp > n_layers:
        raise InputError("pipeline degree must be between 1 and the number of layers", field="pp", value=pp)
    base, extra = divmod(n_layers, pp)
    out, start = [], 0
    for k in range(pp):
        size = base + (1 if k < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out


def stage_layer_kinds(shape: TransformerShape, pp: int) -> list[list[str]]:
    """The layer kinds of each stage: the embedding joins stage 0 and the output head the last stage."""
    body = shape.layer_kinds()[1:-1]
    stages = [[body[i] for i in r] for r in even_split(shape.layers, pp)]
    stages[0].insert(0, "embed")
    stages[-1].append("head")
    return stages


def aggregate_stages(
    shape: TransformerShape,
    layers: dict[str, LayerMeasurement],
    pp: int,
    transfer_s: float = 0.0,
) -> list[ProfileRow]:
    """Per-stage rows of one (pp, op, batch_size) configuration from per-kind layer measurements.

    Parameters
    ----------
    shape : TransformerShape
        The model.
    layers : dict
        Kind -> measurement, all at one ``op`` and batch size (every kind the model uses).
    pp : int
        Pipeline stages (an even layer split, :func:`even_split`).
    transfer_s : float
        Measured time to move one stage-boundary activation between two GPUs; added to every
        stage after the first (0 when it was not measured).

    Notes
    -----
    The output head's weight is tied to the embedding (BERT); when both sit in one stage their weight
    is counted once, otherwise the last stage holds a copy. O(layers).
    """
    missing = [k for k in shape.distinct_kinds() if k not in layers]
    if missing:
        raise InputError("layer measurements missing", field="layers", value=missing)
    ref = layers[shape.distinct_kinds()[0]]
    rows = []
    for k, kinds in enumerate(stage_layer_kinds(shape, pp)):
        lat = sum(layers[kind].latency_s for kind in kinds) + (transfer_s if k > 0 else 0.0)
        weight = sum(layers[kind].weight_bytes for kind in kinds)
        if "embed" in kinds and "head" in kinds:
            weight -= layers["head"].weight_bytes
        act = max(layers[kind].act_bytes for kind in kinds)
        rows.append(ProfileRow(shape.name, pp, ref.op, ref.batch_size, ref.seq_len, k, lat, weight, act))
    return rows


def pp_degrees(shape: TransformerShape, candidates: Sequence[int]) -> list[int]:
    """The pipeline degrees of ``candidates`` that the model's layer count allows."""
    return [p for p in candidates if 1 <= p <= shape.layers]


def build_profile_rows(
    measurements: Iterable[LayerMeasurement],
    pp_candidates: Sequence[int],
    transfer_s: dict[int, float] | None = None,
) -> list[ProfileRow]:
    """All stage rows from layer measurements, for every (model, op, batch_size) and pp in the list.

    ``transfer_s`` maps an activation size in bytes to its measured transfer time; a boundary whose
    size is missing gets 0 (single-GPU tables). The activation crossing a stage boundary is
    ``batch_size * seq_len * hidden`` fp16 values.
    """
    groups: dict[tuple[str, int, int], dict[str, LayerMeasurement]] = {}
    for m in measurements:
        groups.setdefault((m.model, m.op, m.batch_size), {})[m.kind] = m
    rows: list[ProfileRow] = []
    for (model, _op, bs), layers in sorted(groups.items()):
        shape = get_shape(model)
        seq = next(iter(layers.values())).seq_len
        nbytes = activation_bytes(bs, seq, shape.hidden)
        t = (transfer_s or {}).get(nbytes, 0.0)
        for pp in pp_degrees(shape, pp_candidates):
            rows.extend(aggregate_stages(shape, layers, pp, t))
    return rows


def activation_bytes(batch_size: int, seq_len: int, hidden: int, bytes_per_value: int = 2) -> int:
    """Bytes of the hidden-state tensor that crosses a pipeline-stage boundary (fp16 by default)."""
    return batch_size * seq_len * hidden * bytes_per_value


def kv_cache_bytes(shape: TransformerShape, batch_size: int, seq_len: int, bytes_per_value: int = 2) -> int:
    """Bytes of one block's KV cache: keys and values of ``seq_len`` tokens for each kv head."""
    return 2 * batch_size * seq_len * shape.kv_heads * shape.head_dim * bytes_per_value


def _write_rows(path: Path, header: Sequence[str], rows: Iterable[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            d = asdict(r)
            w.writerow([_fmt(d[h]) for h in header])
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def write_profile_csv(path: str | Path, rows: Iterable[ProfileRow]) -> Path:
    """Write stage rows in the ``<gpu>.csv`` format, sorted by model, op, pp, batch size and stage."""
    key = lambda r: (r.model, r.op, r.pp, r.batch_size, r.stage)  # noqa: E731
    return _write_rows(Path(path), PROFILE_HEADER, sorted(rows, key=key))


def write_blocks_csv(path: str | Path, rows: Iterable[BlockRow]) -> Path:
    """Write decoder-block rows in the ``<gpu>_blocks.csv`` format."""
    key = lambda r: (r.model, r.phase, r.seq_len, r.batch_size)  # noqa: E731
    return _write_rows(Path(path), BLOCK_HEADER, sorted(rows, key=key))


def write_layers_csv(path: str | Path, rows: Iterable[LayerMeasurement]) -> Path:
    """Write raw per-layer measurements (``<gpu>_layers.csv``)."""
    key = lambda r: (r.model, r.op, r.kind, r.batch_size)  # noqa: E731
    return _write_rows(Path(path), LAYER_HEADER, sorted(rows, key=key))


def write_e2e_csv(path: str | Path, rows: Iterable[E2ERow]) -> Path:
    """Write end-to-end measurements (``<gpu>_e2e.csv``)."""
    key = lambda r: (r.model, r.op, r.pp, r.batch_size)  # noqa: E731
    return _write_rows(Path(path), E2E_HEADER, sorted(rows, key=key))


def write_block_stack_csv(path: str | Path, rows: Iterable[BlockStackRow]) -> Path:
    """Write block-stack measurements (``<gpu>_block_stack.csv``)."""
    key = lambda r: (r.model, r.gpus, r.phase, r.n_blocks, r.seq_len, r.batch_size)  # noqa: E731
    return _write_rows(Path(path), STACK_HEADER, sorted(rows, key=key))


def write_p2p_csv(path: str | Path, transfers: dict[int, float]) -> Path:
    """Write measured GPU-to-GPU transfer latencies (``<gpu>_p2p.csv``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(P2P_HEADER)
        for n in sorted(transfers):
            w.writerow([n, _fmt(transfers[n])])
    return path


def _read_rows(path: Path, header: Sequence[str], cls: type) -> list[Any]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != tuple(header):
            raise InputError("unexpected CSV header", source=str(path), value=reader.fieldnames, hint=",".join(header))
        types = {f.name: f.type for f in fields(cls)}
        out = []
        for i, raw in enumerate(reader):
            try:
                vals = {k: _parse(raw[k], types[k]) for k in header}
            except ValueError as exc:
                raise InputError(str(exc), source=str(path), field=f"row {i + 2}") from None
            out.append(cls(**vals))
        return out


def _parse(text: str, typ: Any) -> Any:
    name = typ if isinstance(typ, str) else typ.__name__
    if name == "int":
        return int(text)
    if name == "float":
        v = float(text)
        if math.isinf(v):
            raise ValueError(f"not a finite number: {text}")
        return v
    return text


def read_profile_csv(path: str | Path) -> list[ProfileRow]:
    """Read a ``<gpu>.csv`` stage table."""
    return _read_rows(Path(path), PROFILE_HEADER, ProfileRow)


def read_blocks_csv(path: str | Path) -> list[BlockRow]:
    """Read a ``<gpu>_blocks.csv`` block table."""
    return _read_rows(Path(path), BLOCK_HEADER, BlockRow)


def read_layers_csv(path: str | Path) -> list[LayerMeasurement]:
    """Read a ``<gpu>_layers.csv`` table of raw layer measurements."""
    return _read_rows(Path(path), LAYER_HEADER, LayerMeasurement)


def read_e2e_csv(path: str | Path) -> list[E2ERow]:
    """Read a ``<gpu>_e2e.csv`` table."""
    return _read_rows(Path(path), E2E_HEADER, E2ERow)


def read_block_stack_csv(path: str | Path) -> list[BlockStackRow]:
    """Read a ``<gpu>_block_stack.csv`` table."""
    return _read_rows(Path(path), STACK_HEADER, BlockStackRow)


def read_p2p_csv(path: str | Path) -> dict[int, float]:
    """Read a ``<gpu>_p2p.csv`` table as bytes -> seconds."""
    with Path(path).open(newline="") as fh:
        return {int(r["nbytes"]): float(r["latency_s"]) for r in csv.DictReader(fh)}


def write_meta(path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``<gpu>.meta.json``; ``source`` defaults to ``measured``."""
    path = Path(path)
    required = ("gpu", "driver", "torch", "cuda", "date", "command")
    missing = [k for k in required if k not in meta]
    if missing:
        raise InputError("profile metadata incomplete", field="meta", value=missing)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"source": "measured", **meta}
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def gpu_slug(name: str, total_memory_bytes: int) -> str:
    """A file-name slug for a GPU: ``h100-80gb`` for 'NVIDIA H100 80GB HBM3', ``h200-141gb`` for 'NVIDIA H200'.

    Known data-centre parts get their marketed memory size; others get the model token and the
    memory rounded to whole GiB.
    """
    marketed = {"H100": 80, "H200": 141, "A100": 80 if total_memory_bytes > 50e9 else 40, "V100": 16, "L40S": 48}
    tokens = name.replace("NVIDIA", "").split()
    for tok in tokens:
        if tok.upper() in marketed:
            return f"{tok.lower()}-{marketed[tok.upper()]}gb"
    base = (tokens[0] if tokens else "gpu").lower()
    return f"{base}-{round(total_memory_bytes / 2**30)}gb"
