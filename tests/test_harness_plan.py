"""``serveplan plan``: user setups from files, recommendation, comparison with baselines, saved plot."""

from __future__ import annotations

import json
import shutil

import pytest

from experiments.plan import make_plan, read_alpaserve_setup, read_chain_setup
from serveplan.cli import main
from serveplan.errors import InputError
from serveplan.paths import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"


def test_chain_setup_matches_the_instance_file():
    from serveplan.chain.instance import ChainInstance

    inst = read_chain_setup(EXAMPLES / "plan_chain" / "plan.toml")
    ref = ChainInstance.load_json(EXAMPLES / "chain_small.json")
    assert inst.num_blocks == ref.num_blocks == 70
    assert [s.name for s in inst.servers] == [s.name for s in ref.servers]
    assert inst.arrival_rate == pytest.approx(0.3)


def test_plan_chain_recommends_best_verified_candidate(tmp_path, capsys):
    out = tmp_path / "plan"
    code = main(["plan", "chain", str(EXAMPLES / "plan_chain" / "plan.toml"), "--methods", "gbp_cr+gca", "gbp_cr",
                 "--baselines", "random", "jffc_only", "--out", str(out)])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    payload = json.loads((out / "plan.json").read_text())
    rows = {r["method"]: r for r in payload["comparison"]}
    cands = [m for m in ("gbp_cr+gca", "gbp_cr") if rows[m]["verified"]]
    best = min(cands, key=lambda m: rows[m]["mean_response_s"])
    assert payload["recommended"] == best and f"recommended: {best}" in text
    assert rows["jffc_only"]["status"] == "infeasible"  # no solution: shown, not a crash
    assert payload["solution"]["chains"]
    for ext in ("png", "pdf", "csv"):
        assert (out / f"plan_chain.{ext}").stat().st_size > 0


def test_plan_alpaserve_from_rates(tmp_path):
    inst = read_alpaserve_setup(EXAMPLES / "plan_alpaserve" / "plan.toml")
    assert inst.num_models == 8 and inst.cluster.num_gpus == 8
    outcome = make_plan("alpaserve", inst, methods=["greedy"], baselines=["sr"], time_limit_s=10)
    assert outcome.recommended == "greedy"
    assert set(outcome.table["method"]) == {"greedy", "sr"}
    assert 0.0 <= outcome.table["attainment"].min() <= outcome.table["attainment"].max() <= 1.0


def test_plan_alpaserve_says_where_latencies_come_from(tmp_path):
    """A setup on a GPU with a measured profile table reports measured latencies; the V100 example, modelled."""
    from experiments.plan import describe_solution

    d = tmp_path / "h200"
    shutil.copytree(EXAMPLES / "plan_alpaserve", d)
    text = (d / "plan.toml").read_text().replace('gpu = "v100-16gb"', 'gpu = "h200-141gb"')
    (d / "plan.toml").write_text(text.replace("memory_budget_gb = 13 ", "memory_budget_gb = 120"))
    for setup, expected in ((d / "plan.toml", "measured"), (EXAMPLES / "plan_alpaserve" / "plan.toml", "modelled")):
        inst = read_alpaserve_setup(setup)
        outcome = make_plan("alpaserve", inst, methods=["sr"], baselines=[], time_limit_s=10)
        solution = outcome.results["sr"].solution
        assert inst.latency_sources(solution) == [expected]
        assert describe_solution("alpaserve", inst, solution)[-1] == f"latencies ({inst.latency.gpu}): {expected}"


def test_chain_setup_from_gpu_types_and_a_model_spec(tmp_path):
    """Servers given by GPU type: memory from the type, tau^p from the spec and the measured block table."""
    from serveplan.chain.builders import load_gpu_type, load_model_spec, per_block_compute_time_s

    inst = read_chain_setup(EXAMPLES / "plan_chain_gpus" / "plan.toml")
    spec = load_model_spec("llama2_70b")
    assert inst.num_blocks == spec.num_blocks and inst.block_memory_gb == spec.block_memory_gb
    for server, gpu in ((inst.servers[0], "h200_141gb"), (inst.servers[-1], "h100_80gb")):
        g = load_gpu_type(gpu)
        assert server.memory_gb == g.memory_gb
        assert server.compute_time_s == pytest.approx(per_block_compute_time_s(spec, g, profile_reading="measured"))
    d = tmp_path / "g"
    shutil.copytree(EXAMPLES / "plan_chain_gpus", d)
    text = (d / "plan.toml").read_text()
    cases = [
        (text.replace('"measured"', '"measurd"'), None, "model.profile_reading"),
        (text.replace('spec = "llama2_70b"', 'spec = "llama3"'), None, "model.spec"),
        (text, "fra-h200-0,a100_9g,0.20", "servers[0].gpu"),
        (text.replace('spec = "llama2_70b"', "num_blocks = 80\nblock_memory_gb = 1.7\ncache_memory_gb = 0.1"), None,
         "servers[0].gpu"),
    ]  # fmt: skip
    servers = (EXAMPLES / "plan_chain_gpus" / "servers.csv").read_text()
    for toml, first_row, field in cases:
        (d / "plan.toml").write_text(toml)
        rows = servers if first_row is None else servers.replace("fra-h200-0,h200_141gb,0.20", first_row)
        (d / "servers.csv").write_text(rows)
        with pytest.raises(InputError) as info:
            read_chain_setup(d / "plan.toml")
        assert info.value.field == field, (field, str(info.value))


def test_plan_input_errors_name_file_and_key(tmp_path):
    d = tmp_path / "p"
    shutil.copytree(EXAMPLES / "plan_chain", d)
    text = (d / "plan.toml").read_text()
    (d / "plan.toml").write_text(text.replace("target_load", "target_lod"))
    with pytest.raises(InputError) as info:
        read_chain_setup(d / "plan.toml")
    assert info.value.field == "workload.target_lod" and "target_load" in str(info.value)
    (d / "plan.toml").write_text(text)
    (d / "servers.csv").write_text("name,memory_gb\ns0,20\n")
    with pytest.raises(InputError, match="missing column"):
        read_chain_setup(d / "plan.toml")
    with pytest.raises(InputError, match="unknown alpaserve method"):
        make_plan("alpaserve", read_alpaserve_setup(EXAMPLES / "plan_alpaserve" / "plan.toml"), methods=["grredy"])
