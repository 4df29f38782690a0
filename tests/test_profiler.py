"""The GPU profiler's logic: stage aggregation and CSV formats (pure Python), and the PyTorch measuring
code on tiny models on the CPU (skipped where torch is missing). GPU runs are marked ``gpu``."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from serveplan.errors import InputError
from serveplan.paths import data_path
from serveplan.profiles.profile_table import (
    ALPASERVE_SHAPES,
    BLOCK_HEADER,
    BLOCK_SHAPES,
    PROFILE_HEADER,
    TINY_SHAPES,
    BlockRow,
    BlockStackRow,
    LayerMeasurement,
    activation_bytes,
    aggregate_stages,
    build_profile_rows,
    even_split,
    get_shape,
    gpu_slug,
    kv_cache_bytes,
    read_block_stack_csv,
    read_blocks_csv,
    read_e2e_csv,
    read_layers_csv,
    read_p2p_csv,
    read_profile_csv,
    stage_layer_kinds,
    write_block_stack_csv,
    write_blocks_csv,
    write_meta,
    write_profile_csv,
)

# --------------------------------------------------------------------------------------------------
# Pure Python: no torch needed


def _fake_layers(model: str, op: int = 1, bs: int = 1) -> dict[str, LayerMeasurement]:
    shape = get_shape(model)
    lat = {"embed": 0.001, "dense": 0.01, "moe": 0.02, "head": 0.005}
    wb = {"embed": 1000, "dense": 100, "moe": 400, "head": 1000}
    act = {"embed": 10, "dense": 50, "moe": 70, "head": 30}
    return {k: LayerMeasurement(model, op, k, bs, shape.seq_len, lat[k], wb[k], act[k]) for k in shape.distinct_kinds()}


@pytest.mark.parametrize(("n", "pp"), [(24, 1), (24, 5), (24, 16), (32, 32), (7, 3), (128, 8)])
def test_even_split_covers_layers_contiguously(n, pp):
    parts = even_split(n, pp)
    assert len(parts) == pp
    assert [i for r in parts for i in r] == list(range(n))
    sizes = [len(r) for r in parts]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("pp", [0, 25])
def test_even_split_rejects_bad_degree(pp):
    with pytest.raises(InputError):
        even_split(24, pp)


def test_stage_kinds_put_embedding_first_and_head_last():
    shape = get_shape("moe-1.3b")
    stages = stage_layer_kinds(shape, 4)
    assert stages[0][0] == "embed" and stages[-1][-1] == "head"
    flat = [k for s in stages for k in s]
    assert flat == shape.layer_kinds()
    assert flat.count("moe") == shape.layers // 2


@pytest.mark.parametrize("model", ["bert-1.3b", "moe-2.4b", "bert-104b"])
@pytest.mark.parametrize("pp", [1, 2, 4, 8])
def test_stage_latencies_sum_the_layers(model, pp):
    shape = get_shape(model)
    layers = _fake_layers(model)
    rows = aggregate_stages(shape, layers, pp, transfer_s=0.0007)
    assert [r.stage for r in rows] == list(range(pp))
    total = sum(layers[k].latency_s for k in shape.layer_kinds())
    assert sum(r.latency_s for r in rows) == pytest.approx(total + 0.0007 * (pp - 1))
    # Weight: the tied head is counted once on one stage, as a copy on the last stage otherwise.
    weight = sum(layers[k].weight_bytes for k in shape.layer_kinds()) - (layers["head"].weight_bytes if pp == 1 else 0)
    assert sum(r.weight_bytes for r in rows) == weight
    for r, kinds in zip(rows, stage_layer_kinds(shape, pp), strict=True):
        assert r.act_bytes == max(layers[k].act_bytes for k in kinds)


def test_aggregate_requires_every_layer_kind():
    layers = _fake_layers("moe-1.3b")
    del layers["moe"]
    with pytest.raises(InputError):
        aggregate_stages(get_shape("moe-1.3b"), layers, 2)


def test_profile_rows_roundtrip_with_exact_header(tmp_path):
    meas = [*_fake_layers("bert-1.3b").values(), *_fake_layers("bert-1.3b", bs=4).values()]
    nbytes = activation_bytes(4, 2048, 2048)
    rows = build_profile_rows(meas, [1, 2, 4, 64], transfer_s={nbytes: 0.003})
    # pp=64 exceeds 24 layers and is left out; 2 batch sizes x (1 + 2 + 4) stages.
    assert len(rows) == 2 * 7
    with_transfer = [r for r in rows if r.batch_size == 4 and r.pp == 2 and r.stage == 1]
    without = [r for r in rows if r.batch_size == 1 and r.pp == 2 and r.stage == 1]
    assert with_transfer[0].latency_s - without[0].latency_s == pytest.approx(0.003)
    path = write_profile_csv(tmp_path / "g.csv", rows)
    with path.open() as fh:
        assert next(csv.reader(fh)) == list(PROFILE_HEADER)
    back = read_profile_csv(path)
    assert len(back) == len(rows)
    assert {(r.pp, r.stage) for r in back} == {(r.pp, r.stage) for r in rows}
    assert sum(r.latency_s for r in back) == pytest.approx(sum(r.latency_s for r in rows), rel=1e-5)


def test_read_rejects_a_wrong_header(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("model,pp,latency_s\nbert-1.3b,1,0.1\n")
    with pytest.raises(InputError):
        read_profile_csv(p)


def test_blocks_csv_roundtrip(tmp_path):
    shape = get_shape("llama-2-7b")
    rows = [
        BlockRow("llama-2-7b", ph, 2, 2048, 0.001, 10, kv_cache_bytes(shape, 2, 2048)) for ph in ("prefill", "decode")
    ]
    path = write_blocks_csv(tmp_path / "g_blocks.csv", rows)
    with path.open() as fh:
        assert next(csv.reader(fh)) == list(BLOCK_HEADER)
    assert sorted(read_blocks_csv(path), key=lambda r: r.phase) == sorted(rows, key=lambda r: r.phase)


def test_kv_cache_matches_the_chain_digest():
    # server_chain.md 6.4: s_c = 0.0336 GB per block per job for LLaMA-2-7B at 2048 tokens (2*4096*2048*2 B).
    assert kv_cache_bytes(get_shape("llama-2-7b"), 1, 2048) == 2 * 4096 * 2048 * 2
    # Grouped-query attention: 8 KV heads of 128 for LLaMA-2-70B.
    assert kv_cache_bytes(get_shape("llama-2-70b"), 1, 2048) == 2 * 8 * 128 * 2048 * 2


def test_model_shapes_match_alpaserve_sizes():
    # fp16 parameter bytes of the shapes against AlpaServe's Table 1 sizes (within 12%).
    table1_gb = {"bert-1.3b": 2.4, "bert-2.6b": 5.4, "bert-6.7b": 13.4, "bert-104b": 208,
                 "moe-1.3b": 2.6, "moe-2.4b": 4.8, "moe-5.3b": 10.6}  # fmt: skip
    for name, gb in table1_gb.items():
        s = ALPASERVE_SHAPES[name]
        attn = 4 * s.hidden**2
        mlp = 2 * s.hidden * s.ffn
        n = sum(attn + (s.experts * mlp if k == "moe" else mlp) for k in s.layer_kinds()[1:-1])
        n += s.vocab * s.hidden + s.seq_len * s.hidden
        assert 2 * n / 1e9 == pytest.approx(gb, rel=0.12), name


def test_unknown_model_and_shape_errors():
    with pytest.raises(InputError):
        get_shape("gpt-5")
    with pytest.raises(InputError):
        type(TINY_SHAPES["tiny-bert"])("x", "bert", 65, 2, 4, 8, 16, 32)  # hidden not a multiple of heads


def test_gpu_slug():
    assert gpu_slug("NVIDIA H100 80GB HBM3", 85_017_493_504) == "h100-80gb"
    assert gpu_slug("NVIDIA H200", 150_109_880_320) == "h200-141gb"
    assert gpu_slug("NVIDIA A100-SXM4-40GB", 42_000_000_000).startswith("a100")
    assert gpu_slug("NVIDIA GeForce RTX 4090", 24 * 2**30) == "geforce-24gb"


def test_meta_requires_provenance(tmp_path):
    with pytest.raises(InputError):
        write_meta(tmp_path / "x.meta.json", {"gpu": "x"})
    p = write_meta(
        tmp_path / "x.meta.json", {"gpu": "g", "driver": "d", "torch": "t", "cuda": "c", "date": "now", "command": "c"}
    )
    assert json.loads(p.read_text())["source"] == "measured"


@pytest.mark.parametrize("slug", ["h100-80gb", "h200-141gb"])
def test_shipped_tables_are_complete(slug):
    folder = data_path("profiles")
    meta = json.loads((folder / f"{slug}.meta.json").read_text())
    for key in ("gpu", "driver", "torch", "cuda", "date", "command", "notes"):
        assert meta[key], key
    assert meta["source"] == "measured"
    rows = read_profile_csv(folder / f"{slug}.csv")
    assert {r.model for r in rows} == set(ALPASERVE_SHAPES)
    assert {r.batch_size for r in rows} == {1, 2, 4, 8, 16}
    assert all(r.latency_s > 0 and r.weight_bytes > 0 and r.act_bytes > 0 for r in rows)
    by_cfg: dict[tuple, list] = {}
    for r in rows:
        by_cfg.setdefault((r.model, r.pp, r.op, r.batch_size), []).append(r)
    for (model, pp, _op, _bs), stages in by_cfg.items():
        assert sorted(s.stage for s in stages) == list(range(pp)), model
        assert all(s.seq_len == ALPASERVE_SHAPES[model].seq_len for s in stages)
    # Stage rows are rebuilt exactly from the raw layer measurements shipped beside them.
    layers = read_layers_csv(folder / f"{slug}_layers.csv")
    p2p_path = folder / f"{slug}_p2p.csv"
    p2p = read_p2p_csv(p2p_path) if p2p_path.exists() else None
    rebuilt = build_profile_rows(layers, sorted({r.pp for r in rows}), p2p)
    assert len(rebuilt) == len(rows)
    lat = {(r.model, r.pp, r.op, r.batch_size, r.stage): r.latency_s for r in rows}
    for r in rebuilt:
        assert r.latency_s == pytest.approx(lat[(r.model, r.pp, r.op, r.batch_size, r.stage)], rel=1e-4)
    blocks = read_blocks_csv(folder / f"{slug}_blocks.csv")
    assert {b.model for b in blocks} == set(BLOCK_SHAPES)
    assert {b.phase for b in blocks} == {"prefill", "decode"}
    assert read_e2e_csv(folder / f"{slug}_e2e.csv")


def test_h200_table_has_tensor_parallel_rows():
    rows = read_profile_csv(data_path("profiles", "h200-141gb.csv"))
    assert {r.op for r in rows} == {1, 2, 4}
    w = {(r.model, r.op): r.weight_bytes for r in rows if r.pp == 1 and r.batch_size == 1}
    for model in ALPASERVE_SHAPES:
        # Splitting over op GPUs divides the weight (positions, norms and some biases stay replicated).
        assert w[(model, 4)] == pytest.approx(w[(model, 1)] / 4, rel=0.02)


def test_modules_import_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import serveplan.profiles.torch_profiler, serveplan.commands.profile\n"
        "from serveplan.commands.profile import main\n"
        "sys.exit(main(['--device', 'cpu', '--models', 'tiny-bert', '--blocks', '', '--out', sys.argv[1]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, "/nonexistent"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "needs PyTorch" in out.stderr


# --------------------------------------------------------------------------------------------------
# PyTorch on the CPU (skipped where torch is not installed, as in CI)


@pytest.fixture(scope="module")
def tp():
    pytest.importorskip("torch")
    from serveplan.profiles import torch_profiler

    return torch_profiler


def test_time_fn_returns_positive_samples(tp):
    calls = []
    samples = tp.time_fn(lambda: calls.append(1), "cpu", tp.TimingSettings(warmup=2, repeats=5))
    assert len(samples) == 5 and len(calls) == 7
    assert all(s > 0 for s in samples)
    assert tp.median_s(samples) > 0


def test_timed_warmup_runs_the_agreed_number_of_calls(tp):
    calls, asked = [], []

    def agree(n):
        asked.append(n)
        return n + 3  # another rank needed more calls

    samples = tp.time_fn(lambda: calls.append(1), "cpu", tp.TimingSettings(1, 2, warmup_s=1e-4), agree)
    assert len(samples) == 2 and len(asked) == 1 and asked[0] >= 1
    # 1 counted warm-up + 1 call timed to size the warm-up + the agreed warm-up calls + 2 repeats
    assert len(calls) == 1 + 1 + asked[0] + 3 + 2


def test_measure_layers_on_tiny_models(tp):
    settings = tp.TimingSettings(warmup=1, repeats=3)
    for name in ("tiny-bert", "tiny-moe"):
        shape = get_shape(name)
        meas = tp.measure_layers(shape, [1, 2], "cpu", settings)
        assert {(m.kind, m.batch_size) for m in meas} == {(k, b) for k in shape.distinct_kinds() for b in (1, 2)}
        assert all(m.latency_s > 0 and m.weight_bytes > 0 and m.act_bytes > 0 for m in meas)
        dense = next(m for m in meas if m.kind == "dense")
        h, f = shape.hidden, shape.ffn
        # qkv + out + fc1 + fc2 weights and biases, two LayerNorms, two post-reduce biases (fp32 on the CPU).
        expected = (3 * h * h + 3 * h) + h * h + (h * f + f) + f * h + 4 * h + 2 * h
        assert dense.weight_bytes == 4 * expected
        rows = build_profile_rows(meas, [1, 2, 4])
        assert len(rows) == 2 * (1 + 2 + 4)
        one = {r.batch_size: r.latency_s for r in rows if r.pp == 1}
        by = {(m.kind, m.batch_size): m.latency_s for m in meas}
        for bs, lat in one.items():
            assert lat == pytest.approx(sum(by[(k, bs)] for k in shape.layer_kinds()))


def test_measure_blocks_on_tiny_llama(tp):
    shape = get_shape("tiny-llama")
    rows = tp.measure_blocks(shape, [1, 2], [8, 16], "cpu", tp.TimingSettings(1, 2))
    assert len(rows) == 2 * 2 * 2
    assert all(r.latency_s > 0 for r in rows)
    assert {r.kv_cache_bytes for r in rows if r.batch_size == 2 and r.seq_len == 16} == {kv_cache_bytes(shape, 2, 16)}


def test_decode_matches_the_last_prefill_token(tp):
    """A decode step over a cache filled by prefill gives the causal prefill's output for that token."""
    import torch

    shape = get_shape("tiny-llama")
    torch.manual_seed(0)
    block = tp.build_layer(shape, "dense", None, "cpu", torch.float64)
    x = torch.randn(2, 9, shape.hidden, dtype=torch.float64)
    cache = [torch.zeros(2, shape.kv_heads, 9, shape.head_dim, dtype=torch.float64) for _ in range(2)]
    with torch.no_grad():
        full = block(x, None)
        block(x[:, :8], [c[:, :, :8] for c in cache])  # prefill 8 tokens into the first 8 slots
        step = block(x[:, 8:], cache)  # decode token 9 into the last slot
    torch.testing.assert_close(step[:, 0], full[:, 8])


