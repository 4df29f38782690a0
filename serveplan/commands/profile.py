"""``serveplan profile``: measure per-layer GPU profiles with PyTorch and write them under data/profiles/.

One GPU (``--tp 1``, the default): every layer kind of every model at every batch size, the decoder
blocks of the chain models, and whole-model forwards to check the sum-of-stages rule. Several GPUs
(``--tp 1,2,4``): the same at each tensor-parallel degree with one process per GPU through NCCL, plus
the measured stage-boundary transfer and real multi-GPU pipelines. See docs/profiles.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from serveplan.errors import InputError
from serveplan.paths import data_path
from serveplan.profiles.profile_table import (
    ALPASERVE_SHAPES,
    BLOCK_SHAPES,
    build_profile_rows,
    get_shape,
    gpu_slug,
    read_block_stack_csv,
    read_blocks_csv,
    read_e2e_csv,
    read_layers_csv,
    read_p2p_csv,
    write_block_stack_csv,
    write_blocks_csv,
    write_e2e_csv,
    write_layers_csv,
    write_meta,
    write_p2p_csv,
    write_profile_csv,
)

DEFAULT_E2E = ("bert-1.3b", "bert-2.6b", "bert-6.7b", "moe-1.3b", "moe-2.4b", "moe-5.3b")
# ``--device cpu`` is a smoke run of the profiler's logic: tiny shapes unless models are named.
CPU_MODELS = ("tiny-bert", "tiny-moe")
CPU_BLOCKS = ("tiny-llama",)
# Whole chain models that fit on one GPU, timed as block stacks (LLaMA-2-70B and BLOOM-176B do not fit).
STACKS = ("llama-2-7b",)
CHAIN_PIPELINES = ("llama-2-7b", "llama-2-70b")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``profile`` subcommand."""
    p = sub.add_parser("profile", help="measure GPU layer profiles with PyTorch (writes data/profiles/<gpu>.csv)")
    p.add_argument(
        "--models", default=None, help="AlpaServe models (comma list; default all; tiny ones with --device cpu)"
    )
    p.add_argument(
        "--blocks",
        default=None,
        help="chain-model decoder blocks (comma list; default all; tiny-llama with --device cpu)",
    )
    p.add_argument(
        "--block-stacks",
        default=None,
        help="chain models whose whole block stack is timed on one GPU (default llama-2-7b; tiny-llama on cpu)",
    )
    p.add_argument(
        "--chain-pipelines",
        default=None,
        help="chain models split over all GPUs of a --tp run, PETALS-style (default llama-2-7b,llama-2-70b when "
        "max(--tp) > 1; tiny-llama on cpu)",
    )
    p.add_argument("--e2e", default=None, help="models timed end to end (default: those of --models up to 6.7B)")
    p.add_argument("--batch-sizes", default="1,2,4,8,16", help="batch sizes (comma list)")
    p.add_argument("--block-seq-lens", default="512,1024,2048", help="prefill lengths / KV-cache lengths for blocks")
    p.add_argument("--pp", default="1,2,4,8,16,32", help="pipeline degrees in the stage table (<= layers)")
    p.add_argument("--tp", default="1", help="tensor-parallel degrees to measure; max(tp) processes, one per GPU")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: a smoke run with tiny models")
    p.add_argument("--quick", action="store_true", help="1 warm-up and 5 repeats per measurement")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls before timing (default 3)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls, median reported (default 10)")
    p.add_argument(
        "--warmup-s", type=float, default=None, help="keep warming up this long, to power-limited clocks (default 0.25)"
    )
    p.add_argument("--eager", action="store_true", help="time eager calls instead of CUDA-graph replays")
    p.add_argument("--out", default=str(data_path("profiles")), help="output folder (default data/profiles/)")
    p.add_argument("--gpu-slug", default=None, help="file-name stem (default from the GPU name, e.g. h100-80gb)")
    p.add_argument("--merge", action="store_true", help="keep earlier measurements in --out not redone")
    p.add_argument("--time-budget-s", type=float, default=540.0, help="skip remaining measurements after this long")
    p.add_argument("--note", default="", help="free text added to the metadata notes")
    p.set_defaults(func=run)


def _ints(text: str, what: str) -> list[int]:
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise InputError("expected a comma list of integers", field=what, value=text) from None
    if any(v < 1 for v in vals):
        raise InputError("values must be >= 1", field=what, value=text)
    return vals


def _chosen(text: str | None, default: Sequence[str]) -> list[str]:
    """The names of a comma-list option, or ``default`` when the option was not given."""
    return _names(text) if text is not None else list(default)


def _names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    for n in names:
        get_shape(n)
    return names


