"""Compare the measured GPU profiles with analytic estimates and plot the parallelism overheads.

``python -m serveplan.profiles.report`` reads ``data/profiles/<gpu>*.csv`` and writes
``docs/img/profiles_latency.png``, ``docs/img/profiles_parallel.png`` and ``docs/img/profiles_blocks.png``;
``--markdown`` prints the tables of ``docs/profiles.md``. Two analytic estimates are set against the
measurements:

* a roofline: ``max(FLOPs / peak, weight bytes / bandwidth)`` per layer with the FLOPs of the shapes
  actually built (:func:`layer_flops`) and the machine's measured ceilings (:data:`CEILINGS`);
* serveplan's AlpaServe latency model (:mod:`serveplan.alpaserve.latency`) in its uncalibrated
  analytic mode (no ``reference_latency_s``), when that module is importable.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from serveplan.paths import REPO_ROOT, data_path
from serveplan.profiles.profile_table import (
    ALPASERVE_SHAPES,
    BLOCK_SHAPES,
    BlockRow,
    BlockStackRow,
    E2ERow,
    LayerMeasurement,
    ProfileRow,
    TransformerShape,
    read_block_stack_csv,
    read_blocks_csv,
    read_e2e_csv,
    read_layers_csv,
    read_p2p_csv,
    read_profile_csv,
)


@dataclass(frozen=True)
class Ceilings:
    """A GPU's measured ceilings: dense fp16/bf16 matrix-product rate and device-memory bandwidth."""

    flops: float
    bandwidth: float


# 8192^3 half-precision matrix product on random data and a large device-to-device copy (bytes read
# plus written), measured on the same machine types the tables come from.
CEILINGS = {"h100-80gb": Ceilings(798e12, 3.0e12), "h200-141gb": Ceilings(790e12, 4.3e12)}


def layer_flops(shape: TransformerShape, kind: str, batch_size: int, seq_len: int | None = None) -> float:
    """Forward FLOPs of one layer as built by the profiler (multiply-add = 2 FLOPs).

    Dense: QKV and output projections ``2 T (h (h + 2 h_kv) + h^2)``, attention scores and weighted sum
    ``4 T s h`` (halved when causal), MLP ``2 T h f`` per matrix (3 matrices for SwiGLU). MoE: the same
    attention, a gate ``2 T h E`` and two experts per token. Head: ``2 T h V``. Embedding: 0.
    """
    s = seq_len or shape.seq_len
    t = batch_size * s
    h, f = shape.hidden, shape.ffn
    if kind == "embed":
        return 0.0
    if kind == "head":
        return 2.0 * t * h * shape.vocab
    kv = shape.kv_heads * shape.head_dim
    causal = shape.family in ("llama", "bloom")
    attn = 2.0 * t * (h * (h + 2 * kv) + h * h) + 4.0 * t * s * h * (0.5 if causal else 1.0)
    mlp = 2.0 * t * h * f * (3 if shape.family == "llama" else 2)
    if kind == "moe":
        return attn + 2.0 * t * h * shape.experts + 2 * mlp
    return attn + mlp


def roofline_s(shape: TransformerShape, layers: Sequence[LayerMeasurement], batch_size: int, ceil: Ceilings) -> float:
    """Roofline time of a whole single-GPU forward: per layer ``max(FLOPs / peak, weight bytes / bandwidth)``."""
    by_kind = {m.kind: m for m in layers if m.model == shape.name and m.op == 1 and m.batch_size == batch_size}
    total = 0.0
    for kind in shape.layer_kinds():
        w = by_kind[kind].weight_bytes if kind in by_kind else 0
        total += max(layer_flops(shape, kind, batch_size) / ceil.flops, w / ceil.bandwidth)
    return total


def alpaserve_analytic_s(model: str, pp: int, op: int, batch_size: int, gpu: str = "h100-80gb") -> float | None:
    """Serveplan's AlpaServe latency model, analytic and uncalibrated, or None when it is unavailable."""
    try:
        from serveplan.alpaserve.cluster import ParallelConfig
        from serveplan.alpaserve.latency import GPUS, LatencyModel
        from serveplan.alpaserve.model import get_model
    except ImportError:
        return None
    try:
        spec = replace(get_model(model), reference_latency_s=None)
        lm = LatencyModel(gpu=gpu if gpu in GPUS else "h100-80gb")
        return float(lm.latency_s(spec, ParallelConfig(pp, op), batch_size))
    except Exception:  # the latency model's API is owned elsewhere; a comparison is optional
        return None