class _ThreadAllReduce:
    """An all-reduce among threads (one per simulated rank): every rank gets the sum of all inputs."""

    def __init__(self, size: int):
        self.size = size
        self.barrier = threading.Barrier(size)
        self.parts: dict[int, object] = {}
        self.lock = threading.Lock()

    def for_rank(self, rank: int):
        def reduce(t):
            with self.lock:
                self.parts[rank] = t.clone()
            self.barrier.wait()
            total = sum(self.parts[r] for r in range(self.size))
            self.barrier.wait()
            t.copy_(total)
            return t

        return reduce


def _run_ranks(fn, size):
    out, errors = {}, []

    def target(r):
        try:
            out[r] = fn(r)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return out


@pytest.mark.parametrize(("model", "kind"), [("tiny-bert", "dense"), ("tiny-moe", "moe"), ("tiny-llama", "dense"),
                                             ("tiny-bert", "embed"), ("tiny-bert", "head")])  # fmt: skip
@pytest.mark.parametrize("size", [2, 4])
def test_tensor_parallel_split_matches_the_unsplit_layer(tp, model, kind, size):
    import torch

    shape = get_shape(model)
    if size > shape.max_tp():
        pytest.skip("shape does not divide")
    torch.manual_seed(3)
    full = tp.build_layer(shape, kind, None, "cpu", torch.float64)
    x = tp.layer_input(shape, kind, 2, shape.seq_len, "cpu", torch.float64, seed=5)
    with torch.no_grad():
        ref = full(x)
    ar = _ThreadAllReduce(size)

    def rank_fn(r):
        shard = tp.build_layer(shape, kind, tp.TensorParallel(size, r, reducer=ar.for_rank(r)), "cpu", torch.float64)
        tp.copy_shard(full, shard, r, size)
        assert tp.param_bytes(shard) < tp.param_bytes(full)
        with torch.no_grad():
            return shard(x)

    outs = _run_ranks(rank_fn, size)
    if kind == "head":  # vocabulary-parallel logits: the ranks' slices side by side are the full logits
        torch.testing.assert_close(torch.cat([outs[r] for r in range(size)], dim=-1), ref)
    else:
        for r in range(size):
            torch.testing.assert_close(outs[r], ref)


