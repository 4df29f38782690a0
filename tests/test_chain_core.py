"""Chain instance, placement, chains, verify, JSON I/O and builders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from serveplan.chain.builders import (
    comm_time_s,
    load_gpu_type,
    load_model_spec,
    load_ripe_atlas,
    per_block_compute_time_s,
    ripe_instance,
    synthetic_instance,
)
from serveplan.chain.instance import ChainInstance, Server
from serveplan.chain.placement import (
    SINK,
    SOURCE,
    Chain,
    ChainSolution,
    Placement,
    chain_through,
    chains_of_placement,
    residual_slots,
    routing_edges,
    service_time_s,
    slot_usage,
)
from serveplan.chain.verify import verify
from serveplan.errors import InputError
from serveplan.registry import get_evaluator, get_family

REPO = Path(__file__).resolve().parents[1]
EPS = 0.01


def paper_example(arrival_rate: float = 0.45) -> ChainInstance:
    """The paper's GCA motivating example: J=5, L=3, s_m=1, s_c=0.1."""
    servers = tuple(Server(f"j{l}", 3.0 if l == 2 else 2.0, 2.0 if l == 2 else 1.0, l * EPS) for l in range(1, 6))
    return ChainInstance(servers, 3, 1.0, 0.1, arrival_rate)


EXAMPLE_PLACEMENT = Placement((1, 2, 1, 2, 3), (1, 2, 1, 1, 1))


# -- instance -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("memory_gb", 0.0, "memory_gb"),
        ("memory_gb", -1.0, "memory_gb"),
        ("compute_time_s", 0.0, "compute_time_s"),
        ("comm_time_s", -0.1, "comm_time_s"),
        ("memory_gb", float("nan"), "memory_gb"),
        ("memory_gb", "big", "memory_gb"),
    ],
)
def test_server_rejects_bad_numbers(field, value, needle):
    kwargs = {"name": "a", "memory_gb": 1.0, "comm_time_s": 1.0, "compute_time_s": 1.0, field: value}
    with pytest.raises(InputError, match=needle):
        Server(**kwargs)


def test_server_accepts_zero_comm_time():
    assert Server("a", 1.0, 0.0, 0.1).comm_time_s == 0.0


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"num_blocks": 0}, "num_blocks"),
        ({"num_blocks": 2.5}, "num_blocks"),
        ({"block_memory_gb": 0.0}, "block_memory_gb"),
        ({"cache_memory_gb": -1.0}, "cache_memory_gb"),
        ({"arrival_rate": 0.0}, "arrival_rate"),
        ({"target_load": 1.0}, "target_load"),
        ({"target_load": 0.0}, "target_load"),
        ({"servers": ()}, "servers"),
    ],
)
def test_instance_rejects_bad_fields(kwargs, needle):
    base = {
        "servers": (Server("a", 2.0, 1.0, 0.1),),
        "num_blocks": 2,
        "block_memory_gb": 1.0,
        "cache_memory_gb": 0.1,
        "arrival_rate": 0.1,
    }
    base.update(kwargs)
    with pytest.raises(InputError, match=needle):
        ChainInstance(**base)


def test_instance_rejects_duplicate_names():
    s = Server("a", 2.0, 1.0, 0.1)
    with pytest.raises(InputError, match="unique"):
        ChainInstance((s, s), 2, 1.0, 0.1, 0.1)


def test_instance_arrays_and_rate():
    inst = paper_example()
    assert inst.num_servers == 5
    np.testing.assert_allclose(inst.memory_gb, [2, 3, 2, 2, 2])
    np.testing.assert_allclose(inst.comm_time_s, [1, 2, 1, 1, 1])
    np.testing.assert_allclose(inst.compute_time_s, np.arange(1, 6) * EPS)
    assert inst.required_rate == pytest.approx(0.45 / 0.7)


def test_json_round_trip(tmp_path):
    inst = paper_example()
    path = tmp_path / "i.json"
    inst.save_json(path)
    assert ChainInstance.load_json(path) == inst
    assert ChainInstance.from_dict(json.loads(path.read_text())) == inst


