"""Experiment config validation: every error names the file, the key path and a suggestion."""

from __future__ import annotations

import sys
import textwrap

import pytest

from experiments.config import ExperimentConfig, SuiteConfig, experiments_of, load_config
from experiments.grid import expand_cases, grid_points
from serveplan.cli import main
from serveplan.errors import InputError

PLUGIN = """
from serveplan.registry import MethodResult, register, register_evaluator, register_family


@register_family("alpaserve", "_test_cfg_family", summary="test only")
def family(params, seed):
    return dict(params, seed=seed)


@register("alpaserve", "_test_cfg_method", kind="heuristic", summary="test only")
def method(inst, budget, param):
    return MethodResult("x", "feasible", inst, 1.0, verified=True)


@register_evaluator("alpaserve", "_test_cfg_eval", summary="test only")
def evaluator(inst, result, params, seed):
    return {"one": 1.0}
"""

GOOD = """
[experiment]
name = "cfg"
problem = "alpaserve"
seeds = 2
plugins = ["sp_harness_cfg_plugin"]

[instance]
family = "_test_cfg_family"
params = { base = 1 }

[grid]
product = { a = [1, 2, 3], "options.k" = [5, 6] }
zip = { b = [10, 20], "evaluator.scale" = [0.5, 1.0] }

[budget]
time_limit_s = 5
threads = 1

[[methods]]
name = "_test_cfg_method"

[[methods]]
name = "_test_cfg_method"
label = "other"
backend = "scip"
time_limit_s = 2

[evaluator]
name = "_test_cfg_eval"
params = { scale = 1.0 }
"""


@pytest.fixture(scope="module", autouse=True)
def plugin(tmp_path_factory):
    d = tmp_path_factory.mktemp("cfgplugin")
    (d / "sp_harness_cfg_plugin.py").write_text(PLUGIN)
    sys.path.insert(0, str(d))
    yield
    sys.path.remove(str(d))
    # Test-only registrations must not outlive this file (other tests list every registered method).
    from serveplan import registry

    for table in (registry._METHODS, registry._FAMILIES, registry._EVALUATORS):
        for key in [k for k in table if k[1].startswith("_test_cfg_")]:
            del table[key]
    sys.modules.pop("sp_harness_cfg_plugin", None)