def test_cli_cpu_smoke_run_writes_tables(tp, tmp_path):
    from serveplan.commands.profile import main

    argv = "--device cpu --models tiny-bert,tiny-moe --blocks tiny-llama --e2e tiny-bert --batch-sizes 1,2"
    rc = main([*argv.split(), "--block-seq-lens", "8", "--pp", "1,2", "--quick", "--out", str(tmp_path)])
    assert rc == 0
    rows = read_profile_csv(tmp_path / "cpu.csv")
    assert {(r.model, r.pp) for r in rows} == {(m, p) for m in ("tiny-bert", "tiny-moe") for p in (1, 2)}
    assert len(read_blocks_csv(tmp_path / "cpu_blocks.csv")) == 2 * 2
    e2e = read_e2e_csv(tmp_path / "cpu_e2e.csv")
    assert {r.batch_size for r in e2e} == {1, 2} and all(r.latency_s > 0 and r.sum_of_stages_s > 0 for r in e2e)
    meta = json.loads((tmp_path / "cpu.meta.json").read_text())
    assert meta["source"] == "measured" and "tiny-bert" in meta["command"]
    # --merge keeps the earlier models when a later run measures others.
    rc = main(["--device", "cpu", "--models", "tiny-bert", "--blocks", "", "--e2e", "", "--batch-sizes", "4",
               "--pp", "1", "--quick", "--merge", "--out", str(tmp_path)])  # fmt: skip
    assert rc == 0
    merged = read_layers_csv(tmp_path / "cpu_layers.csv")
    assert {(m.model, m.batch_size) for m in merged} >= {("tiny-moe", 1), ("tiny-bert", 4)}