def test_load_json_errors_name_file_field_and_value(tmp_path):
    data = paper_example().to_dict()
    data["servers"][3]["memory_gb"] = -2
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as err:
        ChainInstance.load_json(path)
    text = str(err.value)
    assert "bad.json" in text and "servers[3].memory_gb" in text and "-2" in text


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.pop("num_blocks"), "num_blocks"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d["servers"][0].pop("compute_time_s"), "servers[0].compute_time_s"),
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d.update(servers={}), "servers"),
    ],
)
def test_from_dict_structural_errors(mutate, needle):
    data = paper_example().to_dict()
    mutate(data)
    with pytest.raises(InputError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        ChainInstance.from_dict(data, source="x.json")


def test_load_json_reports_bad_json_and_missing_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match=r"broken\.json.*invalid JSON"):
        ChainInstance.load_json(path)
    with pytest.raises(InputError, match="cannot read"):
        ChainInstance.load_json(tmp_path / "missing.json")


def test_instances_validate_against_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "docs/schemas/chain_instance.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for data in (
        json.loads((REPO / "examples/chain_small.json").read_text()),
        paper_example().to_dict(),
        ripe_instance(num_servers=5, seed=2).to_dict(),
    ):
        jsonschema.validate(data, schema)
    bad = paper_example().to_dict()
    bad["servers"][0]["memory_gb"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_example_instance_loads():
    inst = ChainInstance.load_json(REPO / "examples/chain_small.json")
    assert inst.num_servers == 10 and inst.num_blocks == 70


# -- placement and chains -----------------------------------------------------------------------


def test_placement_and_chain_validation():
    with pytest.raises(InputError):
        Placement((1, 0), (1, 1))  # used server must start at block >= 1
    with pytest.raises(InputError):
        Placement((1,), (1, 2))
    with pytest.raises(InputError):
        Chain((0, 0), (1, 1))
    with pytest.raises(InputError):
        Chain((0,), (0,))
    with pytest.raises(InputError):
        ChainSolution(EXAMPLE_PLACEMENT, (Chain((0,), (1,)),), (1, 2))


def test_routing_graph_of_the_paper_example():
    inst = paper_example()
    edges = set(routing_edges(inst, EXAMPLE_PLACEMENT))
    assert (SOURCE, 0, 1) in edges and (SOURCE, 2, 1) in edges
    assert (0, 1, 2) in edges and (0, 3, 1) in edges and (3, 4, 1) in edges and (3, 1, 1) in edges
    assert (1, SINK, 0) in edges and (4, SINK, 0) in edges
    chains = chains_of_placement(inst, EXAMPLE_PLACEMENT)
    assert len(chains) == 6
    assert Chain((0, 1), (1, 2)) in chains and Chain((2, 3, 4), (1, 1, 1)) in chains
    assert service_time_s(inst, Chain((0, 1), (1, 2))) == pytest.approx(3 + 5 * EPS)
    assert service_time_s(inst, Chain((2, 3, 4), (1, 1, 1))) == pytest.approx(3 + 12 * EPS)
    assert chain_through(EXAMPLE_PLACEMENT, [0, 3, 4]) == Chain((0, 3, 4), (1, 1, 1))
    with pytest.raises(InputError):
        chain_through(EXAMPLE_PLACEMENT, [1, 0])


def test_residual_slots_floor_is_robust_to_round_off():
    inst = paper_example()
    np.testing.assert_array_equal(residual_slots(inst, EXAMPLE_PLACEMENT), [10, 10, 10, 10, 10])
    big = ChainInstance((Server("a", 40.0, 1.0, 0.1),), 70, 1.32, 0.11, 0.1)
    slots = residual_slots(big, Placement((1,), (19,)))
    assert slots[0] == int((40 - 1.32 * 19) / 0.11 + 1e-9)


# -- verify ------------------------------------------------------------------------------------------


def _paper_solution(caps=(5, 5, 5)) -> ChainSolution:
    chains = (Chain((0, 1), (1, 2)), Chain((0, 3, 4), (1, 1, 1)), Chain((2, 3, 4), (1, 1, 1)))
    return ChainSolution(EXAMPLE_PLACEMENT, chains, caps)


def test_verify_accepts_the_paper_allocation():
    inst = paper_example()
    rep = verify(inst, _paper_solution())
    assert rep.ok and rep.status == "ok" and not rep.violations
    expected = 5 / (3 + 5 * EPS) + 5 / (3 + 10 * EPS) + 5 / (3 + 12 * EPS)
    assert rep.total_rate == pytest.approx(expected)
    assert rep.total_capacity == 15
    np.testing.assert_array_equal(slot_usage(inst, _paper_solution()), [10, 10, 5, 10, 10])


def test_verify_memory_violation():
    rep = verify(paper_example(), _paper_solution((6, 5, 5)))
    assert not rep.ok and rep.failed_checks == ["memory"]
    assert any("server 0" in v for v in rep.violations)


def test_verify_below_target_is_feasible_but_flagged():
    rep = verify(paper_example(arrival_rate=10.0), _paper_solution())
    assert rep.feasible and not rep.ok
    assert rep.status == "feasible_below_target" and rep.failed_checks == ["rate"]
    assert "below the target" in rep.violations[0]


def test_verify_chain_rules():
    inst = paper_example()
    bad_blocks = ChainSolution(EXAMPLE_PLACEMENT, (Chain((0, 1), (1, 1)),), (1,))  # j2 must run to block 3
    assert verify(inst, bad_blocks).failed_checks == ["chains", "rate"]
    gap = ChainSolution(EXAMPLE_PLACEMENT, (Chain((0, 4), (1, 1)),), (1,))  # j5 does not host block 2
    assert "chains" in verify(inst, gap).failed_checks
    short = ChainSolution(EXAMPLE_PLACEMENT, (Chain((0, 3), (1, 1)),), (1,))  # ends at block 2
    rep = verify(inst, short)
    assert "chains" in rep.failed_checks and any("ends after block 2" in v for v in rep.violations)
    late_start = ChainSolution(EXAMPLE_PLACEMENT, (Chain((3, 4), (1, 1)),), (1,))
    assert "chains" in verify(inst, late_start).failed_checks


def test_verify_coverage_and_ranges():
    inst = paper_example()
    uncovered = ChainSolution(Placement((1, 0, 1, 0, 0), (1, 0, 1, 0, 0)), (), ())
    rep = verify(inst, uncovered)
    assert {"coverage", "rate"} <= set(rep.failed_checks)
    out_of_range = ChainSolution(Placement((1, 3, 0, 0, 0), (1, 2, 0, 0, 0)), (), ())
    assert "placement" in verify(inst, out_of_range).failed_checks
    too_many_blocks = ChainSolution(Placement((1, 0, 0, 0, 0), (3, 0, 0, 0, 0)), (), ())
    assert "memory" in verify(inst, too_many_blocks).failed_checks
    wrong_len = ChainSolution(Placement((1,), (3,)), (), ())
    assert "placement" in verify(inst, wrong_len).failed_checks


# -- builders ------------------------------------------------------------------------------------------


def test_per_block_compute_time_matches_the_paper_table():
    bloom = load_model_spec("BLOOM-176B")
    hi, lo = load_gpu_type("a100_3g_40gb"), load_gpu_type("a100-2g.20gb")
    assert per_block_compute_time_s(bloom, hi) * 1000 == pytest.approx(108.9, abs=0.05)
    assert per_block_compute_time_s(bloom, lo) * 1000 == pytest.approx(175.2, abs=0.05)
    # authors' simulator reading: 156 / 78 TFLOPS and s_c = 0.1186
    assert per_block_compute_time_s(bloom, hi, profile_reading="author_code") * 1000 == pytest.approx(89.7, abs=0.05)
    assert bloom.reading("author_code").cache_memory_gb == pytest.approx(0.1186)


def test_model_specs_load():
    for name, L in (("bloom_176b", 70), ("llama2_7b", 32), ("llama2_70b", 80)):
        spec = load_model_spec(name)
        assert spec.num_blocks == L and spec.block_memory_gb > 0 and spec.cache_memory_gb > 0
    with pytest.raises(InputError, match="known"):
        load_model_spec("gpt-5")


def test_comm_time_readings():
    np.testing.assert_allclose(comm_time_s(10.0, 20, "paper"), 20 * 28 / 1000)
    np.testing.assert_allclose(comm_time_s(10.0, 20, "author_code"), (60 + 19 * 10) / 1000)
    with pytest.raises(InputError):
        comm_time_s(10.0, 20, "other")


def test_ripe_atlas_network():
    net = load_ripe_atlas()
    assert net.num_anchors == 320
    rtt = net.rtt_ms(np.arange(5)[:, None], np.arange(5)[None, :])
    assert np.allclose(np.diag(rtt), 0) and np.allclose(rtt, rtt.T) and (rtt[~np.eye(5, dtype=bool)] > 0).all()


def test_ripe_instance_is_seeded_and_follows_the_flags():
    a = ripe_instance(num_servers=20, eta=0.2, seed=3)
    assert a == ripe_instance(num_servers=20, eta=0.2, seed=3)
    assert a != ripe_instance(num_servers=20, eta=0.2, seed=4)
    assert a.num_blocks == 70 and a.arrival_rate == 0.2 and a.target_load == 0.7
    mem = a.memory_gb
    assert (mem == 40).sum() == 4 and (mem == 20).sum() == 16  # floor(0.2 * 20) high-perf
    b = ripe_instance(num_servers=20, eta=0.25, seed=3, high_perf="lowest_rtt")
    fast = b.memory_gb == 40
    assert fast.sum() == 5 and b.comm_time_s[fast].max() <= b.comm_time_s[~fast].min()
    assert ripe_instance(num_servers=7, eta=0.5, seed=1, eta_rounding="round").memory_gb.tolist().count(40.0) == 4
    with pytest.raises(InputError, match="anchors"):
        ripe_instance(num_servers=400)
    assert ripe_instance(num_servers=400, allow_repeat=True, seed=1).num_servers == 400
    with pytest.raises(InputError, match="high_perf"):
        ripe_instance(high_perf="fastest")


def test_synthetic_instance_seeded():
    a = synthetic_instance(30, 10, arrival_rate=1.0, seed=5)
    assert a == synthetic_instance(30, 10, arrival_rate=1.0, seed=5) and a.num_servers == 30


def test_families_and_evaluator_registered():
    inst = get_family("chain", "paper_sim").fn({"J": 10, "eta": 0.3}, 1)
    assert inst.num_servers == 10 and (inst.memory_gb == 40).sum() == 3
    tiny = get_family("chain", "random_tiny").fn({"J": 3, "L": 2, "equal_memory": True}, 0)
    assert tiny.num_servers == 3 and set(tiny.memory_gb.tolist()) == {3.0}
    assert get_family("chain", "synthetic").fn({"J": 12, "L": 5}, 0).num_blocks == 5
    assert get_evaluator("chain", "bounds").fn is not None


def test_bounds_evaluator_metrics():
    from serveplan.registry import Budget, MethodResult, run_method

    inst = get_family("chain", "paper_sim").fn({"J": 12, "eta": 0.25, "lambda": 0.3}, 2)
    res = run_method("chain", "gbp_cr", inst, Budget())
    metrics = get_evaluator("chain", "bounds").fn(inst, res, {}, 0)
    assert metrics["meets_target"] == 1.0
    assert metrics["surrogate_ck_response_s"] == pytest.approx(res.info["c"] * res.info["K"] / 0.3)
    assert metrics["surrogate_response_s"] == pytest.approx(res.objective / 0.3)
    assert metrics["lower_response_s"] <= metrics["upper_response_s"]
    none = get_evaluator("chain", "bounds").fn(inst, MethodResult("x", "infeasible", None, None), {}, 0)
    assert none["meets_target"] == 0.0 and math.isinf(none["lower_response_s"])


def test_solution_json_round_trip_and_errors(tmp_path):
    sol = _paper_solution()
    path = tmp_path / "sol.json"
    sol.save_json(path)
    assert ChainSolution.load_json(path) == sol
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "docs/schemas/chain_solution.schema.json").read_text())
    jsonschema.validate(json.loads(path.read_text()), schema)
    report = {"status": "feasible", "solution": {**sol.to_dict(), "service_times_s": [1.0, 2.0, 3.0]}}
    assert ChainSolution.from_dict(report) == sol
    bad = sol.to_dict()
    bad["chains"][1]["blocks"] = [1, 0, 1]
    path.write_text(json.dumps(bad))
    with pytest.raises(InputError) as err:
        ChainSolution.load_json(path)
    assert "sol.json" in str(err.value) and "chains[1].blocks[1]" in str(err.value)
    with pytest.raises(InputError, match="placement"):
        ChainSolution.from_dict({"chains": []})


