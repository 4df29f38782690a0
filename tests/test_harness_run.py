"""The experiment harness end to end on a tiny test-only problem: rows, resume after a kill, Dask, figures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from experiments.config import load_config
from experiments.executors import LocalExecutor, SerialExecutor
from experiments.grid import expand_cases
from experiments.runner import run_experiment
from experiments.store import ResultStore
from serveplan.cli import main

# A test-only problem (registered under "chain" with "_test" names): subset-sum greedy on random weights.
PLUGIN = """
import time
import numpy as np
from serveplan.registry import MethodResult, register, register_evaluator, register_family


@register_family("chain", "_test_run_knap", summary="test only: random weights")
def family(params, seed):
    rng = np.random.default_rng(seed)
    return {"w": rng.integers(1, 10, int(params["n"])).tolist(), "cap": int(params.get("cap", 12))}


@register("chain", "_test_run_greedy", kind="heuristic", summary="test only")
def greedy(inst, budget, param):
    time.sleep(float(budget.options.get("sleep_s", 0.0)))
    if budget.options.get("fail"):
        raise RuntimeError("deliberate failure")
    if budget.options.get("infeasible"):
        return MethodResult("x", "infeasible", None, None)
    total = 0
    for w in sorted(inst["w"], reverse=bool(budget.options.get("largest_first"))):
        if total + w <= inst["cap"]:
            total += w
    return MethodResult("x", "feasible", total, float(total), verified=True)


@register_evaluator("chain", "_test_run_fill", summary="test only")
def fill(inst, result, params, seed):
    return {"fill": result.objective / inst["cap"], "scaled": params.get("scale", 1) * result.objective}
"""

FIGURE = '''
"""Test figure: fill per label."""
from paper_figures._common import plt, save_figure, summarise

NAME = "sp_harness_fig"
CONFIGS = [{config!r}]


def plot(rows, out_dir):
    stats = summarise(rows, ["label"], "fill")
    fig, ax = plt.subplots()
    ax.bar(stats["label"], stats["mean"])
    return save_figure(fig, out_dir, NAME, stats)
'''


def config_text(name: str, *, sleep_s: float = 0.0, fail: bool = False, n: list[int] | None = None) -> str:
    return textwrap.dedent(
        f"""
        [experiment]
        name = "{name}"
        problem = "chain"
        seeds = 2
        metrics = ["fill"]
        plugins = ["sp_harness_plugin"]

        [instance]
        family = "_test_run_knap"
        params = {{ cap = 12 }}

        [grid]
        product = {{ n = {n or [3, 6]} }}
        zip = {{ "evaluator.scale" = [1, 2] }}

        [[methods]]
        name = "_test_run_greedy"
        options = {{ sleep_s = {sleep_s} }}

        [[methods]]
        name = "_test_run_greedy"
        label = "largest"
        options = {{ sleep_s = {sleep_s}, largest_first = true, fail = {str(fail).lower()} }}

        [evaluator]
        name = "_test_run_fill"
        """
    )


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugin")
    (d / "sp_harness_plugin.py").write_text(PLUGIN)
    sys.path.insert(0, str(d))
    yield d
    sys.path.remove(str(d))
    forget_test_registrations("_test_run_", ("sp_harness_plugin", "sp_harness_fig"))


def forget_test_registrations(prefix: str, modules: tuple[str, ...]) -> None:
    """Remove this file's test-only methods, families and evaluators, so later tests never see them."""
    from serveplan import registry

    for table in (registry._METHODS, registry._FAMILIES, registry._EVALUATORS):
        for key in [k for k in table if k[1].startswith(prefix)]:
            del table[key]
    for name in modules:
        sys.modules.pop(name, None)


