"""Solver benchmarks, model export/import and the performance profile."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
import pytest

from experiments.bench_solvers import build_instances, load_suite, performance_profile
from experiments.lp_io import capture_lp, read_lp, write_lp
from serveplan.cli import main
from serveplan.errors import InputError
from serveplan.registry import get_family, run_method
from serveplan.solvers import solve_lp


@pytest.fixture(scope="module")
def tiny_chain():
    return get_family("chain", "random_tiny").fn({"J": 4, "L": 3}, 1)


def test_export_round_trip_solves_to_the_methods_optimum(tiny_chain, tmp_path):
    direct = run_method("chain", "milp:bpca", tiny_chain)
    assert direct.status == "optimal"
    lp = capture_lp("chain", "milp:bpca", tiny_chain)
    for suffix in ("mps", "lp"):
        path = write_lp(lp, tmp_path / f"m.{suffix}")
        back = read_lp(path)
        assert (back.num_cols, back.num_rows, int(back.integer.sum())) == (lp.num_cols, lp.num_rows, lp.integer.sum())
        res, _ = solve_lp(back, "highs")
        assert res.status == "optimal"
        assert math.isclose(res.objective, direct.objective, rel_tol=1e-9)


def test_export_command_and_heuristic_refused(tmp_path, monkeypatch):
    out = tmp_path / "bpca.mps"
    args = ["export", "--problem", "chain", "--method", "milp:bpca", "--family", "random_tiny",
            "--params", '{"J": 4, "L": 3}', "--seed", "1", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert out.read_text().startswith(("NAME", "*"))
    # The problem follows from the method, the file name from the instance and the method.
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--method", "milp:bpca", "--family", "random_tiny", "--format", "lp"]) == 0
    assert read_lp(tmp_path / "random_tiny_s0_milp_bpca.lp").num_cols > 0
    with pytest.raises(InputError, match="solved no MILP"):
        capture_lp("chain", "gbp_cr", get_family("chain", "random_tiny").fn({}, 0))


def test_performance_profile_by_hand():
    table = pd.DataFrame(
        {
            "instance": ["a", "a", "b", "b", "c", "c"],
            "backend": ["x", "y"] * 3,
            "time_to_opt_s": [1.0, 2.0, 4.0, 1.0, 3.0, math.inf],
        }
    )
    taus, rho = performance_profile(table)
    at = {t: i for i, t in enumerate(taus)}
    # x: ratios 1, 4, 1 ; y: ratios 2, 1, inf
    assert rho["x"][at[1.0]] == pytest.approx(2 / 3) and rho["y"][at[1.0]] == pytest.approx(1 / 3)
    assert rho["y"][at[2.0]] == pytest.approx(2 / 3) and rho["x"][at[4.0]] == pytest.approx(1.0)
    assert rho["y"][-1] == pytest.approx(2 / 3)
    assert np.all(np.diff(rho["x"]) >= 0)


def test_suite_validation(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[suite]\nname = "b"\ntime_limt_s = 3\n')
    with pytest.raises(InputError) as info:
        load_suite(str(bad))
    assert info.value.field == "suite.time_limt_s" and "time_limit_s" in str(info.value)
    with pytest.raises(InputError, match="did you mean tiny"):
        load_suite("tinyy")


def test_bench_solvers_writes_runs_and_profile(tiny_chain, tmp_path, capsys):
    suite = tmp_path / "t.toml"
    suite.write_text(
        textwrap.dedent(
            """
            [suite]
            name = "t"
            time_limit_s = 20
            threads = 1
            backends = ["highs", "scip"]
            seeds = [1]

            [[instances]]
            problem = "chain"
            family = "random_tiny"
            method = "milp:bpca"
            sizes = [{ J = 4, L = 3 }]
            """
        )
    )
    mps = write_lp(capture_lp("chain", "milp:bpca", tiny_chain), tmp_path / "same.mps")
    instances = build_instances(load_suite(str(suite)), [str(mps)])
    assert [i.name for i in instances] == ["chain/random_tiny[J=4,L=3]/milp:bpca/s1", "same.mps"]
    assert instances[0].lp.num_cols == instances[1].lp.num_cols
    out = tmp_path / "bench"
    assert main(["bench", "solvers", "--suite", str(suite), "--out", str(out)]) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 2 and set(runs["backend"]) == {"highs", "scip"}
    assert (runs["status"] == "optimal").all()
    # Both backends agree with the method's own optimum.
    assert runs["objective"].tolist() == pytest.approx([run_method("chain", "milp:bpca", tiny_chain).objective] * 2)
    for name in ("performance_profile", "gap_over_time"):
        for ext in ("png", "pdf", "csv"):
            assert (out / f"{name}.{ext}").stat().st_size > 0
    profile = pd.read_csv(out / "performance_profile.csv")
    assert profile[["highs", "scip"]].iloc[-1].tolist() == [1.0, 1.0]
    assert "machine: cpu" in capsys.readouterr().out


def test_bench_topics_dispatch_to_problem_packages(monkeypatch, capsys):
    from serveplan.commands import bench

    found = dict(bench.find_benchmarks("sim"))
    assert {"chain", "alpaserve"} <= set(found)
    milp = dict(bench.find_benchmarks("milp"))  # the time-expanded comparison of the chain package
    assert milp["chain"].__module__ == "serveplan.chain.bench_milp" and "milp" in bench.TOPICS

    def fake(quick: bool = False) -> list[dict]:
        return [{"variant": "baseline", "seconds": 2.0, "ratio": 1.0}, {"variant": "fast", "seconds": 1.0,
                 "ratio": 2.0 if quick else 0.0}]  # fmt: skip

    monkeypatch.setattr(bench, "find_benchmarks", lambda topic, problem=None: [("chain", fake)])
    assert main(["bench", "heuristics", "--quick"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("machine: cpu") and "== chain" in out and "2.0" in out.splitlines()[-1]


def test_claimed_optimum_beaten_by_a_feasible_incumbent_is_flagged():
    from experiments.bench_solvers import check_claims

    rows = [
        {"backend": "a", "status": "optimal", "objective": 0.0, "gap": 0.0, "max_violation": 0.0, "time_to_opt_s": 0.1},
        {"backend": "b", "status": "feasible", "objective": 506.0, "gap": 0.01, "max_violation": 0.0,
         "time_to_opt_s": math.inf},
        {"backend": "c", "status": "optimal", "objective": 506.0, "gap": 0.0, "max_violation": 1e-9,
         "time_to_opt_s": 5.0},
        {"backend": "d", "status": "feasible", "objective": 900.0, "gap": 0.5, "max_violation": 0.5,
         "time_to_opt_s": math.inf},
    ]  # fmt: skip
    messages = check_claims(rows, maximize=True)
    assert [r["status"] for r in rows] == ["wrong_optimum", "feasible", "optimal", "feasible"]
    assert rows[0]["time_to_opt_s"] == math.inf and len(messages) == 1 and "506" in messages[0]
    # d's 900 violates the constraints: not evidence against c's optimum.
    assert check_claims(rows[2:], maximize=True) == []