@pytest.mark.parametrize("seed", range(30))
def test_verify_agrees_with_the_slot_arithmetic_on_random_allocations(seed):
    # two independent derivations of feasibility: verify (GB arithmetic, its own chain rules) and the
    # placement helpers (floored slots, enumerated chains) must agree on random placements and capacities
    from serveplan.chain.experiments import tiny_instance

    rng = np.random.default_rng(seed)
    inst = tiny_instance(5, 3, seed=seed)
    L = inst.num_blocks
    m = rng.integers(0, 3, size=5)
    a = np.where(m > 0, [int(rng.integers(1, L - mj + 2)) if mj else 0 for mj in m], 0)
    placement = Placement(tuple(int(x) for x in a), tuple(int(x) for x in m))
    chains = chains_of_placement(inst, placement)
    caps = tuple(int(x) for x in rng.integers(0, 4, size=len(chains)))
    sol = ChainSolution(placement, tuple(chains), caps)
    rep = verify(inst, sol)
    fits = bool(np.all(slot_usage(inst, sol) <= np.where(np.asarray(m) > 0, residual_slots(inst, placement), 0)))
    assert rep.checks["memory"] == fits
    assert rep.checks["chains"]  # enumerated chains always satisfy the chain rules
    covered = set()
    for j in range(5):
        covered |= set(range(a[j], a[j] + m[j]))
    assert rep.checks["coverage"] == (covered >= set(range(1, L + 1)))
    rate = sum(c / service_time_s(inst, ch) for ch, c in zip(chains, caps, strict=True))
    assert rep.total_rate == pytest.approx(rate)


