"""The README's main job, ``serveplan run experiments/configs/quickstart.toml``, end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from experiments.config import SuiteConfig, load_config
from serveplan.paths import REPO_ROOT
from serveplan.registry import get_method

QUICKSTART = REPO_ROOT / "experiments" / "configs" / "quickstart.toml"


def run_quickstart(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SERVEPLAN_RESULTS=str(tmp_path / "results"))
    cmd = [sys.executable, "-m", "serveplan.cli", "run", str(QUICKSTART), "--quiet", *extra]
    return subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_quickstart_touches_both_problems_with_exact_heuristic_and_simulation():
    config = load_config(QUICKSTART)
    assert isinstance(config, SuiteConfig) and config.figures == ("quickstart",)
    assert {e.problem for e in config.experiments} == {"chain", "alpaserve"}
    for exp in config.experiments:
        kinds = {get_method(exp.problem, m.name)[0].kind for m in exp.methods}
        assert "heuristic" in kinds and exp.evaluator is not None
    # At least one exact MILP overall (each problem's, once its MILPs are registered).
    assert any(get_method(e.problem, m.name)[0].kind == "exact" for e in config.experiments for m in e.methods)


def test_quickstart_reduced_runs_and_draws(tmp_path):
    # The first two cases of each part: its exact MILP and its first heuristic, both simulated.
    done = run_quickstart(tmp_path, "--limit-cases", "2", "--executor", "serial")
    assert done.returncode == 0, done.stdout + done.stderr
    results = tmp_path / "results"
    for name in ("quickstart_chain", "quickstart_alpaserve"):
        table = pd.read_csv(results / name / "results.csv")
        assert len(table) == 2 and (table["status"] != "error").all()
        # Every solution verifies; the MILP may stop at its time limit without one on a loaded machine.
        solved = table[table["status"].isin(["optimal", "feasible"])]
        assert solved["verified"].all() and len(solved) >= 1
    for ext in ("png", "pdf", "csv"):
        assert (results / "figures" / f"quickstart.{ext}").stat().st_size > 0


@pytest.mark.slow
def test_quickstart_full(tmp_path):
    done = run_quickstart(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 errors" in done.stdout and (tmp_path / "results" / "figures" / "quickstart.pdf").exists()
