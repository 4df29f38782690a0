import itertools
import json

import numpy as np
import pytest

from serveplan.alpaserve import (
    AlpaInstance,
    Cluster,
    Group,
    LatencyModel,
    ModelSpec,
    ParallelConfig,
    Placement,
    TimeVaryingPlacement,
    get_model,
    latency_model_for,
    load_models,
    load_placement,
    load_profile_table,
    save_placement,
    verify,
)
from serveplan.alpaserve.cli import resolve_workload
from serveplan.alpaserve.experiments import evaluate_placement, resolve_models
from serveplan.alpaserve.latency import _minmax_partition
from serveplan.cli import main
from serveplan.errors import InputError
from serveplan.paths import REPO_ROOT
from serveplan.registry import MethodResult, get_evaluator, get_family
from serveplan.workloads import gamma_workload

LM = latency_model_for("v100-16gb", profile=None)
EXAMPLES = REPO_ROOT / "examples"


def test_catalogue_matches_paper_table():
    cat = load_models()
    assert {"bert-1.3b", "bert-2.6b", "bert-6.7b", "bert-104b", "moe-1.3b", "moe-2.4b", "moe-5.3b"} <= set(cat)
    dense = sum(cat[n].weight_gb for n in ("bert-1.3b", "bert-2.6b", "bert-6.7b"))
    assert dense == pytest.approx(21.2)  # digest 5: {6.7b, 2.6b, 1.3b} = 21.2 GB
    mixed = dense + sum(cat[n].weight_gb for n in ("moe-1.3b", "moe-2.4b", "moe-5.3b"))
    assert mixed == pytest.approx(39.2)
    for name, lat in (("bert-1.3b", 0.151), ("bert-2.6b", 0.238), ("bert-6.7b", 0.395), ("bert-104b", 4.6)):
        assert LM.single_gpu_latency_s(cat[name]) == pytest.approx(lat, rel=1e-6)
        assert LM.source(cat[name], ParallelConfig(1, 1)) == "modelled"


@pytest.mark.parametrize("name", ["bert-1.3b", "bert-6.7b", "moe-2.4b"])
def test_analytic_model_shape(name):
    m = get_model(name)
    base = LM.single_gpu_latency_s(m)
    for pp in (1, 2, 4, 8):
        for op in (1, 2, 4):
            c = ParallelConfig(pp, op)
            lat = LM.stage_latencies_s(m, c)
            w = LM.stage_weight_bytes(m, c)
            assert lat.shape == (pp,) and w.shape == (pp,)
            # weights split over stages and op shards add up to the model
            assert w.sum() * op == pytest.approx(m.weight_bytes)
            # parallelism never beats perfect scaling and pipelining adds (a little) latency
            assert lat.max() >= base / (pp * op) * 0.999
            assert lat.sum() >= LM.latency_s(m, ParallelConfig(1, op)) * 0.999
    # intra-op lowers single-request latency; pipelining lowers the max stage but not the sum
    assert LM.latency_s(m, ParallelConfig(1, 4)) < LM.latency_s(m, ParallelConfig(1, 2)) < base
    assert LM.stage_latencies_s(m, ParallelConfig(4, 1)).max() < base / 3
    # batching: more work per call, less per request
    b4 = LM.latency_s(m, ParallelConfig(1, 1), 4)
    assert base < b4 < 4 * base


def test_minmax_partition_is_optimal_on_small_cases():
    rng = np.random.default_rng(0)
    from itertools import combinations

    for _ in range(30):
        n, k = int(rng.integers(2, 8)), int(rng.integers(1, 4))
        if k > n:
            continue
        costs = rng.uniform(0, 1, size=n)
        cuts = _minmax_partition(costs, k)
        got = max(costs[a:b].sum() for a, b in itertools.pairwise(cuts))
        best = min(
            max(costs[a:b].sum() for a, b in zip((0, *c), (*c, n), strict=True))
            for c in combinations(range(1, n), k - 1)
        )
        assert got == pytest.approx(best) and len(cuts) == k + 1 and cuts[0] == 0 and cuts[-1] == n