def test_measured_profile_reading_uses_the_shipped_block_tables():
    """profile_reading='measured': per-block rates read from data/profiles/<gpu>_blocks.csv, batch 1."""
    import csv

    from serveplan.chain.builders import block_rates_ms
    from serveplan.chain.traces import TokenServiceModel
    from serveplan.paths import data_path

    spec, gpu = load_model_spec("llama2_7b"), load_gpu_type("h100_80gb")
    with (data_path("profiles") / "h100-80gb_blocks.csv").open() as fh:
        rows = {(r["phase"], int(r["seq_len"])): float(r["latency_s"]) for r in csv.DictReader(fh)
                if r["model"] == "llama-2-7b" and r["batch_size"] == "1"}  # fmt: skip
    overhead, prefill, decode = block_rates_ms(spec, gpu, "measured")
    assert overhead == spec.per_block_overhead_ms
    assert prefill == pytest.approx(rows[("prefill", 2048)] * 1e3 / 2048)
    assert decode == pytest.approx(rows[("decode", 2048)] * 1e3)  # cache closest to the mean input (2048)
    tau = per_block_compute_time_s(spec, gpu, profile_reading="measured")
    l_in, l_out = spec.mean_input_tokens, spec.mean_output_tokens
    assert tau == pytest.approx((overhead + prefill * l_in + decode * (l_out - 1)) / 1e3)
    # The instance builder and the token model read the same rates.
    inst = ripe_instance(10, 0.5, 0.2, model="llama2_7b", high_gpu="h200_141gb", low_gpu="h100_80gb",
                         profile_reading="measured", seed=1)  # fmt: skip
    assert tau in {s.compute_time_s for s in inst.servers}
    tsm = TokenServiceModel.from_profile(spec, [gpu], np.array([10.0]), profile_reading="measured")
    assert tsm.block_coef[0] == pytest.approx(np.array([overhead, prefill, decode]) / 1e3)
    # No table for MIG slices; the measured tables are fp16, the paper's BLOOM spec is NF4.
    with pytest.raises(InputError, match="no measured block table") as info:
        block_rates_ms(spec, load_gpu_type("a100_3g_40gb"), "measured")
    assert info.value.field == "profile_reading" and "h100_80gb" in str(info.value)
    with pytest.raises(InputError, match="fp16"):
        block_rates_ms(load_model_spec("bloom_176b"), gpu, "measured")
    with pytest.raises(InputError, match="profile_reading"):
        ripe_instance(5, 0.2, 0.2, profile_reading="guess")