def write(tmp_path, text: str, name: str = "exp.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def error_of(tmp_path, text: str) -> InputError:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_config(path)
    assert info.value.source == str(path)
    return info.value


def test_good_config_resolves_and_expands(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert isinstance(config, ExperimentConfig)
    assert config.seeds == (0, 1)
    m0, m1 = config.methods
    assert (m0.backend, m0.time_limit_s, m0.threads, m0.label) == ("highs", 5.0, 1, "_test_cfg_method")
    assert (m1.backend, m1.time_limit_s, m1.threads, m1.label) == ("scip", 2.0, 1, "other")
    points = grid_points(config)
    assert len(points) == 3 * 2 * 2
    assert points[0].axes == {"a": 1, "options.k": 5, "b": 10, "evaluator.scale": 0.5}
    assert points[0].instance_params == {"base": 1, "a": 1, "b": 10}
    assert points[0].evaluator_params == {"scale": 0.5}
    assert points[1].axes["b"] == 20 and points[1].evaluator_params == {"scale": 1.0}
    cases = expand_cases(config)
    assert len(cases) == 12 * 2 * 2
    assert len({c.case_id for c in cases}) == len(cases)
    assert cases[0].method.options == {"k": 5}
    # Case ids depend on what determines the result, not on the description.
    again = load_config(write(tmp_path, GOOD.replace("seeds = 2", 'seeds = 2\ndescription = "x"'), "b.toml"))
    assert [c.case_id for c in expand_cases(again)] == [c.case_id for c in cases]


@pytest.mark.parametrize(
    ("old", "new", "field", "hint"),
    [
        ("time_limit_s = 2", "time_limt_s = 2", "methods[1].time_limt_s", "time_limit_s"),
        ('problem = "alpaserve"', 'problem = "alpaserve"\nseed = 3', "experiment.seed", "seeds"),
        ("[evaluator]", "[evaluater]", "evaluater", "evaluator"),
        ("product = {", "prodct = {", "grid.prodct", "product"),
        ('name = "_test_cfg_eval"', 'name = "_test_cfg_evl"', "evaluator.name", "_test_cfg_eval"),
        ('label = "other"\n', 'label = "other"\nname2 = 1\n', "methods[1].name2", "name"),
        ('family = "_test_cfg_family"', 'family = "_test_cfg_famly"', "instance.family", "_test_cfg_family"),
        ('backend = "scip"', 'backend = "sicp"', "methods[1].backend", "scip"),
        ("seeds = 2", 'seeds = 2\nfigures = ["quickstrt"]', "experiment.figures[0]", "quickstart"),
    ],
)
def test_unknown_keys_and_names_suggest(tmp_path, old, new, field, hint):
    assert old in GOOD
    err = error_of(tmp_path, GOOD.replace(old, new, 1))
    assert err.field == field
    assert hint in str(err)


def test_unknown_method_name_suggests(tmp_path):
    text = GOOD.replace('name = "_test_cfg_method"\n\n[[methods]]', 'name = "_test_cfg_methd"\n\n[[methods]]')
    err = error_of(tmp_path, text)
    assert err.field == "methods[0].name" and "did you mean _test_cfg_method" in str(err)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("seeds = 2", "seeds = -1", "experiment.seeds"),
        ("seeds = 2", "seeds = [1, 1]", "experiment.seeds"),
        ("threads = 1", "threads = 0", "budget.threads"),
        ("time_limit_s = 5", 'time_limit_s = "5"', "budget.time_limit_s"),
        ('problem = "alpaserve"', 'problem = "chains"', "experiment.problem"),
        ('name = "cfg"', 'name = "a b"', "experiment.name"),
        ("b = [10, 20]", "b = [10]", "grid.zip"),
        ("a = [1, 2, 3]", "a = []", "grid.product.a"),
        ("a = [1, 2, 3]", "base = [1, 2]", "grid.product.base"),
        ("a = [1, 2, 3]", "seed = [1, 2]", "grid.product.seed"),
        ('"options.k"', '"solver.k"', "grid.product.solver.k"),
        ('"options.k"', '"budget.thread"', "grid.product.budget.thread"),
        ('label = "other"', 'label = "_test_cfg_method"', "methods[1]"),
        ('[evaluator]\nname = "_test_cfg_eval"', "[evaluator]", "evaluator.name"),
    ],
)
def test_bad_values_name_the_key(tmp_path, old, new, field):
    assert old in GOOD
    err = error_of(tmp_path, GOOD.replace(old, new, 1))
    assert err.field == field


def test_missing_tables_and_bad_toml(tmp_path):
    assert error_of(tmp_path, GOOD.replace("[instance]", "[instanc]")).field == "instanc"
    no_methods = "[experiment]\nname = 'x'\nproblem = 'chain'\n[instance]\nfamily='f'\n"
    assert error_of(tmp_path, no_methods).field == "methods"
    err = error_of(tmp_path, "[experiment\nname = 1")
    assert "not valid TOML" in str(err)
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_suite_includes_experiments(tmp_path):
    write(tmp_path, GOOD, "one.toml")
    write(tmp_path, GOOD.replace('name = "cfg"', 'name = "cfg2"'), "two.toml")
    suite = load_config(write(tmp_path, '[suite]\nname = "s"\ninclude = ["one.toml", "two.toml"]\n', "s.toml"))
    assert isinstance(suite, SuiteConfig)
    assert [e.name for e in suite.experiments] == ["cfg", "cfg2"]
    err = error_of(tmp_path, '[suite]\nname = "s"\ninclude = ["one.toml", "one.toml"]\n')
    assert err.field == "suite.include"
    err = error_of(tmp_path, '[suite]\nname = "s"\ninclude = ["one.toml"]\nfigurs = []\n')
    assert err.field == "suite.figurs" and "figures" in str(err)


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace("time_limit_s = 2", "time_limt_s = 2"))
    assert main(["run", str(path), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(path) in err and "methods[1].time_limt_s" in err and "did you mean 'time_limit_s'" in err


def test_every_shipped_config_and_figure_module_validates():
    from experiments.figures import figure_configs, list_figures, load_figure
    from serveplan.paths import REPO_ROOT

    configs = sorted((REPO_ROOT / "experiments" / "configs").glob("*.toml"))
    assert any(p.name == "quickstart.toml" for p in configs)
    for path in configs:
        for exp in experiments_of(load_config(path)):
            assert expand_cases(exp), path
    for fig in list_figures():
        module = load_figure(fig.name)
        assert callable(module.plot) and figure_configs(module), fig.name
