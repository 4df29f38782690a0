"""Chain experiment configs and figure modules: they load, name registered things, run and draw."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest

from experiments.config import load_config
from experiments.executors import SerialExecutor
from experiments.runner import load_rows, run_experiment
from serveplan.paths import REPO_ROOT

CONFIGS = sorted((REPO_ROOT / "experiments" / "configs").glob("chain_*.toml"))
FIGURES = sorted(p.stem for p in (REPO_ROOT / "paper_figures").glob("chain_*.py"))


def test_every_chain_config_and_figure_exists():
    assert len(CONFIGS) >= 8
    names = {p.stem for p in CONFIGS}
    for fig in FIGURES:
        mod = importlib.import_module(f"paper_figures.{fig}")
        assert fig == mod.NAME
        for cfg in mod.CONFIGS:
            assert (REPO_ROOT / cfg).is_file()
            assert Path(cfg).stem in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_chain_config_validates_against_registry(path):
    cfg = load_config(path)  # checks family, method and evaluator names after importing the plugins
    assert cfg.problem == "chain"
    assert cfg.figures and all(f in FIGURES for f in cfg.figures)


def shrunk(path: Path):
    """The config with one seed and short simulations, for a smoke run."""
    cfg = load_config(path)
    params = dict(cfg.evaluator_params)
    if "num_requests" in params:
        params["num_requests"] = 300
    if "trace_requests" in params:
        params["trace_requests"] = 100
    return dataclasses.replace(cfg, seeds=(0,), evaluator_params=params)


SMOKE = ["chain_gca_unit", "chain_jffc_load", "chain_trace_table"]


@pytest.mark.parametrize("name", SMOKE)
def test_chain_experiment_runs_and_draws(name, tmp_path):
    cfg = shrunk(REPO_ROOT / "experiments" / "configs" / f"{name}.toml")
    summary = run_experiment(cfg, SerialExecutor(), root=tmp_path / cfg.name)
    assert summary.errors == 0
    rows = load_rows(cfg, tmp_path)
    assert len(rows) == summary.total
    files = importlib.import_module(f"paper_figures.{name}").plot(rows, tmp_path / "fig")
    assert all(Path(f).is_file() and Path(f).stat().st_size > 0 for f in files)


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_chain_experiment_runs_and_draws(path, tmp_path):
    cfg = shrunk(path)
    summary = run_experiment(cfg, SerialExecutor(), root=tmp_path / cfg.name)
    assert summary.errors == 0
    rows = load_rows(cfg, tmp_path)
    for fig in cfg.figures:
        files = importlib.import_module(f"paper_figures.{fig}").plot(rows, tmp_path / "fig")
        assert all(Path(f).is_file() for f in files)
