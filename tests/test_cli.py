"""The serveplan entry point: version, backend listing, clean errors."""

from __future__ import annotations

import json
import subprocess
import sys

from serveplan import __version__
from serveplan.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert f"serveplan {__version__}" in capsys.readouterr().out


def test_solvers_lists_core_backends_available(capsys):
    assert main(["solvers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = {line.split()[0]: line.split()[1] for line in lines[1:]}
    for name in ("highs", "scip", "cpsat", "highs-mathopt"):
        assert table[name] == "yes"
    assert table["gurobi"] in ("yes", "no") and table["cuopt"] in ("yes", "no")


def test_solvers_json(capsys):
    assert main(["solvers", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["highs"]["available"] and by_name["highs"]["version"] == "1.12.0"
    if not by_name["gurobi"]["available"]:
        assert "serveplan[gurobi]" in by_name["gurobi"]["install"]


def test_console_script_runs():
    out = subprocess.run(["serveplan", "solvers"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "highs" in out.stdout


def test_unknown_subcommand_fails():
    out = subprocess.run([sys.executable, "-m", "serveplan.cli", "no-such-command"], capture_output=True, text=True)
    assert out.returncode != 0
    assert "invalid choice" in out.stderr


def test_input_error_relabel_keeps_what_is_not_replaced():
    from serveplan.errors import InputError

    err = InputError("must be positive", field="rate", value=-1, hint="give a rate > 0")
    moved = err.relabel(source="plan.toml", field="workload.rate")
    assert (moved.message, moved.source, moved.field, moved.value, moved.hint) == (
        "must be positive", "plan.toml", "workload.rate", -1, "give a rate > 0"
    )  # fmt: skip
    assert str(moved) == "plan.toml, field 'workload.rate': must be positive (got -1); give a rate > 0"
    dropped = err.relabel(hint=None, value=...)
    assert str(dropped) == "field 'rate': must be positive" and err.hint == "give a rate > 0"