@dataclass
class Tables:
    """One GPU type's shipped tables."""

    slug: str
    stages: list[ProfileRow]
    layers: list[LayerMeasurement]
    blocks: list[BlockRow]
    e2e: list[E2ERow]
    p2p: dict[int, float]
    stacks: list[BlockStackRow] = field(default_factory=list)


def load_tables(slug: str, folder: Path | None = None) -> Tables:
    """Read every table of one GPU type (missing optional tables come back empty)."""
    folder = folder or data_path("profiles")

    def opt(name: str, reader, empty):
        p = folder / f"{slug}{name}.csv"
        return reader(p) if p.exists() else empty

    return Tables(
        slug,
        read_profile_csv(folder / f"{slug}.csv"),
        read_layers_csv(folder / f"{slug}_layers.csv"),
        opt("_blocks", read_blocks_csv, []),
        opt("_e2e", read_e2e_csv, []),
        opt("_p2p", read_p2p_csv, {}),
        opt("_block_stack", read_block_stack_csv, []),
    )


def total_latency(t: Tables, model: str, pp: int, op: int, bs: int) -> float:
    """Sum of the stage latencies of one configuration (single-request latency)."""
    return sum(r.latency_s for r in t.stages if (r.model, r.pp, r.op, r.batch_size) == (model, pp, op, bs))


# ------------------------------------------------------------------------------------------ markdown