def run(args: argparse.Namespace) -> int:
    """Measure, then write the stage table, the block table, raw measurements and metadata."""
    from serveplan.profiles import torch_profiler as tpf

    cpu = args.device == "cpu"
    tp_degrees = sorted(set(_ints(args.tp, "--tp")))
    models = _chosen(args.models, CPU_MODELS if cpu else tuple(ALPASERVE_SHAPES))
    blocks = _chosen(args.blocks, CPU_BLOCKS if cpu else tuple(BLOCK_SHAPES))
    stacks = _chosen(args.block_stacks, CPU_BLOCKS if cpu else STACKS)
    chains = _chosen(args.chain_pipelines, (CPU_BLOCKS if cpu else CHAIN_PIPELINES) if max(tp_degrees) > 1 else ())
    e2e = _chosen(args.e2e, [m for m in (CPU_MODELS if cpu else DEFAULT_E2E) if m in models])
    warmup, repeats, warmup_s = (1, 5, 0.0) if args.quick or args.device == "cpu" else (3, 10, 0.25)
    timing = tpf.TimingSettings(
        args.warmup if args.warmup is not None else warmup,
        args.repeats or repeats,
        args.warmup_s if args.warmup_s is not None else warmup_s,
        cuda_graph=not args.eager,
    )
    req = tpf.ProfileRequest(
        models=models,
        blocks=blocks,
        batch_sizes=_ints(args.batch_sizes, "--batch-sizes"),
        block_seq_lens=_ints(args.block_seq_lens, "--block-seq-lens"),
        tp_degrees=tp_degrees,
        e2e_models=e2e,
        block_stacks=stacks,
        chain_pipelines=chains,
        device=args.device,
        timing=timing,
        time_budget_s=args.time_budget_s,
    )
    torch = tpf._torch()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("no CUDA device visible to PyTorch", field="--device", value="cuda", hint="use --device cpu")
    world = max(tp_degrees)
    if args.device == "cuda" and world > torch.cuda.device_count():
        raise InputError(
            f"--tp {world} needs {world} GPUs, {torch.cuda.device_count()} visible", field="--tp", value=args.tp
        )
    env = tpf.environment(args.device)
    slug = args.gpu_slug or (gpu_slug(env["gpu"], env["gpu_memory_bytes"]) if args.device == "cuda" else "cpu")
    res = tpf.run_distributed(req, world) if world > 1 else tpf.run_single(req)

    out = Path(args.out)
    layers, block_rows, e2e_rows, p2p, stacks_rows = res.layers, res.blocks, res.e2e, res.p2p, res.stacks
    if args.merge:
        layers, block_rows, e2e_rows, p2p, stacks_rows = _merge(
            out, slug, layers, block_rows, e2e_rows, p2p, stacks_rows
        )
    pp = _ints(args.pp, "--pp")
    rows = build_profile_rows(layers, pp, p2p)
    written = [write_profile_csv(out / f"{slug}.csv", rows), write_layers_csv(out / f"{slug}_layers.csv", layers)]
    if block_rows:
        written.append(write_blocks_csv(out / f"{slug}_blocks.csv", block_rows))
    if e2e_rows:
        written.append(write_e2e_csv(out / f"{slug}_e2e.csv", e2e_rows))
    if p2p:
        written.append(write_p2p_csv(out / f"{slug}_p2p.csv", p2p))
    if stacks_rows:
        written.append(write_block_stack_csv(out / f"{slug}_block_stack.csv", stacks_rows))
    ops = sorted({m.op for m in layers})
    notes = [
        f"timing: CUDA events around {'CUDA-graph replays' if timing.cuda_graph else 'eager calls'}, "
        f"{timing.warmup} warm-up calls and at least {timing.warmup_s} s of warm-up "
        f"(sustained-load clocks), median of {timing.repeats} repeats"
        if args.device == "cuda"
        else "timing: CPU wall clock (smoke run, not a GPU profile)",
        "random fp16 weights; each distinct layer kind measured once; stage latency = sum of its layers' medians"
        + (
            " + measured NCCL transfer of the incoming activation for stages after the first"
            if p2p
            else "; no stage-boundary transfer included (single GPU: not measurable)"
        ),
        f"tensor-parallel degrees measured: {ops}; pp rows are composed from the per-layer measurements",
        "act_bytes: max over the stage's layers of max_memory_allocated during the layer minus memory held before",
        "simplifications: no rotary/ALiBi; output head computes all tokens' logits, vocabulary left split under TP; "
        "MoE: top-2 GShard dispatch, capacity 2*tokens/experts, experts' FFNs split under TP",
    ]
    if args.device == "cuda" and timing.cuda_graph:
        if max(ops, default=1) > 1:
            notes.append(
                "under tensor parallelism the CUDA graph holds the NCCL all-reduces too; each capture was checked "
                "against an eager call; pipelines replay each stage's work as a graph with eager NCCL send/recv "
                "between stages, timed by the host clock after the same timed warm-up"
            )
        if res.eager:
            notes.append(
                "timed as eager calls (graph capture failed or its replay disagreed with an eager call): "
                + "; ".join(res.eager)
            )
    if res.skipped:
        notes.append("not measured in this run: " + "; ".join(res.skipped))
    if args.note:
        notes.append(args.note)
    meta = {
        "gpu": env["gpu"],
        "gpu_count": env["gpu_count"] if world == 1 else world,
        "gpu_memory_bytes": env["gpu_memory_bytes"],
        "driver": env["driver"],
        "torch": env["torch"],
        "cuda": env["cuda"],
        "date": env["date"],
        "source": "measured",
        "command": _command_line(args),
        "timing": {
            "warmup": timing.warmup,
            "warmup_s": timing.warmup_s,
            "repeats": timing.repeats,
            "cuda_graph": timing.cuda_graph,
        },
        "tp_degrees": ops,
        "files": [p.name for p in written],
        "notes": notes,
    }
    written.append(write_meta(out / f"{slug}.meta.json", meta))
    _print_summary(rows, block_rows)
    for p in written:
        print(f"wrote {p}")
    if res.skipped:
        print("not measured (time budget or shape): " + "; ".join(res.skipped))
    return 0