def test_cli_cpu_defaults_to_tiny_models(tp, tmp_path):
    """``--device cpu`` with no models named is a smoke run of the tiny shapes, not the 104B model on a CPU."""
    from serveplan.commands.profile import main

    argv = ["--device", "cpu", "--batch-sizes", "1", "--block-seq-lens", "8", "--pp", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert {m.model for m in read_layers_csv(tmp_path / "cpu_layers.csv")} == {"tiny-bert", "tiny-moe"}
    assert {b.model for b in read_blocks_csv(tmp_path / "cpu_blocks.csv")} == {"tiny-llama"}
    assert {r.model for r in read_e2e_csv(tmp_path / "cpu_e2e.csv")} == {"tiny-bert", "tiny-moe"}
    stacks = read_block_stack_csv(tmp_path / "cpu_block_stack.csv")
    layers = get_shape("tiny-llama").layers
    assert {(r.model, r.phase, r.n_blocks, r.batch_size, r.seq_len) for r in stacks} == {
        ("tiny-llama", ph, layers, 1, 8) for ph in ("prefill", "decode")
    }
    assert all(r.latency_s > 0 and r.sum_of_blocks_s > 0 for r in stacks)


def test_block_stack_rows_and_checks(tp):
    shape = get_shape("tiny-llama")
    blocks = [
        BlockRow("tiny-llama", "decode", 1, 8, 0.002, 10, 20),
        BlockRow("other", "decode", 1, 8, 9.0, 10, 20),
    ]
    rows = tp.stack_rows(shape, 2, {("decode", 1, 8): 0.005, ("prefill", 1, 8): 0.007}, blocks)
    by_phase = {r.phase: r for r in rows}
    assert by_phase["decode"].sum_of_blocks_s == pytest.approx(0.004)  # 2 x the tiny-llama block, not "other"
    assert math.isnan(by_phase["prefill"].sum_of_blocks_s)  # that block was not measured
    with pytest.raises(InputError, match="n_blocks"):
        tp.measure_block_stack(shape, shape.layers + 1, [1], [8], "cpu", tp.TimingSettings(1, 1))


def test_block_stack_csv_round_trip(tmp_path):
    rows = [
        BlockStackRow("llama-2-7b", "prefill", 32, 1, 4, 1024, 0.1, 0.098, 0.0),
        BlockStackRow("llama-2-70b", "decode", 80, 4, 1, 512, 0.05, 0.049, 0.0003),
    ]
    path = write_block_stack_csv(tmp_path / "x_block_stack.csv", rows)
    assert sorted(read_block_stack_csv(path), key=lambda r: r.phase) == sorted(rows, key=lambda r: r.phase)


def test_distributed_run_with_gloo(tp):
    """Two CPU processes through torch.distributed (gloo): TP layers, p2p, pipeline and TP end to end."""
    req = tp.ProfileRequest(
        models=["tiny-bert"], blocks=[], batch_sizes=[1], block_seq_lens=[8], tp_degrees=[1, 2],
        e2e_models=["tiny-bert"], device="cpu", timing=tp.TimingSettings(1, 2, warmup_s=0.02),
    )  # fmt: skip
    req.blocks, req.chain_pipelines = ["tiny-llama"], ["tiny-llama"]
    res = tp.run_distributed(req, 2)
    assert {(m.op, m.kind) for m in res.layers} == {(o, k) for o in (1, 2) for k in ("embed", "dense", "head")}
    # The chain pipeline: tiny-llama's 2 blocks on 2 ranks, prefill and decode, next to 2 x block + 1 hop.
    chain = {(r.phase, r.gpus, r.n_blocks) for r in res.stacks}
    assert chain == {("prefill", 2, 2), ("decode", 2, 2)}
    assert all(r.latency_s > 0 and r.sum_of_blocks_s > 0 and r.transfer_s > 0 for r in res.stacks)
    assert activation_bytes(1, 16, 64) in res.p2p and res.p2p[activation_bytes(1, 16, 64)] > 0
    assert {(r.pp, r.op) for r in res.e2e} == {(1, 1), (2, 1), (1, 2)}
    assert not res.skipped


@pytest.mark.gpu
def test_gpu_layer_measurement(tp):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    meas = tp.measure_layers(get_shape("tiny-bert"), [1, 4], "cuda", tp.TimingSettings(2, 5))
    assert all(m.latency_s > 0 and m.act_bytes > 0 for m in meas)
    graphs = tp.TimingSettings(2, 5, cuda_graph=True)
    stack = tp.measure_block_stack(get_shape("tiny-llama"), 2, [1, 2], [8], "cuda", graphs)
    assert set(stack) == {(ph, b, 8) for ph in ("prefill", "decode") for b in (1, 2)} and min(stack.values()) > 0
    assert len(tp.measure_blocks(get_shape("tiny-llama"), [1], [8], "cuda", graphs)) == 2
    dense = {m.batch_size: m for m in meas if m.kind == "dense"}
    assert dense[4].act_bytes > dense[1].act_bytes


@pytest.mark.gpu
def test_gpu_graph_capture_reproduces_the_eager_call(tp):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    shape = get_shape("tiny-moe")
    layer = tp.build_layer(shape, "moe", None, "cuda", torch.float16)
    x = tp.layer_input(shape, "moe", 2, shape.seq_len, "cuda", torch.float16)
    with torch.inference_mode():
        captured = tp._capture(lambda: layer(x), check=True)
        assert captured is not None
        graph, out = captured
        graph.replay()
        torch.cuda.synchronize()
        torch.testing.assert_close(out, layer(x), rtol=1e-2, atol=1e-2)


@pytest.mark.gpu
def test_gpu_tensor_parallel_run_times_captured_nccl_graphs(tp):
    """Two GPUs through NCCL: split layers and pipelines are timed as validated graph replays, no fallback."""
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    req = tp.ProfileRequest(
        models=["tiny-bert", "tiny-moe"], blocks=["tiny-llama"], batch_sizes=[1, 4], block_seq_lens=[8],
        tp_degrees=[1, 2], e2e_models=["tiny-bert"], chain_pipelines=["tiny-llama"], device="cuda",
        timing=tp.TimingSettings(2, 5, warmup_s=0.05, cuda_graph=True),
    )  # fmt: skip
    res = tp.run_distributed(req, 2)
    assert res.eager == []
    assert {(r.phase, r.gpus, r.batch_size) for r in res.stacks} == {(ph, 2, b) for ph in ("prefill", "decode")
                                                                      for b in (1, 4)}  # fmt: skip
    assert all(0 < r.transfer_s < r.latency_s for r in res.stacks)
    assert {(m.model, m.op) for m in res.layers} == {(n, o) for n in ("tiny-bert", "tiny-moe") for o in (1, 2)}
    assert {(r.pp, r.op) for r in res.e2e} == {(1, 1), (2, 1), (1, 2)}
    assert all(r.latency_s > 0 for r in res.e2e) and res.p2p


def test_docs_mention_every_shipped_table():
    doc = Path(__file__).resolve().parents[1] / "docs" / "profiles.md"
    if not doc.exists():
        pytest.skip("docs/profiles.md not written")
    text = doc.read_text()
    for slug in ("h100-80gb", "h200-141gb"):
        assert slug in text


def test_layer_flops_match_the_textbook_count():
    from serveplan.profiles.report import layer_flops

    s = get_shape("bert-1.3b")
    t, h = 4 * s.seq_len, s.hidden
    # BERT layer: 24 T h^2 (QKV, output, 4h MLP) + 4 T s h (scores and weighted sum, not causal).
    assert layer_flops(s, "dense", 4) == pytest.approx(24 * t * h * h + 4 * t * s.seq_len * h)
    assert layer_flops(s, "head", 4) == pytest.approx(2 * t * h * s.vocab)
    m = get_shape("moe-1.3b")
    tm = m.seq_len
    # Top-2: an MoE layer does the attention of a dense layer plus two experts' FFNs and the gate.
    dense = layer_flops(m, "dense", 1)
    mlp = 2 * 2 * tm * m.hidden * m.ffn
    assert layer_flops(m, "moe", 1) == pytest.approx(dense + mlp + 2 * tm * m.hidden * m.experts)


def test_report_tables_cover_the_shipped_profiles(tmp_path):
    from serveplan.profiles import report

    h100 = report.load_tables("h100-80gb")
    h200 = report.load_tables("h200-141gb")
    text = report.markdown(h100, h200)
    for model in ALPASERVE_SHAPES:
        assert f"| {model} | " in text
    for block in BLOCK_SHAPES:
        assert f"| {block} | " in text
    # Every measured single-GPU BERT forward is slower than its roofline and within 2x of it.
    for model, shape in ALPASERVE_SHAPES.items():
        if shape.family == "bert":
            for bs in (1, 16):
                ratio = report.total_latency(h100, model, 1, 1, bs) / report.roofline_s(
                    shape, h100.layers, bs, report.CEILINGS["h100-80gb"]
                )
                assert 1.0 < ratio < 2.0, (model, bs, ratio)
