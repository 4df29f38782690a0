"""``serveplan solve chain`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from serveplan.chain.instance import ChainInstance, Server
from serveplan.cli import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = str(REPO / "examples" / "chain_small.json")


def test_solve_default_method_prints_tables(capsys):
    rc = main(["solve", "chain", "--instance", EXAMPLE])
    out = capsys.readouterr().out
    assert rc == 0
    assert "placement" in out and "chains" in out and "T_k_s" in out
    assert "verified  ok" in out and "objective" in out and "Theorem 3.7" in out


@pytest.mark.parametrize("method", ["gbp_cr+gca", "gbp_cr", "random", "gbp_cr+gca:6"])
def test_solve_json(capsys, method, tmp_path):
    saved = tmp_path / "sol.json"
    rc = main(
        ["solve", "chain", "--instance", EXAMPLE, "--method", method, "--seed", "3", "--json", "--save", str(saved)]
    )
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert data["verified"] is True and data["verify"]["status"] == "ok"
    assert data["objective"] == sum(ch["capacity"] for ch in data["solution"]["chains"])
    assert len(data["solution"]["service_times_s"]) == len(data["solution"]["chains"])
    assert json.loads(saved.read_text())["objective"] == data["objective"]
    assert data["bounds"]["lower_response_s"] <= data["bounds"]["upper_response_s"]


def test_infeasible_fixed_c_is_a_result(capsys):
    rc = main(["solve", "chain", "--instance", EXAMPLE, "--method", "gbp_cr+gca:4"])
    out = capsys.readouterr().out
    assert rc == 1 and "infeasible" in out and "with c=4" in out


def test_options_reach_the_method(capsys):
    rc = main(["solve", "chain", "--instance", EXAMPLE, "--method", "gbp_cr", "-o", "c=6", "-o", "last_server=truncate",
               "--json"])  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["info"]["c"] == 6 and data["info"]["last_server"] == "truncate"


def _write(tmp_path: Path, inst: ChainInstance) -> str:
    path = tmp_path / "inst.json"
    inst.save_json(path)
    return str(path)


def test_blocks_that_cannot_be_placed_exit_1_with_reason(tmp_path, capsys):
    inst = ChainInstance(tuple(Server(f"s{j}", 1.5, 1.0, 0.1) for j in range(2)), 4, 1.0, 0.1, 0.1)
    rc = main(["solve", "chain", "--instance", _write(tmp_path, inst)])
    out = capsys.readouterr().out
    assert rc == 1 and "cannot all be placed" in out and "fewer than L=4" in out


def test_arrival_rate_too_high_exits_1_with_numbers(tmp_path, capsys):
    inst = ChainInstance(tuple(Server(f"s{j}", 4.0, 1.0, 0.1) for j in range(3)), 2, 1.0, 0.5, 50.0)
    rc = main(["solve", "chain", "--instance", _write(tmp_path, inst), "--method", "gbp_cr"])
    out = capsys.readouterr().out
    assert rc == 1 and "arrival rate is too high" in out and "71.4286" in out


def test_bad_instance_exits_2_naming_the_field(tmp_path, capsys):
    data = json.loads(Path(EXAMPLE).read_text())
    data["servers"][2]["compute_time_s"] = 0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    rc = main(["solve", "chain", "--instance", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and "servers[2].compute_time_s" in err and "bad.json" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--method", "gbp_crr"], "unknown chain method"),
        (["-o", "nokeyvalue"], "KEY=VALUE"),
        (["-o", "stop_rule=never"], "stop_rule"),
    ],
)
def test_bad_arguments_exit_2(capsys, args, needle):
    rc = main(["solve", "chain", "--instance", EXAMPLE, *args])
    assert rc == 2 and needle in capsys.readouterr().err


def test_missing_file_exits_2(capsys, tmp_path):
    assert main(["solve", "chain", "--instance", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_console_script_without_traceback(tmp_path):
    inst = ChainInstance((Server("a", 1.5, 1.0, 0.1),), 4, 1.0, 0.1, 0.1)
    path = _write(tmp_path, inst)
    proc = subprocess.run(
        [sys.executable, "-m", "serveplan.cli", "solve", "chain", "--instance", path, "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    data = json.loads(proc.stdout)
    assert data["status"] == "infeasible" and "cannot all be placed" in data["info"]["reason"]


def test_exit_status_follows_the_independent_verifier(monkeypatch, capsys):
    # a method that reports verified=True and no objective, for a solution that misses the rate target
    import serveplan.chain.cli as chain_cli
    from serveplan.chain.placement import ChainSolution, Placement
    from serveplan.registry import MethodResult

    def fake_run_method(problem, name, instance, budget):
        sol = ChainSolution(Placement.unused(instance.num_servers), (), ())
        return MethodResult(name, "feasible", sol, None, verified=True)

    monkeypatch.setattr(chain_cli, "run_method", fake_run_method)
    rc = main(["solve", "chain", "--instance", EXAMPLE, "--method", "whatever"])
    out = capsys.readouterr().out
    assert rc == 1 and "objective none reported" in out and "failed: coverage, rate" in out