def markdown(h100: Tables, h200: Tables | None) -> str:
    """The tables of docs/profiles.md."""
    out = []
    out.append("### Single GPU, pp = 1: measured against the roofline and the analytic model\n")
    out.append(
        "| model | weights GB | bs | H100 ms | H100 whole-model ms | roofline ms | measured / roofline "
        "| analytic ms (h100) | H200 ms |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|")
    ceil = CEILINGS["h100-80gb"]
    e2e = {(r.model, r.pp, r.op, r.batch_size): r.latency_s for r in h100.e2e}
    for model, shape in ALPASERVE_SHAPES.items():
        w = next(r.weight_bytes for r in h100.stages if r.model == model and r.pp == 1)
        for bs in (1, 16):
            meas = total_latency(h100, model, 1, 1, bs)
            roof = roofline_s(shape, h100.layers, bs, ceil)
            ana = alpaserve_analytic_s(model, 1, 1, bs)
            whole = e2e.get((model, 1, 1, bs))
            h2 = total_latency(h200, model, 1, 1, bs) if h200 else float("nan")
            out.append(
                f"| {model} | {w / 1e9:.2f} | {bs} | {meas * 1e3:.1f} | {_ms(whole)} | {roof * 1e3:.1f} | "
                f"{meas / roof:.2f} | {_ms(ana)} | {h2 * 1e3:.1f} |"
            )
    if h200 is not None:
        out.append("\n### Tensor parallelism (H200, pp = 1): latency, speed-up and communication overhead\n")
        out.append(
            "Overhead = latency(op) - latency(1)/op, the part of the split forward that is not the "
            "ideal share of the single-GPU time (AlpaServe's intra-op overhead).\n"
        )
        out.append(
            "| model | bs | op=1 ms | op=2 ms | op=4 ms | speed-up op=2 | speed-up op=4 | overhead op=4 ms "
            "| analytic speed-up op=2 / op=4 |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|")
        for model in ALPASERVE_SHAPES:
            for bs in (1, 16):
                lat = {op: total_latency(h200, model, 1, op, bs) for op in (1, 2, 4)}
                ana = {op: alpaserve_analytic_s(model, 1, op, bs, gpu="h200-141gb") for op in (1, 2, 4)}
                ana_cell = "-" if None in ana.values() else f"{ana[1] / ana[2]:.2f} / {ana[1] / ana[4]:.2f}"
                out.append(
                    f"| {model} | {bs} | {lat[1] * 1e3:.1f} | {lat[2] * 1e3:.1f} | {lat[4] * 1e3:.1f} | "
                    f"{lat[1] / lat[2]:.2f} | {lat[1] / lat[4]:.2f} | {(lat[4] - lat[1] / 4) * 1e3:.1f} | {ana_cell} |"
                )
        out.append("\n### Pipeline and tensor parallelism end to end (H200): measured forward vs sum of stages\n")
        out.append("| model | bs | pp=1 | pp=2 | pp=4 | op=2 | op=4 | sum-of-stages pp=4 | sum-of-layers op=4 |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        ee = {(r.model, r.pp, r.op, r.batch_size): r for r in h200.e2e}
        for model in sorted({r.model for r in h200.e2e}, key=list(ALPASERVE_SHAPES).index):
            for bs in sorted({r.batch_size for r in h200.e2e}):
                cells = [ee.get((model, p, o, bs)) for p, o in ((1, 1), (2, 1), (4, 1), (1, 2), (1, 4))]
                pp4, op4 = ee.get((model, 4, 1, bs)), ee.get((model, 1, 4, bs))
                out.append(
                    f"| {model} | {bs} | "
                    + " | ".join(_ms(c.latency_s if c else None) for c in cells)
                    + f" | {_ms(pp4.sum_of_stages_s if pp4 else None)} | {_ms(op4.sum_of_stages_s if op4 else None)} |"
                )
        if h200.p2p:
            out.append("\n### Stage-boundary transfer between two H200s (NCCL send/recv, one way)\n")
            out.append("| activation MB | latency us | GB/s |")
            out.append("|---|---|---|")
            for n, t in sorted(h200.p2p.items()):
                if n in (min(h200.p2p), max(h200.p2p)) or n in (4194304, 16777216, 67108864):
                    out.append(f"| {n / 2**20:.3g} | {t * 1e6:.0f} | {n / t / 1e9:.3g} |")
    out.append("\n### Decoder blocks (H100): measured against the chain model's per-block compute model\n")
    out.append(
        "Chain model (server_chain digest section 1): prefill ``F / f`` per token with F the block's "
        "FLOPs per token, decode ``s_m / b``; here f and b are the measured ceilings and s_m the fp16 block weight.\n"
    )
    out.append("| block | weights GB | prefill 2048 tok ms (bs 1) | F/f ms | decode ms (bs 1, cache 2048) | s_m/b ms |")
    out.append("|---|---|---|---|---|---|")
    for name, shape in BLOCK_SHAPES.items():
        rows = {(b.phase, b.batch_size, b.seq_len): b for b in h100.blocks if b.model == name}
        if not rows:
            continue
        pre, dec = rows[("prefill", 1, 2048)], rows[("decode", 1, 2048)]
        f_ms = layer_flops(shape, "dense", 1, 2048) / ceil.flops * 1e3
        m_ms = pre.weight_bytes / ceil.bandwidth * 1e3
        out.append(
            f"| {name} | {pre.weight_bytes / 1e9:.2f} | {pre.latency_s * 1e3:.2f} | {f_ms:.2f} | "
            f"{dec.latency_s * 1e3:.3f} | {m_ms:.3f} |"
        )
    for t in (h100, h200):
        if t is None or not t.stacks:
            continue
        gpu = t.slug.split("-")[0].upper()
        out.append(f"\n### Whole models as block stacks and chains ({gpu}): measured against the chain model\n")
        out.append(
            "All of a model's decoder blocks (each with its own weights and KV cache; no embedding or output head) "
            "on one GPU, or split evenly over a chain of GPUs with NCCL transfers of the hidden states, next to the "
            "chain model's composition rule: n_blocks x one block + the measured one-way transfers.\n"
        )
        out.append("| model | GPUs | phase | seq | bs | measured ms | n x block ms | transfers ms | measured / model |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for r in sorted(t.stacks, key=lambda r: (r.model, r.gpus, r.phase != "prefill", r.seq_len, r.batch_size)):
            if r.batch_size in (1, 4, 16) and r.seq_len in (512, 2048):
                pred = r.sum_of_blocks_s + r.transfer_s
                out.append(
                    f"| {r.model} | {r.gpus} | {r.phase} | {r.seq_len} | {r.batch_size} | {r.latency_s * 1e3:.2f} | "
                    f"{r.sum_of_blocks_s * 1e3:.2f} | {r.transfer_s * 1e3:.3f} | {r.latency_s / pred:.3f} |"
                )
    return "\n".join(out) + "\n"


def _ms(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v * 1e3:.1f}"


# ------------------------------------------------------------------------------------------ plots


def plot(h100: Tables, h200: Tables | None, out_dir: Path) -> list[Path]:
    """Write the three figures; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    colors = dict(zip(ALPASERVE_SHAPES, plt.get_cmap("tab10").colors, strict=False))
    bss = [1, 2, 4, 8, 16]

    # 1. Single-GPU latency vs batch size: measured, roofline, analytic.
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, fam in zip(axes, ("bert", "moe"), strict=True):
        for model, shape in ALPASERVE_SHAPES.items():
            if shape.family != fam:
                continue
            c = colors[model]
            ax.plot(bss, [total_latency(h100, model, 1, 1, b) for b in bss], "o-", color=c, label=f"{model} measured")
            roof = [roofline_s(shape, h100.layers, b, CEILINGS["h100-80gb"]) for b in bss]
            ax.plot(bss, roof, ":", color=c)
            ana = [alpaserve_analytic_s(model, 1, 1, b) for b in bss]
            if all(a is not None for a in ana):
                ax.plot(bss, ana, "--", color=c, alpha=0.7)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("forward latency, s (pp=1, op=1)")
        ax.set_title(f"{fam.upper()} models on one H100: measured (o-), roofline (:), analytic (--)", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "profiles_latency.png"))

    # 2. Parallelism overheads (H200 x4).
    if h200 is not None and h200.e2e:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        models = [m for m in ALPASERVE_SHAPES if any(r.model == m for r in h200.e2e)]
        e2e = {(r.model, r.pp, r.op, r.batch_size): r for r in h200.e2e}
        bs_list = sorted({r.batch_size for r in h200.e2e})
        ax = axes[0]
        for model in models:
            for bs, mk in zip(bs_list, ("o", "s", "^"), strict=False):
                base = e2e.get((model, 1, 1, bs))
                pts = [
                    (p, e2e[(model, p, 1, bs)].latency_s / base.latency_s)
                    for p in (1, 2, 4)
                    if (model, p, 1, bs) in e2e
                ]
                ax.plot(*zip(*pts, strict=True), mk + "-", color=colors[model], alpha=0.8, label=f"{model} bs={bs}")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xlabel("pipeline stages (one H200 each)")
        ax.set_ylabel("measured forward latency / pp=1")
        ax.set_title("Pipeline: single-request latency, measured end to end", fontsize=9)
        ax.legend(fontsize=5, ncol=2)
        ax.grid(alpha=0.3)
        ax = axes[1]
        for model in ALPASERVE_SHAPES:
            for bs, mk in ((1, "o--"), (16, "s-")):
                sp = [total_latency(h200, model, 1, 1, bs) / total_latency(h200, model, 1, op, bs) for op in (1, 2, 4)]
                ax.plot([1, 2, 4], sp, mk, color=colors[model], label=f"{model} bs={bs}")
        ax.plot([1, 2, 4], [1, 2, 4], "k:", label="ideal")
        ax.set_xlabel("tensor-parallel degree op")
        ax.set_ylabel("speed-up over op=1 (sum of measured layers)")
        ax.set_title("Tensor parallelism (Megatron split, NCCL all-reduce)", fontsize=9)
        ax.legend(fontsize=5, ncol=2)
        ax.grid(alpha=0.3)
        ax = axes[2]
        for model in ALPASERVE_SHAPES:
            ov = [
                (total_latency(h200, model, 1, op, 16) - total_latency(h200, model, 1, 1, 16) / op)
                / total_latency(h200, model, 1, 1, 16)
                for op in (1, 2, 4)
            ]
            ax.plot([1, 2, 4], ov, "s-", color=colors[model], label=model)
        ax.set_xlabel("tensor-parallel degree op")
        ax.set_ylabel("(latency(op) - latency(1)/op) / latency(1)")
        ax.set_title("Intra-op overhead at batch 16", fontsize=9)
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        paths.append(_save(fig, out_dir / "profiles_parallel.png"))

    # 3. Decoder blocks: prefill and decode vs sequence length.
    if h100.blocks:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        bcolors = dict(zip(BLOCK_SHAPES, ("tab:blue", "tab:orange", "tab:green"), strict=True))
        for ax, phase in zip(axes, ("prefill", "decode"), strict=True):
            for name in BLOCK_SHAPES:
                for bs, mk in ((1, "o--"), (16, "s-")):
                    pts = sorted(
                        (b.seq_len, b.latency_s)
                        for b in h100.blocks
                        if (b.model, b.phase, b.batch_size) == (name, phase, bs)
                    )
                    if pts:
                        ax.plot(*zip(*pts, strict=True), mk, color=bcolors[name], label=f"{name} bs={bs}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("prompt tokens" if phase == "prefill" else "KV-cache tokens")
            ax.set_ylabel("latency of one block, s")
            ax.set_title(f"{phase} on one H100", fontsize=9)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3, which="both")
        fig.tight_layout()
        paths.append(_save(fig, out_dir / "profiles_blocks.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Write the figures (and print the markdown tables with ``--markdown``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profiles", default=str(data_path("profiles")), help="folder of the tables")
    p.add_argument("--out", default=str(REPO_ROOT / "docs" / "img"), help="folder for the figures")
    p.add_argument("--markdown", action="store_true", help="print the docs/profiles.md tables")
    p.add_argument("--no-plots", action="store_true")
    args = p.parse_args(argv)
    folder = Path(args.profiles)
    h100 = load_tables("h100-80gb", folder)
    h200 = load_tables("h200-141gb", folder) if (folder / "h200-141gb.csv").exists() else None
    if args.markdown:
        print(markdown(h100, h200))
    if not args.no_plots:
        for path in plot(h100, h200, Path(args.out)):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