def write_profile(path, rows, header="model,pp,op,batch_size,seq_len,stage,latency_s,weight_bytes,act_bytes"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_profile_table_loader_and_measured_source(tmp_path):
    p = write_profile(
        tmp_path / "v100-16gb.csv",
        [
            "bert-1.3b,1,1,1,2048,0,0.099,2.6e9,1e8",
            "bert-1.3b,2,1,1,2048,1,0.052,1.3e9,5e7",
            "bert-1.3b,2,1,1,2048,0,0.051,1.3e9,5e7",
            "bert-1.3b,2,1,1,1024,0,0.03,1.3e9,5e7",
            "bert-1.3b,2,1,1,1024,1,0.03,1.3e9,5e7",
        ],
    )
    (tmp_path / "v100-16gb.meta.json").write_text(json.dumps({"gpu": "v100-16gb", "source": "measured"}))
    table = load_profile_table(p)
    assert len(table) == 3 and table.meta["source"] == "measured" and table.models() == ["bert-1.3b"]
    lm = LatencyModel("v100-16gb", table=table)
    m = get_model("bert-1.3b")
    np.testing.assert_allclose(lm.stage_latencies_s(m, ParallelConfig(2, 1)), [0.051, 0.052])
    np.testing.assert_allclose(lm.stage_weight_bytes(m, ParallelConfig(2, 1)), [1.3e9, 1.3e9])
    assert lm.source(m, ParallelConfig(2, 1)) == "measured"
    assert lm.single_gpu_latency_s(m) == pytest.approx(0.099)
    # keys absent from the table (other op, other batch size) fall back to the analytic model
    assert lm.source(m, ParallelConfig(1, 2)) == "modelled"
    assert lm.source(m, ParallelConfig(2, 1), 2) == "modelled"
    # instance files can point at a table
    lm2 = LatencyModel.from_dict({"gpu": "v100-16gb", "profile": str(p)})
    assert lm2.source(m, ParallelConfig(1, 1)) == "measured" and lm2.to_dict()["profile"] == str(p)


@pytest.mark.parametrize(
    ("rows", "header", "match"),
    [
        (
            ["bert-1.3b,1,1,1,2048,0,0.1,1e9"],
            "model,pp,op,batch_size,seq_len,stage,latency_s,weight_bytes",
            "act_bytes",
        ),
        (["bert-1.3b,1,1,1,2048,0,fast,1e9,0"], None, "latency_s"),
        (["bert-1.3b,2,1,1,2048,0,0.1,1e9,0"], None, "lacks stages"),
        (["bert-1.3b,1,1,1,2048,0,0.1,1e9,0", "bert-1.3b,1,1,1,2048,0,0.1,1e9,0"], None, "twice"),
        (["bert-1.3b,1,1,1,2048,3,0.1,1e9,0"], None, "stage outside"),
        (["bert-1.3b,1,1,1,2048,0,-0.1,1e9,0"], None, "finite and >= 0"),
        (["bert-1.3b,0,1,1,2048,0,0.1,1e9,0"], None, "pp"),
    ],
)
def test_profile_table_errors(tmp_path, rows, header, match):
    kw = {"header": header} if header else {}
    p = write_profile(tmp_path / "x.csv", rows, **kw)
    with pytest.raises(InputError, match=match) as exc:
        load_profile_table(p)
    assert "x.csv" in str(exc.value)


def test_model_spec_validation(tmp_path):
    with pytest.raises(InputError, match="hidden_size"):
        ModelSpec("m", 4, 0, 128, 1e9)
    with pytest.raises(InputError, match="kind"):
        ModelSpec("m", 4, 64, 128, 1e9, kind="sparse")
    with pytest.raises(InputError, match="num_experts"):
        ModelSpec("m", 4, 64, 128, 1e9, kind="moe")
    with pytest.raises(InputError, match="unknown model"):
        get_model("gpt-5")
    (tmp_path / "m.toml").write_text(
        'name = "m"\nnum_layers = 2\nhidden_size = 64\nseq_len = 16\nweight_bytes = 1e6\ncolour = 1\n'
    )
    with pytest.raises(InputError, match="colour"):
        load_models(tmp_path)
    (tmp_path / "m.toml").write_text('name = "m"\nnum_layers = 2\nhidden_size = 64\nseq_len = 16\nweight_bytes = 1e6\n')
    assert load_models(tmp_path)["m"].num_layers == 2


def test_cluster_configs_and_placement_json(tmp_path):
    c = Cluster(64)
    configs = c.parallel_configs()
    assert ParallelConfig(8, 4) in configs and ParallelConfig(16, 1) not in configs
    assert len({x.size for x in configs}) == 6  # 1, 2, 4, 8, 16, 32
    assert not Cluster(12).config_ok(ParallelConfig(3, 4))  # 12 spans nodes but is not a multiple of 8
    with pytest.raises(InputError, match="pp"):
        ParallelConfig(0, 1)
    with pytest.raises(InputError, match="twice"):
        Group(ParallelConfig(1, 1), (1, 1))
    p = Placement((Group(ParallelConfig(2, 2), (0, 1)), Group(ParallelConfig(1, 1), (1,))))
    assert p.num_gpus == 5 and p.num_replicas == 3 and p.replicas_of(1) == [0, 1]
    back = load_placement(save_placement(p, tmp_path / "p.json"))
    assert back == p
    tv = TimeVaryingPlacement((0.0, 60.0), (p, p))
    assert load_placement(save_placement(tv, tmp_path / "tv.json")) == tv
    (tmp_path / "bad.json").write_text('{"groups": [{"pp": 2, "op": "x", "models": [0]}]}')
    with pytest.raises(InputError, match=r"groups\[0\]"):
        load_placement(tmp_path / "bad.json")
    with pytest.raises(InputError, match="increase"):
        TimeVaryingPlacement((0.0, 0.0), (p, p))


def small_instance(num_gpus=8, models=("bert-1.3b", "bert-2.6b", "bert-6.7b"), budget=13.0):
    ms = tuple(get_model(m) for m in models)
    w = gamma_workload([1.0] * len(ms), 1.0, 30.0, seed=0)
    slo = tuple(5 * LM.single_gpu_latency_s(m) for m in ms)
    return AlpaInstance(Cluster(num_gpus, memory_budget_gb=budget), ms, slo, LM, w, w, "small")


def test_verify_checks_each_rule():
    inst = small_instance()
    ok = Placement((Group(ParallelConfig(1, 1), (0, 1)), Group(ParallelConfig(1, 1), (2,))))
    assert verify(inst, ok).ok
    # 2.4 + 5.4 + 13.4 GB on one GPU exceed 13 GiB
    over = Placement((Group(ParallelConfig(1, 1), (0, 1, 2)),))
    rep = verify(inst, over)
    assert not rep.ok and "budget" in rep.violations[0]
    # the same models fit when split over a pipeline of 4 stages (max stage per GPU)
    assert verify(inst, Placement((Group(ParallelConfig(4, 1), (0, 1, 2)),))).ok
    too_many = Placement(tuple(Group(ParallelConfig(4, 1), (0,)) for _ in range(3)))
    assert any("cluster has 8" in v for v in verify(inst, too_many).violations)
    bad_index = Placement((Group(ParallelConfig(1, 1), (7,)),))
    assert any("outside" in v for v in verify(inst, bad_index).violations)
    bad_size = Placement((Group(ParallelConfig(3, 4), (0,)),))
    assert any("multiple of 8" in v for v in verify(small_instance(num_gpus=16), bad_size).violations)
    tv = TimeVaryingPlacement((0.0, 10.0), (ok, over))
    rep = verify(inst, tv)
    assert not rep.ok and rep.violations[0].startswith("placements[1]")


def test_model_that_fits_nowhere_scores_zero():
    inst = small_instance(models=("bert-1.3b", "bert-104b"), num_gpus=8)
    assert inst.fits_anywhere(0) and not inst.fits_anywhere(1)
    assert inst.fastest_latency_s(1) == float("inf")
    forced = Placement((Group(ParallelConfig(8, 1), (0, 1)),))
    assert not verify(inst, forced).ok  # 208 GB / 8 stages > 13 GiB
    metrics = evaluate_placement(inst, Placement((Group(ParallelConfig(1, 1), (0,)),)))
    assert metrics["model_attainment_min"] == 0.0 and 0 < metrics["attainment"] < 1


def test_instance_json_roundtrip_keeps_workloads(tmp_path):
    inst = get_family("alpaserve", "synthetic").fn({"models": ["bert-1.3b*3", "moe-1.3b"], "num_gpus": 4}, 3)
    assert inst.num_models == 4 and inst.train is not inst.test
    assert not np.array_equal(inst.train.arrival_s[:10], inst.test.arrival_s[:10])
    back = AlpaInstance.load(inst.save(tmp_path / "i.json"))
    np.testing.assert_array_equal(back.test.arrival_s, inst.test.arrival_s)
    np.testing.assert_array_equal(back.train.model_id, inst.train.model_id)
    assert back.slo_s == inst.slo_s and back.models == inst.models and back.cluster == inst.cluster
    # inline arrays and files work too
    d = inst.to_dict()
    d["test"] = {"arrival_s": [0.5, 1.0], "model_id": [0, 3], "duration_s": 2.0}
    inst.test.save(tmp_path / "train.npz")
    d["train"] = {"file": "train.npz"}
    (tmp_path / "j.json").write_text(json.dumps(d))
    j = AlpaInstance.load(tmp_path / "j.json")
    assert j.test.num_requests == 2 and j.train.num_requests == inst.test.num_requests
    oracle = get_family("alpaserve", "synthetic").fn({"oracle": True}, 3)
    assert oracle.train is oracle.test and "oracle" in oracle.name


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"cluster": {"num_gpus": 0}}, "num_gpus"),
        ({"models": ["bert-9b"]}, r"models\[0\]"),
        ({"slo_s": [1.0]}, "slo_s"),
        ({"slo_s": [1.0, -1.0]}, r"slo_s\[1\]"),
        ({"train": {"spec": "gamma:rate=x"}}, "rate"),
        ({"train": {"arrival_s": [1.0, 0.5], "model_id": [0, 0]}}, "not sorted"),
        ({"cluster": {"num_gpus": 4, "memory": 3}}, "memory"),
    ],
)
def test_instance_bad_input(tmp_path, patch, match):
    d = {
        "cluster": {"num_gpus": 4},
        "models": ["bert-1.3b", "bert-2.6b"],
        "slo_scale": 5,
        "train": {"spec": "gamma:rate=5,duration=10"},
    }
    d.update(patch)
    (tmp_path / "i.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match=match) as exc:
        AlpaInstance.load(tmp_path / "i.json")
    assert "i.json" in str(exc.value)


def test_families_and_evaluator():
    for fam, params in (
        ("synthetic", {"models": "s3_small", "num_gpus": 16, "duration": 30}),
        ("maf_like", {"duration": 120}),
        ("azure_llm", {"time_scale": 4.0}),
        ("servegen", {"duration": 600}),
    ):
        inst = get_family("alpaserve", fam).fn(params, 0)
        assert inst.test.num_requests > 0 and inst.train.num_requests > 0, fam
    assert len(resolve_models("s3")) == 72 and len(resolve_models("bert104")) == 4
    inst = get_family("alpaserve", "synthetic").fn({"num_gpus": 8, "duration": 50}, 0)
    placement = Placement((Group(ParallelConfig(8, 1), tuple(range(8))),))
    ev = get_evaluator("alpaserve", "simulate").fn
    res = MethodResult("x", "feasible", placement, None)
    m = ev(inst, res, {"max_batch_size": 2}, 0)
    assert 0 < m["attainment"] <= 1 and m["verified"] == 1.0 and m["num_gpus_used"] == 8
    assert ev(inst, MethodResult("x", "infeasible", None, None), {}, 0)["attainment"] == 0.0


def test_cli_simulate_example(capsys, tmp_path):
    args = ["simulate", "alpaserve", "--instance", str(EXAMPLES / "alpaserve_small_instance.json")]
    args += ["--placement", str(EXAMPLES / "alpaserve_small_placement.json")]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verified"] and 0.5 < out["attainment"] <= 1 and out["latency_source"] == ["modelled"]
    spec = ["--workload", "gamma:rate=5,cv=1,duration=50,seed=2"]
    assert main([*args, *spec, "--requests-out", str(tmp_path / "r.npz")]) == 0
    assert "attainment" in capsys.readouterr().out
    with np.load(tmp_path / "r.npz") as z:
        assert z["good"].size == z["finish_s"].size > 0 and np.array_equal(z["good"], np.isfinite(z["finish_s"]))
    inst = AlpaInstance.load(EXAMPLES / "alpaserve_small_instance.json")
    inst.test.save(tmp_path / "w.csv")
    assert resolve_workload(str(tmp_path / "w.csv"), inst).num_requests == inst.test.num_requests
    assert main([*args, "--workload", "gamma:rate=oops"]) == 2
    assert "rate" in capsys.readouterr().err
    (tmp_path / "p.json").write_text(json.dumps({"groups": [{"pp": 1, "op": 1, "models": [0, 1, 2, 3, 4, 5]}]}))
    over = ["simulate", "alpaserve", "--instance", str(EXAMPLES / "alpaserve_small_instance.json")]
    assert main([*over, "--placement", str(tmp_path / "p.json")]) == 1  # over the memory budget
    assert "violation" in capsys.readouterr().out


def test_cli_solve_scores_a_registered_method(capsys, tmp_path):
    from serveplan.registry import list_methods

    names = {m.name for m in list_methods("alpaserve")}
    if "sr" not in names:
        pytest.skip("no 'sr' method registered in this checkout")
    args = ["solve", "alpaserve", "--instance", str(EXAMPLES / "alpaserve_small_instance.json"), "--method", "sr"]
    assert main([*args, "--json", "--save", str(tmp_path / "p.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verified"] and 0 < out["attainment"] <= 1
    saved = load_placement(tmp_path / "p.json")
    assert all(g.config == ParallelConfig(1, 1) for g in saved.groups)


def test_diagnose_names_models_that_cannot_score():
    inst = small_instance(models=("bert-1.3b", "bert-104b", "bert-2.6b"), num_gpus=8)
    inst = AlpaInstance(inst.cluster, inst.models, (inst.slo_s[0], 10.0, 0.02), LM, inst.train, inst.test)
    notes = inst.diagnose()
    assert len(notes) == 2
    assert notes[0].startswith("model 1 (bert-104b): fits no") and "model 2 (bert-2.6b): SLO 0.02" in notes[1]
    # 2.6B on 4 GPUs (pp1 x op4): 77 ms; an SLO of 80 ms is met without overheads, not with 11 ms
    tight = AlpaInstance(Cluster(4), inst.models[2:], (0.08,), LM, *(gamma_workload([1.0], 1.0, 5.0, 0),) * 2)
    assert tight.diagnose(fixed_overhead_s=0.0, stage_penalty=0.0) == []
    assert len(tight.diagnose()) == 1


def test_cli_time_varying_example(capsys):
    args = ["simulate", "alpaserve", "--instance", str(EXAMPLES / "alpaserve_small_instance.json")]
    args += ["--placement", str(EXAMPLES / "alpaserve_time_varying_placement.json"), "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["group_requests"]) == 9 and sum(out["group_requests"]) == out["num_requests"]


def test_calibration_anchors_on_measured_single_gpu_row(tmp_path):
    m = get_model("bert-1.3b")
    p = write_profile(tmp_path / "t.csv", ["bert-1.3b,1,1,1,2048,0,0.0990,2.64e9,0"])
    anchored = LatencyModel("v100-16gb", table=load_profile_table(p))
    assert anchored.single_gpu_latency_s(m) == pytest.approx(0.099)
    # the modelled intra-op configs scale from the measured point, not from the 151 ms reference
    for op in (2, 4):
        c = ParallelConfig(1, op)
        ratio_anchored = anchored.latency_s(m, c) / 0.099
        ratio_reference = LM.latency_s(m, c) / LM.single_gpu_latency_s(m)
        assert anchored.source(m, c) == "modelled"
        assert ratio_anchored == pytest.approx(ratio_reference, rel=0.1)
    assert anchored.stage_weight_bytes(m, ParallelConfig(1, 2)).sum() * 2 == pytest.approx(2.64e9)
    # without measurements on another GPU, the V100 reference's efficiency carries over
    h100 = latency_model_for("h100-80gb", profile=None)
    assert h100.single_gpu_latency_s(m) == pytest.approx(0.151 * 125 / 989, rel=0.02)


def test_instance_profile_path_is_relative_to_the_instance_file(tmp_path):
    write_profile(tmp_path / "t.csv", ["bert-1.3b,1,1,1,2048,0,0.0990,2.64e9,0"])
    d = {
        "cluster": {"num_gpus": 2},
        "models": ["bert-1.3b"],
        "slo_scale": 5,
        "latency_model": {"gpu": "v100-16gb", "profile": "t.csv"},
        "train": {"spec": "gamma:rate=2,duration=10"},
    }
    (tmp_path / "i.json").write_text(json.dumps(d))
    inst = AlpaInstance.load(tmp_path / "i.json")
    assert inst.latency.source(inst.models[0], ParallelConfig(1, 1)) == "measured"
    assert inst.slo_s[0] == pytest.approx(5 * 0.099)


def test_trace_families(tmp_path):
    c = np.zeros(1440, dtype=int)
    c[:120] = 3000  # 50 req/s for two hours
    header = "HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(i) for i in range(1, 1441))
    rows = [f"o,a,{name},http," + ",".join(map(str, counts)) for name, counts in (("f1", c), ("f2", c // 2))]
    (tmp_path / "invocations_per_function_md.anon.d01.csv").write_text("\n".join([header, *rows]) + "\n")
    fam = get_family("alpaserve", "maf1").fn
    inst = fam({"trace": str(tmp_path), "models": ["bert-1.3b*2"], "rate_scale": 0.1, "train_start_min": 60}, 0)
    assert inst.test.num_requests == pytest.approx(0.1 * 3600 * 75, rel=0.1)
    assert inst.train is not inst.test and inst.train.duration_s == 3600.0
    with pytest.raises(InputError, match="trace"):
        fam({}, 0)
    m2 = get_family("alpaserve", "maf2").fn({"models": ["bert-1.3b*3"], "vanilla": True}, 0)
    assert m2.test.num_requests == 199 and m2.train is m2.test and "oracle" in m2.name
    assert get_family("alpaserve", "maf2").fn({"models": ["bert-1.3b*3"], "interval": 300}, 0).test.num_requests > 0