def env_with(path: Path, results: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    env["SERVEPLAN_RESULTS"] = str(results)
    return env


STABLE = ["case_id", "label", "seed", "n", "evaluator.scale", "status", "objective", "fill", "scaled", "verified"]


def test_rows_errors_and_skip(plugin_dir, tmp_path):
    cfg = tmp_path / "exp.toml"
    cfg.write_text(config_text("rows", fail=True))
    config = load_config(cfg)
    summary = run_experiment(config, SerialExecutor(), root=tmp_path / "res")
    assert (summary.total, summary.ran, summary.errors) == (16, 16, 8)
    table = pd.read_csv(tmp_path / "res" / "results.csv")
    assert len(table) == 16 and table["case_id"].is_unique
    ok = table[table["label"] == "_test_run_greedy"]
    assert (ok["status"] == "feasible").all() and ok["verified"].all()
    assert (ok["scaled"] == ok["objective"] * ok["evaluator.scale"]).all()
    bad = table[table["label"] == "largest"]
    assert (bad["status"] == "error").all()
    assert bad["message"].str.contains("deliberate failure").all()
    assert pd.read_parquet(tmp_path / "res" / "results.parquet").shape == table.shape
    resolved = json.loads((tmp_path / "res" / "resolved.json").read_text())
    assert resolved["config_hash"] == config.config_hash()
    # Finished cases are skipped; error cases are retried.
    again = run_experiment(config, SerialExecutor(), root=tmp_path / "res")
    assert (again.skipped, again.ran) == (8, 8)
    log = [json.loads(line) for line in (tmp_path / "res" / "runs.jsonl").read_text().splitlines()]
    assert [(r["ran"], r["skipped"], r["errors"], r["completed"]) for r in log] == [(16, 0, 8, True), (8, 8, 8, True)]


def test_resume_after_kill(plugin_dir, tmp_path, capsys):
    cfg = tmp_path / "slow.toml"
    cfg.write_text(config_text("slow", sleep_s=0.1, n=[3, 4, 5]))
    results = tmp_path / "res"
    env = env_with(plugin_dir, results)
    cmd = [sys.executable, "-m", "serveplan.cli", "run", str(cfg), "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cases_dir = results / "slow" / "cases"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(cases_dir.glob("*.json"))) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    before = {p.stem for p in cases_dir.glob("*.json")}
    expected = {c.case_id for c in expand_cases(load_config(cfg))}
    assert 3 <= len(before) < len(expected)
    assert before <= expected
    assert main(["run", str(cfg), "--executor", "serial", "--quiet", "--results", str(results)]) == 0
    assert f"{len(before)} already done, {len(expected) - len(before)} run" in capsys.readouterr().out
    table = pd.read_csv(results / "slow" / "results.csv")
    assert set(table["case_id"]) == expected and len(table) == len(expected)
    assert not list(cases_dir.glob(".*.tmp"))
    # Rows from the killed local-process run and the resumed serial run equal a fresh serial run's.
    run_experiment(load_config(cfg), SerialExecutor(), root=tmp_path / "serial")
    fresh = ResultStore(tmp_path / "serial").load()[STABLE].sort_values("case_id", ignore_index=True)
    pd.testing.assert_frame_equal(table[STABLE].sort_values("case_id", ignore_index=True), fresh)


def test_case_timeout_holds_in_a_worker_thread(plugin_dir, tmp_path):
    """Threads cannot take SIGALRM (Dask workers): a case with a timeout runs in a child process there."""
    import threading

    from experiments.runner import run_case

    cfg = tmp_path / "thr.toml"
    text = config_text("thread", n=[3]).replace("seeds = 2", "seeds = 1\ncase_timeout_s = 5")
    cfg.write_text(text.replace("sleep_s = 0.0, largest_first", "sleep_s = 60.0, largest_first"))
    cases = expand_cases(load_config(cfg))
    slow = next(c for c in cases if c.method.label == "largest")
    fast = next(c for c in cases if c.method.label != "largest")
    rows: dict[str, dict] = {}

    def work() -> None:
        for case in (slow, fast):
            rows[case.case_id] = run_case(case)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    killed, done = rows[slow.case_id], rows[fast.case_id]
    assert killed["status"] == "error" and "child process killed" in killed["message"]
    assert killed["wall_s"] < 30  # killed at the 5 s limit, not after the 60 s sleep
    # The child imports the plugin from the parent's import path and returns the same row as in-process.
    assert done["status"] == "feasible" and done["fill"] == run_case(fast)["fill"]


def test_dask_matches_local(plugin_dir, tmp_path):
    from experiments.executors import DaskExecutor

    cfg = tmp_path / "d.toml"
    cfg.write_text(config_text("dask"))
    config = load_config(cfg)
    local = LocalExecutor(workers=1)
    try:
        run_experiment(config, local, root=tmp_path / "local")
    finally:
        local.close()
    ex = DaskExecutor(workers=1, processes=False)
    try:
        summary = run_experiment(config, ex, root=tmp_path / "dask")
    finally:
        ex.close()
    assert summary.ran == 16 and summary.errors == 0
    a = ResultStore(tmp_path / "local").load()[STABLE].sort_values("case_id", ignore_index=True)
    b = ResultStore(tmp_path / "dask").load()[STABLE].sort_values("case_id", ignore_index=True)
    pd.testing.assert_frame_equal(a, b)


def test_figures_command_runs_missing_and_writes_files(plugin_dir, tmp_path, capsys):
    cfg = tmp_path / "fig.toml"
    cfg.write_text(config_text("figexp"))
    (plugin_dir / "sp_harness_fig.py").write_text(FIGURE.format(config=str(cfg)))
    out = tmp_path / "figs"
    code = main(["figures", "sp_harness_fig", "--results", str(tmp_path / "res"), "--out", str(out),
                 "--executor", "serial"])  # fmt: skip
    assert code == 0
    for ext in ("png", "pdf", "csv"):
        assert (out / f"sp_harness_fig.{ext}").stat().st_size > 0
    plotted = pd.read_csv(out / "sp_harness_fig.csv")
    assert set(plotted["label"]) == {"_test_run_greedy", "largest"}
    assert len(ResultStore(tmp_path / "res" / "figexp").finished_ids()) == 16


def test_show_summarises_over_seeds(plugin_dir, tmp_path, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text(config_text("showexp", n=[4]))
    run_experiment(load_config(cfg), SerialExecutor(), root=tmp_path / "res" / "showexp")
    assert main(["show", str(tmp_path / "res" / "showexp"), "--metrics", "fill"]) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "res" / "showexp" / "results.csv")
    fill = table[(table["label"] == "largest") & (table["evaluator.scale"] == 1)]["fill"]
    assert f"{fill.mean():.4g} ± {fill.std():.2g}" in out
    assert "== showexp (8 rows)" in out
    assert main(["run", str(cfg), "--dry-run", "--results", str(tmp_path / "res")]) == 0
    assert "2 grid points x 2 seeds x 2 methods -> 8 cases, 8 finished, 0 to run" in capsys.readouterr().out


def test_result_without_solution_is_a_row_not_an_error(plugin_dir, tmp_path):
    cfg = tmp_path / "inf.toml"
    cfg.write_text(config_text("inf", n=[3]).replace("fail = false", "fail = false, infeasible = true"))
    summary = run_experiment(load_config(cfg), SerialExecutor(), root=tmp_path / "res")
    assert summary.errors == 0
    table = pd.read_csv(tmp_path / "res" / "results.csv")
    rows = table[table["label"] == "largest"]
    assert (rows["status"] == "infeasible").all() and not rows["verified"].any()
    # The evaluator raised on the missing solution: metrics empty, the reason noted.
    assert rows["fill"].isna().all() and rows["message"].str.contains("evaluator skipped").all()
    assert ResultStore(tmp_path / "res").finished_ids() == set(table["case_id"])


def test_case_timeout_stores_an_error_and_the_sweep_goes_on(plugin_dir, tmp_path):
    cfg = tmp_path / "to.toml"
    text = config_text("timeout", n=[3]).replace("seeds = 2", "seeds = 1\ncase_timeout_s = 0.5")
    cfg.write_text(text.replace("sleep_s = 0.0, largest_first", "sleep_s = 30.0, largest_first"))
    summary = run_experiment(load_config(cfg), SerialExecutor(), root=tmp_path / "res")
    table = pd.read_csv(tmp_path / "res" / "results.csv")
    slow = table[table["label"] == "largest"]
    assert summary.errors == len(slow) == 2 and slow["message"].str.contains("case_timeout_s").all()
    assert (table[table["label"] != "largest"]["status"] == "feasible").all()
