"""Measure per-layer GPU latency and memory of transformer models with PyTorch (random fp16 weights).

What is measured (``serveplan profile`` drives it; ``docs/profiles.md`` shows the results):

* AlpaServe models: each distinct layer kind (embedding, dense layer, MoE layer, output head) is built
  once and timed at every batch size with CUDA events (warm-up, then the median of the repeats); its
  weight bytes are counted from its parameters and its activation memory is the rise of
  ``torch.cuda.max_memory_allocated`` over the memory held before the call. Identical layers are
  timed once: a stage's latency is the sum over its layers (:mod:`serveplan.profiles.profile_table`).
* Tensor parallelism of degree ``op``: every layer is split Megatron-style (attention heads and the
  FFN's intermediate dimension split column-wise on the way in and row-wise on the way out, one
  ``all_reduce`` after each; vocabulary-parallel embedding and head) and run with one process per GPU
  through ``torch.distributed`` and NCCL. The reported latency is the largest median over the ranks.
* Pipeline transfers: the activation crossing a stage boundary is sent between two GPUs with NCCL
  ``send``/``recv`` (half the measured round trip).
* End to end: the whole model, one stage per GPU with real NCCL transfers between stages (pp > 1) or
  all layers split over ``op`` GPUs, timed as one forward pass, to check the sum-of-stages rule.
* Chain models: one decoder block in prefill (``seq_len`` tokens, causal) and decode (one token
  attending to a KV cache of ``seq_len`` tokens, written in place).

Simplifications, all documented in ``docs/profiles.md``: random weights and inputs; no rotary or ALiBi
position encoding; the output head computes the logits of every token and, under tensor parallelism,
leaves them split over the GPUs (no final gather); MoE layers dispatch tokens GShard-style into
fixed-capacity expert buffers (capacity ``2 * tokens / experts``, overflow dropped) and tensor
parallelism splits every expert's FFN rather than placing experts on different GPUs.

PyTorch is imported lazily: this module imports without it; the functions that measure need it.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import math
import os
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from serveplan.errors import InputError
from serveplan.profiles.profile_table import (
    BlockRow,
    BlockStackRow,
    E2ERow,
    LayerMeasurement,
    TransformerShape,
    activation_bytes,
    aggregate_stages,
    even_split,
    get_shape,
    kv_cache_bytes,
    stage_layer_kinds,
)

NCCL_SAFETY_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


# What was timed eagerly because CUDA-graph capture failed (or disagreed with an eager call), per process.
EAGER_FALLBACKS: list[str] = []


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only where torch is missing
        raise InputError(
            "profiling needs PyTorch", hint="pip install 'serveplan[profile]' (or torch) on a machine with a GPU"
        ) from exc
    return torch


@dataclass(frozen=True)
class TimingSettings:
    """How often each measurement runs: ``warmup`` untimed calls, then ``repeats`` timed ones (median).

    ``warmup_s`` keeps calling past the ``warmup`` calls until that much time has passed: a GPU under
    sustained load settles at power-limited clocks within a fraction of a second (an H100 at its 700 W
    cap drops from 1980 MHz to 1200-1500 MHz), and serving runs in that state, so layers are timed
    there rather than in the boost of a short burst.
    """

    warmup: int = 3
    repeats: int = 10
    warmup_s: float = 0.0
    cuda_graph: bool = False

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.repeats < 1 or self.warmup_s < 0:
            raise InputError(
                "warmup must be >= 0 and repeats >= 1", field="timing", value=(self.warmup, self.repeats, self.warmup_s)
            )


def time_fn(
    fn: Callable[[], Any],
    device: str,
    settings: TimingSettings,
    agree: Callable[[int], int] | None = None,
    describe: str = "",
) -> list[float]:
    """Seconds taken by each of ``settings.repeats`` calls of ``fn`` after warming up.

    On CUDA with ``settings.cuda_graph`` the call is captured once as a CUDA graph and each timed
    repeat is one graph replay bracketed by CUDA events: device time without the host's kernel-launch
    gaps, which otherwise dominate small layers and vary with the host (a compiled runtime such as
    Alpa's launches whole executables). Under tensor parallelism (``agree`` given) the graph holds the
    NCCL collectives too, and one replay is checked against an eager call before it is trusted. If
    capture or the check fails on any rank, every rank calls eagerly and ``describe`` is recorded in
    ``EAGER_FALLBACKS``. On the CPU each call is timed with ``time.perf_counter``.

    The timed warm-up (``settings.warmup_s``) is turned into a number of calls from one timed call;
    ``agree`` maps that number to the one every rank of a tensor-parallel group uses (their maximum),
    since ranks that run different numbers of collective calls wait on each other forever.
    """
    torch = _torch()
    cuda = device.startswith("cuda")
    for _ in range(settings.warmup):
        fn()
    call, graph = fn, None
    if cuda and settings.cuda_graph:
        captured = _capture(fn, check=agree is not None)
        # Under tensor parallelism every rank must replay a graph or every rank call eagerly.
        if agree is not None and agree(0 if captured else 1) > 0:
            captured = None
        if captured is not None:
            graph = captured[0]
            call = graph.replay
        else:
            EAGER_FALLBACKS.append(describe or "a measurement")
    n_warm = 0
    if settings.warmup_s > 0:
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        call()
        if cuda:
            torch.cuda.synchronize()
        n_warm = math.ceil(settings.warmup_s / max(time.perf_counter() - t0, 1e-6))
    if agree is not None:
        n_warm = agree(n_warm)
    for i in range(n_warm):
        call()
        if cuda and i % 8 == 7:  # bounded backlog, no idle gaps between calls
            torch.cuda.synchronize()
    out = []
    if cuda:
        torch.cuda.synchronize()
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            for _ in range(settings.repeats)
        ]
        for start, end in events:
            start.record()
            call()
            end.record()
        torch.cuda.synchronize()
        out = [s.elapsed_time(e) / 1e3 for s, e in events]
        del graph, call
    else:
        for _ in range(settings.repeats):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return out


def _agree(tp: TensorParallel, device: str) -> Callable[[int], int] | None:
    """The group-wide maximum of a count (None outside tensor parallelism)."""
    if tp.size == 1:
        return None
    return lambda n: round(_group_max(float(n), tp, device))


def _capture(fn: Callable[[], Any], check: bool = False) -> tuple[Any, Any] | None:
    """``fn`` captured as a CUDA graph, with the output tensor the graph writes, or None.

    Capture follows a side-stream warm-up, as it requires. With ``check`` one replay must reproduce an
    eager call's output (the same kernels, so to fp16 rounding), which validates captured collectives.
    """
    torch = _torch()
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fn()
        torch.cuda.synchronize()
    except RuntimeError as exc:  # an op that cannot be captured: time eagerly instead
        torch.cuda.synchronize()
        _progress(f"CUDA graph capture failed ({str(exc).splitlines()[0][:120]}); timing eagerly")
        return None
    if check and isinstance(out, torch.Tensor):
        ref = fn().clone()
        graph.replay()
        torch.cuda.synchronize()
        if not torch.allclose(out.float(), ref.float(), rtol=1e-2, atol=1e-2):
            _progress("CUDA graph replay differs from the eager call; timing eagerly")
            return None
    return graph, out


def median_s(samples: Sequence[float]) -> float:
    """Median of timing samples (robust to the occasional slow repeat)."""
    if not samples:
        raise InputError("no timing samples", field="samples", value=0)
    return float(statistics.median(samples))


def peak_activation_bytes(fn: Callable[[], Any], device: str) -> int:
    """Peak memory a call allocates beyond what was held before it (weights and inputs).

    On CUDA: ``max_memory_allocated`` after a peak reset minus ``memory_allocated`` before the call.
    On the CPU there is no allocator counter: the bytes of the returned tensor(s) stand in (a lower
    bound).
    """
    torch = _torch()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        del out
        return int(max(peak - base, 0))
    out = fn()
    tensors = out if isinstance(out, tuple | list) else (out,)
    return int(sum(t.numel() * t.element_size() for t in tensors))


def param_bytes(module: Any) -> int:
    """Bytes of a module's parameters and buffers (the weight memory it occupies on its device)."""
    return int(
        sum(p.numel() * p.element_size() for p in module.parameters())
        + sum(b.numel() * b.element_size() for b in module.buffers())
    )


@dataclass(frozen=True)
class TensorParallel:
    """A process's place in a tensor-parallel group (size 1: no splitting, no communication)."""

    size: int = 1
    rank: int = 0
    group: Any = None
    reducer: Callable[[Any], Any] | None = None  # replaces all_reduce (single-process simulations in tests)

    def reduce(self, t: Any) -> Any:
        """Sum a partial result over the group (in place); identity for size 1."""
        if self.size > 1:
            if self.reducer is not None:
                return self.reducer(t)
            _torch().distributed.all_reduce(t, group=self.group)
        return t


@functools.cache
def _modules() -> Any:
    """The torch.nn module classes, defined on first use so that importing this file needs no torch."""
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    class Attention(nn.Module):
        """Self-attention on this rank's heads; returns the partial (not yet reduced) projection."""

        def __init__(self, shape: TransformerShape, tp: TensorParallel, bias: bool, causal: bool, **kw: Any):
            super().__init__()
            self.d = shape.head_dim
            self.hq, self.hkv = shape.heads // tp.size, shape.kv_heads // tp.size
            self.causal = causal
            self.qkv = nn.Linear(shape.hidden, (self.hq + 2 * self.hkv) * self.d, bias=bias, **kw)
            self.out = nn.Linear(self.hq * self.d, shape.hidden, bias=False, **kw)

        def forward(self, x: Any, kv_cache: tuple[Any, Any] | None = None) -> Any:
            b, s, _ = x.shape
            q, k, v = self.qkv(x).split([self.hq * self.d, self.hkv * self.d, self.hkv * self.d], dim=-1)
            q = q.view(b, s, self.hq, self.d).transpose(1, 2)
            k = k.view(b, s, self.hkv, self.d).transpose(1, 2)
            v = v.view(b, s, self.hkv, self.d).transpose(1, 2)
            causal = self.causal
            if kv_cache is not None:
                # The new tokens are the last s positions of the cache (prefill: all of it).
                kc, vc = kv_cache
                kc[:, :, -s:].copy_(k)
                vc[:, :, -s:].copy_(v)
                k, v = kc, vc
                causal = self.causal and s > 1
            extra = {"enable_gqa": True} if self.hkv != self.hq else {}
            o = F.scaled_dot_product_attention(q, k, v, is_causal=causal, **extra)
            return self.out(o.transpose(1, 2).reshape(b, s, self.hq * self.d))

    class MLP(nn.Module):
        """GELU or SwiGLU feed-forward on this rank's slice of the intermediate dimension (partial output)."""

        def __init__(self, shape: TransformerShape, tp: TensorParallel, bias: bool, swiglu: bool, **kw: Any):
            super().__init__()
            f = shape.ffn // tp.size
            self.swiglu = swiglu
            self.fc1 = nn.Linear(shape.hidden, 2 * f if swiglu else f, bias=bias, **kw)
            self.fc2 = nn.Linear(f, shape.hidden, bias=False, **kw)

        def forward(self, x: Any) -> Any:
            h = self.fc1(x)
            if self.swiglu:
                g, u = h.chunk(2, dim=-1)
                h = F.silu(g) * u
            else:
                h = F.gelu(h)
            return self.fc2(h)

    class MoE(nn.Module):
        """Top-2 mixture of experts, GShard-style fixed-capacity dispatch, experts' FFNs split over ranks.

        Routing uses a replicated gate, so every rank dispatches identically; each rank computes its
        slice of every expert's intermediate dimension and returns the partial combined output.
        """

        def __init__(self, shape: TransformerShape, tp: TensorParallel, capacity_factor: float = 1.0, **kw: Any):
            super().__init__()
            e, h, f = shape.experts, shape.hidden, shape.ffn // tp.size
            self.experts, self.capacity_factor = e, capacity_factor
            self.gate = nn.Linear(h, e, bias=False, **kw)
            self.w1 = nn.Parameter(torch.randn(e, h, f, **kw) * h**-0.5)
            self.w2 = nn.Parameter(torch.randn(e, f, h, **kw) * f**-0.5)

        def capacity(self, tokens: int) -> int:
            return max(1, int(self.capacity_factor * 2 * tokens / self.experts + 0.999999))

        def forward(self, x: Any) -> Any:
            b, s, h = x.shape
            t = b * s
            e, c = self.experts, self.capacity(t)
            xf = x.reshape(t, h)
            probs = torch.softmax(self.gate(xf).float(), dim=-1)
            top_p, top_i = probs.topk(2, dim=-1)
            # First choices of all tokens take capacity before any second choice (GShard priority).
            idx = top_i.t().reshape(-1)
            weight = top_p.t().reshape(-1)
            # Slot of each assignment inside its expert: a running count per expert. The scan runs along
            # the contiguous dimension (a scan over the outer dimension of a (2T, E) tensor is ~20x slower).
            onehot = F.one_hot(idx, e).t().contiguous()
            pos = ((onehot.cumsum(1) - 1) * onehot).sum(0)
            keep = pos < c
            slot = torch.where(keep, idx * c + pos, torch.full_like(idx, e * c))  # e*c: a discard row
            buf = x.new_zeros(e * c + 1, h)
            buf.index_copy_(0, slot, xf.repeat(2, 1))
            hid = F.gelu(torch.bmm(buf[: e * c].view(e, c, h), self.w1))
            out = torch.bmm(hid, self.w2).view(e * c, h)
            out = torch.cat([out, out.new_zeros(1, h)])
            y = out[slot] * (weight * keep).to(x.dtype).unsqueeze(-1)
            return (y[:t] + y[t:]).view(b, s, h)

    class Layer(nn.Module):
        """One transformer layer: attention and FFN branches, each followed by a tensor-parallel reduce."""

        def __init__(self, shape: TransformerShape, kind: str, tp: TensorParallel, **kw: Any):
            super().__init__()
            fam = shape.family
            self.tp = tp
            self.pre_norm = fam in ("llama", "bloom")
            bias = fam != "llama"
            norm = (
                (lambda: nn.RMSNorm(shape.hidden, eps=1e-5, **kw))
                if fam == "llama"
                else (lambda: nn.LayerNorm(shape.hidden, **kw))
            )
            self.norm1, self.norm2 = norm(), norm()
            self.attn = Attention(shape, tp, bias=bias, causal=fam in ("llama", "bloom"), **kw)
            if kind == "moe":
                self.ffn = MoE(shape, tp, **kw)
            else:
                self.ffn = MLP(shape, tp, bias=bias, swiglu=fam == "llama", **kw)
            self.attn_bias = nn.Parameter(torch.zeros(shape.hidden, **kw)) if bias else None
            self.ffn_bias = nn.Parameter(torch.zeros(shape.hidden, **kw)) if bias and kind != "moe" else None

        def _attn(self, x: Any, kv_cache: Any) -> Any:
            y = self.tp.reduce(self.attn(x, kv_cache))
            return y if self.attn_bias is None else y + self.attn_bias

        def _ffn(self, x: Any) -> Any:
            y = self.tp.reduce(self.ffn(x))
            return y if self.ffn_bias is None else y + self.ffn_bias

        def forward(self, x: Any, kv_cache: Any = None) -> Any:
            if self.pre_norm:
                h = x + self._attn(self.norm1(x), kv_cache)
                return h + self._ffn(self.norm2(h))
            h = self.norm1(x + self._attn(x, kv_cache))
            return self.norm2(h + self._ffn(h))

    class Embedding(nn.Module):
        """Vocabulary-parallel token embedding (masked lookup, then reduce) plus learned positions."""

        def __init__(self, shape: TransformerShape, tp: TensorParallel, **kw: Any):
            super().__init__()
            self.tp = tp
            self.rows = shape.vocab // tp.size
            self.start = tp.rank * self.rows
            self.weight = nn.Parameter(torch.randn(self.rows, shape.hidden, **kw) * 0.02)
            self.pos = nn.Parameter(torch.randn(shape.seq_len, shape.hidden, **kw) * 0.02)

        def forward(self, ids: Any) -> Any:
            local = ids - self.start
            outside = (local < 0) | (local >= self.rows)
            e = F.embedding(local.masked_fill(outside, 0), self.weight).masked_fill(outside.unsqueeze(-1), 0)
            return self.tp.reduce(e) + self.pos[: ids.shape[1]]

    class Head(nn.Module):
        """Output projection to this rank's slice of the vocabulary (weight tied to the embedding)."""

        def __init__(self, shape: TransformerShape, tp: TensorParallel, **kw: Any):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(shape.vocab // tp.size, shape.hidden, **kw) * 0.02)

        def forward(self, x: Any) -> Any:
            return F.linear(x, self.weight)

    class Stage(nn.Module):
        """A contiguous run of a model's layers (embedding first and head last when included)."""

        def __init__(self, layers: list[Any]):
            super().__init__()
            self.layers = nn.ModuleList(layers)

        def forward(self, x: Any) -> Any:
            for layer in self.layers:
                x = layer(x)
            return x

    ns = type("Modules", (), {})
    for cls in (Attention, MLP, MoE, Layer, Embedding, Head, Stage):
        setattr(ns, cls.__name__, cls)
    return ns


def build_layer(
    shape: TransformerShape, kind: str, tp: TensorParallel | None = None, device: str = "cpu", dtype: Any = None
) -> Any:
    """One layer of ``kind`` (embed/dense/moe/head) with random weights, split for ``tp``, in eval mode."""
    torch = _torch()
    tp = tp or TensorParallel()
    if tp.size > shape.max_tp():
        raise InputError("tensor-parallel degree does not divide the model", field="op", value=tp.size)
    m = _modules()
    kw = {"device": device, "dtype": dtype or (torch.float16 if device.startswith("cuda") else torch.float32)}
    if kind == "embed":
        layer = m.Embedding(shape, tp, **kw)
    elif kind == "head":
        layer = m.Head(shape, tp, **kw)
    elif kind in ("dense", "moe"):
        layer = m.Layer(shape, kind, tp, **kw)
    else:
        raise InputError("unknown layer kind", field="kind", value=kind)
    return layer.eval().requires_grad_(False)


def copy_shard(full: Any, shard: Any, rank: int, size: int) -> None:
    """Load into ``shard`` (a layer built for rank ``rank`` of ``size``) its slices of ``full``'s weights.

    This is the definition of the Megatron-style split the profiler times: query/key/value heads and
    the FFN intermediate dimension (each expert's, for MoE) are split into ``size`` contiguous
    blocks, the output projections by the matching input columns, the vocabulary of the embedding and
    head into row blocks; norms, the MoE gate and the biases added after a reduce are replicated.
    """
    torch = _torch()
    m = _modules()

    def rows(w: Any, parts: Sequence[int]) -> Any:
        # Split w's rows into consecutive blocks of the given sizes, take this rank's slice of each.
        out, start = [], 0
        for n in parts:
            block = w[start : start + n]
            k = n // size
            out.append(block[rank * k : (rank + 1) * k])
            start += n
        return torch.cat(out)

    def cols(w: Any) -> Any:
        k = w.shape[-1] // size
        return w[..., rank * k : (rank + 1) * k]

    with torch.no_grad():
        if isinstance(full, m.Embedding | m.Head):
            shard.weight.copy_(rows(full.weight, [full.weight.shape[0]]))
            if isinstance(full, m.Embedding):
                shard.pos.copy_(full.pos)
            return
        a, b = full.attn, shard.attn
        qkv = [a.hq * a.d, a.hkv * a.d, a.hkv * a.d]
        b.qkv.weight.copy_(rows(a.qkv.weight, qkv))
        if a.qkv.bias is not None:
            b.qkv.bias.copy_(rows(a.qkv.bias, qkv))
        b.out.weight.copy_(cols(a.out.weight))
        for name in ("norm1", "norm2"):
            getattr(shard, name).load_state_dict(getattr(full, name).state_dict())
        for name in ("attn_bias", "ffn_bias"):
            if getattr(full, name) is not None:
                getattr(shard, name).copy_(getattr(full, name))
        f, g = full.ffn, shard.ffn
        if isinstance(f, m.MoE):
            g.gate.weight.copy_(f.gate.weight)
            g.w1.copy_(cols(f.w1))
            g.w2.copy_(f.w2[:, rank * g.w2.shape[1] : (rank + 1) * g.w2.shape[1]])
            return
        parts = [f.fc1.weight.shape[0] // 2] * 2 if f.swiglu else [f.fc1.weight.shape[0]]
        g.fc1.weight.copy_(rows(f.fc1.weight, parts))
        if f.fc1.bias is not None:
            g.fc1.bias.copy_(rows(f.fc1.bias, parts))
        g.fc2.weight.copy_(cols(f.fc2.weight))


def build_stage(
    shape: TransformerShape,
    kinds: Sequence[str],
    tp: TensorParallel | None = None,
    device: str = "cpu",
    dtype: Any = None,
) -> Any:
    """A pipeline stage holding the given layer kinds in order (fresh random weights for each)."""
    return _modules().Stage([build_layer(shape, k, tp, device, dtype) for k in kinds])


def layer_input(
    shape: TransformerShape, kind: str, batch_size: int, seq_len: int, device: str, dtype: Any, seed: int = 0
) -> Any:
    """A random input for a layer: token ids for the embedding, hidden states otherwise (same on every rank)."""
    torch = _torch()
    g = torch.Generator(device="cpu").manual_seed(seed)
    if kind == "embed":
        return torch.randint(0, shape.vocab, (batch_size, seq_len), generator=g).to(device)
    return torch.randn(batch_size, seq_len, shape.hidden, generator=g).to(device=device, dtype=dtype)


def _dtype(device: str) -> Any:
    torch = _torch()
    return torch.float16 if device.startswith("cuda") else torch.float32


def _group_max(value: float, tp: TensorParallel, device: str) -> float:
    if tp.size == 1:
        return value
    torch = _torch()
    t = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX, group=tp.group)
    return float(t.item())


def measure_layers(
    shape: TransformerShape,
    batch_sizes: Sequence[int],
    device: str,
    settings: TimingSettings,
    tp: TensorParallel | None = None,
    seq_len: int | None = None,
) -> list[LayerMeasurement]:
    """Time and size every distinct layer kind of ``shape`` at each batch size.

    All ranks of a tensor-parallel group must call this together (the layers all-reduce); each
    returns the same list, latencies being the largest median over the ranks.
    """
    torch = _torch()
    tp = tp or TensorParallel()
    seq = seq_len or shape.seq_len
    dtype = _dtype(device)
    out = []
    for kind in shape.distinct_kinds():
        torch.manual_seed(1234)  # identical replicated weights (the MoE gate) on every rank
        layer = build_layer(shape, kind, tp, device, dtype)
        wbytes = param_bytes(layer)
        for bs in batch_sizes:
            x = layer_input(shape, kind, bs, seq, device, dtype)
            with torch.inference_mode():
                # Timing first: its warm-up keeps one-time allocations (library workspaces) out of the peak.
                what = f"{shape.name} {kind} op={tp.size} bs={bs}"
                lat = median_s(time_fn(lambda x=x, f=layer: f(x), device, settings, _agree(tp, device), what))
                act = peak_activation_bytes(lambda x=x, f=layer: f(x), device)
            lat = _group_max(lat, tp, device)
            out.append(LayerMeasurement(shape.name, tp.size, kind, bs, seq, lat, wbytes, act))
            del x
        del layer
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return out


def measure_blocks(
    shape: TransformerShape,
    batch_sizes: Sequence[int],
    seq_lens: Sequence[int],
    device: str,
    settings: TimingSettings,
) -> list[BlockRow]:
    """Prefill and decode latency of one decoder block at each batch size and sequence length.

    Prefill runs ``seq_len`` tokens causally and writes their keys and values into the cache; decode
    runs one token whose keys and values go into the last cache slot and which attends to all
    ``seq_len`` cached tokens.
    """
    torch = _torch()
    torch.manual_seed(1234)
    run, blocks = _block_stack(shape, 1, device)
    wbytes = param_bytes(blocks[0])
    rows = []
    for phase, bs, seq, x, caches in _stack_steps(shape, batch_sizes, seq_lens, 1, device):
        with torch.inference_mode():
            what = f"{shape.name} block {phase} bs={bs} seq={seq}"
            lat = median_s(time_fn(lambda x=x, c=caches: run(x, c), device, settings, describe=what))
        rows.append(BlockRow(shape.name, phase, bs, seq, lat, wbytes, kv_cache_bytes(shape, bs, seq)))
    blocks.clear()
    return rows


def _block_stack(shape: TransformerShape, n_blocks: int, device: str) -> tuple[Callable[[Any, Any], Any], list[Any]]:
    """``n_blocks`` decoder blocks with their own weights (seed first), and ``run(x, caches)`` through them.

    ``run`` applies the blocks back to back, block i with ``caches[i]``.
    """
    dtype = _dtype(device)
    blocks = [build_layer(shape, "dense", None, device, dtype) for _ in range(n_blocks)]

    def run(x: Any, caches: list[tuple[Any, Any]]) -> Any:
        for block, kv in zip(blocks, caches, strict=True):
            x = block(x, kv)
        return x

    return run, blocks


def _stack_steps(
    shape: TransformerShape, batch_sizes: Sequence[int], seq_lens: Sequence[int], n_blocks: int, device: str
) -> Iterator[tuple[str, int, int, Any, list[tuple[Any, Any]]]]:
    """The steps every block measurement times: ``(phase, batch_size, seq_len, input, caches)``.

    For each sequence length and batch size, random KV caches of ``seq_len`` tokens (one per block); then
    ``prefill`` (``seq_len`` tokens, causal, keys and values written into the cache) and ``decode`` (one
    token written into the last cache slot, attending to all ``seq_len`` cached tokens). Memory is released
    between sizes.
    """
    torch = _torch()
    dtype = _dtype(device)
    for seq in seq_lens:
        for bs in batch_sizes:
            kv_shape = (bs, shape.kv_heads, seq, shape.head_dim)
            caches = [
                (torch.randn(kv_shape, device=device, dtype=dtype), torch.randn(kv_shape, device=device, dtype=dtype))
                for _ in range(n_blocks)
            ]
            for phase, tokens in (("prefill", seq), ("decode", 1)):
                yield phase, bs, seq, torch.randn(bs, tokens, shape.hidden, device=device, dtype=dtype), caches
            del caches
            if device.startswith("cuda"):
                torch.cuda.empty_cache()


def measure_block_stack(
    shape: TransformerShape,
    n_blocks: int,
    batch_sizes: Sequence[int],
    seq_lens: Sequence[int],
    device: str,
    settings: TimingSettings,
) -> dict[tuple[str, int, int], float]:
    """Latency of ``n_blocks`` decoder blocks run back to back, each with its own weights and KV cache.

    The same prefill and decode steps as :func:`measure_blocks`, through the whole stack: what a server
    hosting ``n_blocks`` blocks (the whole model when ``n_blocks == shape.layers``) spends per step.
    Returns seconds by ``(phase, batch_size, seq_len)``.
    """
    torch = _torch()
    if not 1 <= n_blocks <= shape.layers:
        raise InputError(f"n_blocks must be in [1, {shape.layers}]", field="n_blocks", value=n_blocks)
    torch.manual_seed(1234)
    run, blocks = _block_stack(shape, n_blocks, device)
    out = {}
    for phase, bs, seq, x, caches in _stack_steps(shape, batch_sizes, seq_lens, n_blocks, device):
        what = f"{shape.name} {n_blocks} blocks {phase} bs={bs} seq={seq}"
        with torch.inference_mode():
            samples = time_fn(lambda x=x, c=caches: run(x, c), device, settings, describe=what)
        out[(phase, bs, seq)] = median_s(samples)
    blocks.clear()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def stack_rows(
    shape: TransformerShape,
    n_blocks: int,
    latencies: dict[tuple[str, int, int], float],
    blocks: Sequence[BlockRow],
    gpus: int = 1,
    transfer: dict[tuple[str, int, int], float] | None = None,
) -> list[BlockStackRow]:
    """Rows of ``<gpu>_block_stack.csv``.

    Each stack latency stands next to ``n_blocks`` x the single block's latency (NaN if that block was not
    measured in the same run) and, for a chain over ``gpus`` GPUs, the summed one-way transfers by key.
    """
    single = {(b.phase, b.batch_size, b.seq_len): b.latency_s for b in blocks if b.model == shape.name}
    transfer = transfer or {}
    return [
        BlockStackRow(
            shape.name,
            phase,
            n_blocks,
            gpus,
            bs,
            seq,
            t,
            n_blocks * single.get((phase, bs, seq), math.nan),
            transfer.get((phase, bs, seq), 0.0),
        )
        for (phase, bs, seq), t in sorted(latencies.items())
    ]


def measure_p2p(
    nbytes_list: Sequence[int], device: str, settings: TimingSettings, peer: int, rank: int
) -> dict[int, float]:
    """One-way GPU-to-GPU transfer time by message size: half the median NCCL send/recv round trip.

    Call on the two ranks ``rank`` and ``peer`` together; the lower rank starts each round trip.
    """
    torch = _torch()
    dist = torch.distributed
    out = {}
    for n in sorted(set(nbytes_list)):
        buf = torch.empty(max(n // 2, 1), dtype=torch.float16, device=device)
        first = rank < peer

        def ping(buf: Any = buf, first: bool = first) -> None:
            if first:
                dist.send(buf, peer)
                dist.recv(buf, peer)
            else:
                dist.recv(buf, peer)
                dist.send(buf, peer)

        # Counted warm-up only: both ranks must make the same number of calls.
        samples = time_fn(ping, device, dataclasses.replace(settings, warmup_s=0.0, cuda_graph=False))
        out[n] = median_s(samples) / 2
        del buf
    return out


def _sync_all(device: str, group: Any = None) -> None:
    torch = _torch()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    if torch.distributed.is_initialized():
        flag = torch.zeros(1, device=device)
        torch.distributed.all_reduce(flag, group=group)
        if device.startswith("cuda"):
            torch.cuda.synchronize()


def _time_pipeline_pass(
    compute: Callable[[], Any],
    inbuf: Any,
    rank: int,
    pp: int,
    device: str,
    settings: TimingSettings,
    group: Any,
    what: str,
) -> float:
    """Median host time of one pass through a ``pp``-stage pipeline, stage ``rank`` on this GPU.

    ``compute`` is this stage's work on its input (``inbuf`` on every stage after the first, which
    receives it from the previous rank over NCCL); its output goes to the next rank. The stage's work
    replays as a CUDA graph, as single layers are timed; the transfers stay eager. Each pass runs from a
    group-wide synchronisation to the next, after the same warm-up as the layers (all ranks agree on
    the count). Every rank of the pipeline group calls this.
    """
    torch = _torch()
    dist = torch.distributed
    captured = None
    if device.startswith("cuda") and settings.cuda_graph:
        with torch.inference_mode():
            captured = _capture(compute)
        if captured is None:
            EAGER_FALLBACKS.append(what)

    def forward() -> None:
        if rank > 0:
            dist.recv(inbuf, rank - 1)
        if captured is not None:
            captured[0].replay()
            x = captured[1]
        else:
            x = compute()
        if rank < pp - 1:
            dist.send(x.contiguous(), rank + 1)

    samples = []
    with torch.inference_mode():
        n_warm = settings.warmup
        if settings.warmup_s > 0:  # reach sustained clocks, as the layers were timed
            _sync_all(device, group)
            t0 = time.perf_counter()
            forward()
            _sync_all(device, group)
            n = math.ceil(settings.warmup_s / max(time.perf_counter() - t0, 1e-6))
            n_warm += round(_group_max(float(n), TensorParallel(pp, rank, group), device))
        for i in range(n_warm + settings.repeats):
            _sync_all(device, group)
            t0 = time.perf_counter()
            forward()
            _sync_all(device, group)
            if i >= n_warm:
                samples.append(time.perf_counter() - t0)
    return median_s(samples)


def measure_e2e_pipeline(
    shape: TransformerShape,
    pp: int,
    batch_sizes: Sequence[int],
    device: str,
    settings: TimingSettings,
    rank: int,
    group: Any = None,
) -> dict[int, float]:
    """Whole-model forward latency with stage ``rank`` on GPU ``rank`` and NCCL transfers between stages.

    Every rank of the pipeline group calls this; rank 0's wall-clock time from a common start (a
    group-wide synchronisation) to the last stage's completion is returned on every rank (the same
    synchronisation closes each pass, so its cost is included; it is a few tens of microseconds).
    """
    torch = _torch()
    dtype = _dtype(device)
    kinds = stage_layer_kinds(shape, pp)[rank]
    torch.manual_seed(1234)
    stage = build_stage(shape, kinds, None, device, dtype)
    out = {}
    for bs in batch_sizes:
        ids = layer_input(shape, "embed", bs, shape.seq_len, device, dtype)
        inbuf = torch.randn(bs, shape.seq_len, shape.hidden, device=device, dtype=dtype)

        def compute(inp: Any = ids if rank == 0 else inbuf, stage: Any = stage) -> Any:
            return stage(inp)

        what = f"{shape.name} pipeline stage {rank} of {pp} bs={bs}"
        out[bs] = _time_pipeline_pass(compute, inbuf, rank, pp, device, settings, group, what)
        del ids, inbuf
    del stage
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def measure_chain_pipeline(
    shape: TransformerShape,
    n_servers: int,
    batch_sizes: Sequence[int],
    seq_lens: Sequence[int],
    device: str,
    settings: TimingSettings,
    rank: int,
    group: Any = None,
) -> dict[tuple[str, int, int], float]:
    """A chain of ``n_servers`` GPUs serving a whole decoder model: prefill and decode steps end to end.

    Server ``rank`` hosts its contiguous share of the blocks (:func:`even_split`), each block with its own
    weights and KV cache; hidden states go to the next server over NCCL, as in a PETALS-style chain.
    Every rank of the chain's group calls this; returns seconds by ``(phase, batch_size, seq_len)``.
    """
    torch = _torch()
    mine = even_split(shape.layers, n_servers)[rank]
    torch.manual_seed(1234 + rank)
    run, blocks = _block_stack(shape, len(mine), device)
    out = {}
    for phase, bs, seq, x, caches in _stack_steps(shape, batch_sizes, seq_lens, len(mine), device):

        def compute(x: Any = x, c: Any = caches) -> Any:
            return run(x, c)

        what = f"{shape.name} chain server {rank} of {n_servers} {phase} bs={bs} seq={seq}"
        out[(phase, bs, seq)] = _time_pipeline_pass(compute, x, rank, n_servers, device, settings, group, what)
    blocks.clear()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def measure_e2e_tp(
    shape: TransformerShape, batch_sizes: Sequence[int], device: str, settings: TimingSettings, tp: TensorParallel
) -> dict[int, float]:
    """Whole-model forward latency with every layer split over the tensor-parallel group (CUDA events)."""
    torch = _torch()
    dtype = _dtype(device)
    torch.manual_seed(1234)
    model = build_stage(shape, shape.layer_kinds(), tp, device, dtype)
    out = {}
    for bs in batch_sizes:
        ids = layer_input(shape, "embed", bs, shape.seq_len, device, dtype)
        with torch.inference_mode():
            what = f"{shape.name} whole model op={tp.size} bs={bs}"
            samples = time_fn(lambda ids=ids, f=model: f(ids), device, settings, _agree(tp, device), what)
            out[bs] = _group_max(median_s(samples), tp, device)
        del ids
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def sum_of_stages(
    shape: TransformerShape, layers: Sequence[LayerMeasurement], pp: int, op: int, bs: int, transfer_s: float
) -> float:
    """Sum of the stage latencies the table gives for (pp, op, bs): what the sum-of-stages rule predicts."""
    by_kind = {m.kind: m for m in layers if m.op == op and m.batch_size == bs and m.model == shape.name}
    try:
        return sum(r.latency_s for r in aggregate_stages(shape, by_kind, pp, transfer_s))
    except InputError:  # layers not measured (time budget): nothing to compare against
        return float("nan")


# ---------------------------------------------------------------------------------------------------
# Orchestration


@dataclass
class ProfileRequest:
    """What one profiling run measures (the command line's options)."""

    models: list[str]
    blocks: list[str]
    batch_sizes: list[int]
    block_seq_lens: list[int]
    tp_degrees: list[int]
    e2e_models: list[str]
    block_stacks: list[str] = field(default_factory=list)  # chain models timed as whole block stacks
    chain_pipelines: list[str] = field(default_factory=list)  # chain models split over all GPUs of a run
    device: str = "cuda"
    timing: TimingSettings = field(default_factory=TimingSettings)
    time_budget_s: float = 540.0
    skipped: list[str] = field(default_factory=list)


@dataclass
class ProfileResult:
    """Everything one run measured, before it is written as tables."""

    layers: list[LayerMeasurement] = field(default_factory=list)
    blocks: list[BlockRow] = field(default_factory=list)
    e2e: list[E2ERow] = field(default_factory=list)
    stacks: list[BlockStackRow] = field(default_factory=list)
    p2p: dict[int, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    eager: list[str] = field(default_factory=list)  # timed eagerly: CUDA-graph capture failed or disagreed
    world_size: int = 1


class _Clock:
    def __init__(self, budget_s: float):
        self.t0, self.budget_s = time.monotonic(), budget_s

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)


def _chain_grid(req: ProfileRequest) -> tuple[list[int], list[int]]:
    """Batch sizes and sequence lengths of the chain pipelines.

    The smallest and middle batch sizes and the shortest and longest sequences: a whole 70B prefill takes
    seconds.
    """
    bss = req.batch_sizes
    seqs = req.block_seq_lens
    return sorted({bss[0], bss[len(bss) // 2]}), sorted({min(seqs), max(seqs)}) if seqs else []


def _e2e_batch_sizes(batch_sizes: Sequence[int]) -> list[int]:
    return sorted({batch_sizes[0], batch_sizes[len(batch_sizes) // 2], batch_sizes[-1]})


def run_single(req: ProfileRequest) -> ProfileResult:
    """Measure on one device (op = 1): layers, blocks, and single-device end-to-end latencies."""
    res = ProfileResult()
    clock = _Clock(req.time_budget_s)
    EAGER_FALLBACKS.clear()
    for name in req.models:
        if clock.left() <= 0:
            res.skipped.append(f"layers {name} (time budget)")
            continue
        res.layers.extend(measure_layers(get_shape(name), req.batch_sizes, req.device, req.timing))
        _progress(f"layers {name} done, {clock.left():.0f}s left")
    for name in req.blocks:
        if clock.left() <= 0:
            res.skipped.append(f"blocks {name} (time budget)")
            continue
        res.blocks.extend(measure_blocks(get_shape(name), req.batch_sizes, req.block_seq_lens, req.device, req.timing))
        _progress(f"blocks {name} done, {clock.left():.0f}s left")
    for name in req.e2e_models:
        if clock.left() <= 0:
            res.skipped.append(f"e2e {name} (time budget)")
            continue
        shape = get_shape(name)
        bss = _e2e_batch_sizes(req.batch_sizes)
        lat = measure_e2e_tp(shape, bss, req.device, req.timing, TensorParallel())
        for bs, t in lat.items():
            res.e2e.append(E2ERow(name, 1, 1, bs, shape.seq_len, t, sum_of_stages(shape, res.layers, 1, 1, bs, 0.0)))
        _progress(f"e2e {name} done, {clock.left():.0f}s left")
    _measure_stacks(req, res, clock, req.device)
    res.eager = list(EAGER_FALLBACKS)
    return res


def _measure_stacks(req: ProfileRequest, res: ProfileResult, clock: _Clock, device: str) -> None:
    """Whole block stacks of ``req.block_stacks`` on ``device`` (all of each model's blocks)."""
    for name in req.block_stacks:
        if clock.left() <= 0:
            res.skipped.append(f"block stack {name} (time budget)")
            continue
        _measure_stack(req, res, clock, name, device)


def _measure_stack(req: ProfileRequest, res: ProfileResult, clock: _Clock, name: str, device: str) -> None:
    """All of model ``name``'s blocks as one stack on ``device``, added to ``res.stacks`` next to n x one block."""
    shape = get_shape(name)
    lat = measure_block_stack(shape, shape.layers, req.batch_sizes, req.block_seq_lens, device, req.timing)
    res.stacks.extend(stack_rows(shape, shape.layers, lat, res.blocks))
    _progress(f"block stack {name} done, {clock.left():.0f}s left")


def _progress(msg: str) -> None:
    if os.environ.get("SERVEPLAN_PROFILE_QUIET") != "1":
        print(f"[profile {_dt.datetime.now(_dt.UTC):%H:%M:%S}] {msg}", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_distributed(req: ProfileRequest, world_size: int) -> ProfileResult:
    """Measure with ``world_size`` processes, one per GPU (NCCL; gloo on the CPU for testing).

    Measures layers at every tensor-parallel degree in ``req.tp_degrees`` (op = 1 on rank 0 alone),
    the stage-boundary transfer between ranks 0 and 1, end-to-end pipelines of 2..world_size stages
    and end-to-end tensor-parallel forwards, and the decoder blocks on rank 0.
    """
    torch = _torch()
    for k, v in NCCL_SAFETY_ENV.items():
        os.environ[k] = v
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "result.pt")
        torch.multiprocessing.spawn(_worker, args=(world_size, req, _free_port(), path), nprocs=world_size, join=True)
        res = torch.load(path, weights_only=False)
    return res


def _worker(rank: int, world_size: int, req: ProfileRequest, port: int, path: str) -> None:
    torch = _torch()
    dist = torch.distributed
    for k, v in NCCL_SAFETY_ENV.items():
        os.environ[k] = v
    cuda = req.device.startswith("cuda")
    device = f"cuda:{rank}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group(
        "nccl" if cuda else "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        **({"device_id": torch.device(device)} if cuda else {}),
    )
    res = ProfileResult(world_size=world_size)
    clock = _Clock(req.time_budget_s)
    EAGER_FALLBACKS.clear()

    def budget_ok(what: str) -> bool:
        # Every rank must take the same branch: rank 0's clock decides for all.
        flag = torch.tensor([1.0 if clock.left() > 0 else 0.0], device=device)
        dist.broadcast(flag, 0)
        if flag.item() == 0.0:
            res.skipped.append(f"{what} (time budget)")
            return False
        return True

    groups = {op: dist.new_group(list(range(op))) for op in req.tp_degrees if op <= world_size}
    for op, group in groups.items():
        for name in req.models:
            shape = get_shape(name)
            if op > shape.max_tp():
                res.skipped.append(f"layers {name} op={op} (shape does not divide)")
                continue
            if not budget_ok(f"layers {name} op={op}"):
                continue
            if rank < op:
                tp = TensorParallel(op, rank, group)
                res.layers.extend(measure_layers(shape, req.batch_sizes, device, req.timing, tp))
            dist.barrier()
            if rank == 0:
                _progress(f"layers {name} op={op} done, {clock.left():.0f}s left")

    chain_bs, chain_seqs = _chain_grid(req)
    if world_size >= 2 and budget_ok("p2p"):
        sizes = sorted(
            {
                activation_bytes(bs, get_shape(n).seq_len, get_shape(n).hidden)
                for n in req.models
                for bs in req.batch_sizes
            }
            | {
                activation_bytes(bs, tokens, get_shape(n).hidden)
                for n in req.chain_pipelines
                for bs in chain_bs
                for seq in chain_seqs
                for tokens in (seq, 1)
            }
        )
        if rank in (0, 1):
            res.p2p = measure_p2p(sizes, device, req.timing, peer=1 - rank, rank=rank)
        dist.barrier()
        if rank == 0:
            _progress(f"p2p done, {clock.left():.0f}s left")

    e2e_bs = _e2e_batch_sizes(req.batch_sizes)
    pp_list = [p for p in (1, 2, 4, 8) if p <= world_size]
    pp_groups = {pp: dist.new_group(list(range(pp))) for pp in pp_list}
    for name in req.e2e_models:
        shape = get_shape(name)
        for pp in pp_list:
            if pp > shape.layers or not budget_ok(f"e2e {name} pp={pp}"):
                continue
            if rank < pp:
                lat = measure_e2e_pipeline(shape, pp, e2e_bs, device, req.timing, rank, pp_groups[pp])
                if rank == 0:
                    for bs, t in lat.items():
                        tr = res.p2p.get(activation_bytes(bs, shape.seq_len, shape.hidden), 0.0)
                        s = sum_of_stages(shape, res.layers, pp, 1, bs, tr)
                        res.e2e.append(E2ERow(name, pp, 1, bs, shape.seq_len, t, s))
            dist.barrier()
        for op, group in groups.items():
            if op == 1 or op > shape.max_tp() or not budget_ok(f"e2e {name} op={op}"):
                continue
            if rank < op:
                lat = measure_e2e_tp(shape, e2e_bs, device, req.timing, TensorParallel(op, rank, group))
                if rank == 0:
                    for bs, t in lat.items():
                        s = sum_of_stages(shape, res.layers, 1, op, bs, 0.0)
                        res.e2e.append(E2ERow(name, 1, op, bs, shape.seq_len, t, s))
            dist.barrier()
        if rank == 0:
            _progress(f"e2e {name} done, {clock.left():.0f}s left")

    for name in req.blocks:
        if not budget_ok(f"blocks {name}"):
            continue
        if rank == 0:
            res.blocks.extend(measure_blocks(get_shape(name), req.batch_sizes, req.block_seq_lens, device, req.timing))
            _progress(f"blocks {name} done, {clock.left():.0f}s left")
        dist.barrier()

    for name in req.chain_pipelines:
        shape = get_shape(name)
        if world_size < 2 or shape.layers < world_size:
            res.skipped.append(f"chain {name} (needs 2 to {shape.layers} GPUs, the run has {world_size})")
            continue
        if not budget_ok(f"chain {name} over {world_size} GPUs"):
            continue
        lat = measure_chain_pipeline(shape, world_size, chain_bs, chain_seqs, device, req.timing, rank)
        if rank == 0:
            # The transfer measured between GPUs 0 and 1 stands for every hop (all pairs share one link type).
            hops = {
                (ph, bs, seq): (world_size - 1)
                * res.p2p.get(activation_bytes(bs, seq if ph == "prefill" else 1, shape.hidden), math.nan)
                for ph, bs, seq in lat
            }
            res.stacks.extend(stack_rows(shape, shape.layers, lat, res.blocks, world_size, hops))
            _progress(f"chain {name} over {world_size} GPUs done, {clock.left():.0f}s left")
        dist.barrier()

    for name in req.block_stacks:
        if not budget_ok(f"block stack {name}"):
            continue
        if rank == 0:
            _measure_stack(req, res, clock, name, device)
        dist.barrier()

    everyone: list[Any] = [None] * world_size
    dist.all_gather_object(everyone, EAGER_FALLBACKS)
    res.eager = sorted({what for ranks_list in everyone for what in ranks_list})
    if rank == 0:
        torch.save(res, path)
    dist.barrier()
    dist.destroy_process_group()


def environment(device: str) -> dict[str, Any]:
    """GPU model, driver, torch and CUDA versions and date, for ``<gpu>.meta.json``."""
    torch = _torch()
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_count=torch.cuda.device_count(),
            gpu_memory_bytes=int(props.total_memory),
            multiprocessors=props.multi_processor_count,
            driver=_driver_version(),
        )
    else:
        info.update(gpu="cpu", gpu_count=0, gpu_memory_bytes=0, driver="none")
    return info


def _driver_version() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"