def _command_line(args: argparse.Namespace) -> str:
    argv = getattr(args, "argv", None)
    if argv is None:
        argv = sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] == "profile" else []
    return " ".join(["serveplan", "profile", *(shlex.quote(a) for a in argv)])


def _merge(out: Path, slug: str, layers: list, blocks: list, e2e: list, p2p: dict, stacks: list) -> tuple:
    """Union of earlier tables in ``out`` with this run's measurements (this run wins on equal keys)."""

    def union(old: list, new: list, key: tuple[str, ...]) -> list:
        k = lambda r: tuple(getattr(r, f) for f in key)  # noqa: E731
        merged = {k(r): r for r in old}
        merged.update({k(r): r for r in new})
        return list(merged.values())

    f = out / f"{slug}_layers.csv"
    if f.exists():
        layers = union(read_layers_csv(f), layers, ("model", "op", "kind", "batch_size"))
    f = out / f"{slug}_blocks.csv"
    if f.exists():
        blocks = union(read_blocks_csv(f), blocks, ("model", "phase", "batch_size", "seq_len"))
    f = out / f"{slug}_e2e.csv"
    if f.exists():
        e2e = union(read_e2e_csv(f), e2e, ("model", "pp", "op", "batch_size"))
    f = out / f"{slug}_p2p.csv"
    if f.exists():
        p2p = {**read_p2p_csv(f), **p2p}
    f = out / f"{slug}_block_stack.csv"
    if f.exists():
        key = ("model", "gpus", "phase", "n_blocks", "batch_size", "seq_len")
        stacks = union(read_block_stack_csv(f), stacks, key)
    return layers, blocks, e2e, p2p, stacks


def _print_summary(rows: list, blocks: list) -> None:
    single = [r for r in rows if r.pp == 1]
    if single:
        print(f"{'model':<12} {'op':>3} {'bs':>3} {'latency_ms':>11} {'weight_GB':>10} {'act_GB':>8}")
        for r in sorted(single, key=lambda r: (r.model, r.op, r.batch_size)):
            print(
                f"{r.model:<12} {r.op:>3} {r.batch_size:>3} {r.latency_s * 1e3:>11.2f} "
                f"{r.weight_bytes / 1e9:>10.3f} {r.act_bytes / 1e9:>8.3f}"
            )
    if blocks:
        print(f"{'block':<12} {'phase':<8} {'seq':>5} {'bs':>3} {'latency_ms':>11}")
        for b in sorted(blocks, key=lambda b: (b.model, b.phase, b.seq_len, b.batch_size)):
            print(f"{b.model:<12} {b.phase:<8} {b.seq_len:>5} {b.batch_size:>3} {b.latency_s * 1e3:>11.3f}")


def main(argv: list[str] | None = None) -> int:
    """Run ``profile`` without the rest of the CLI (GPU machines need not have the solver stack)."""
    parser = argparse.ArgumentParser(prog="serveplan")
    register(parser.add_subparsers(dest="command"))
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(["profile", *argv])
    args.argv = argv
    try:
        return run(args)
    except InputError as exc:
        print(f"serveplan: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
