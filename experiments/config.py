"""Experiment configs: the TOML schema, its validation, and the resolved form the harness runs.

A config file is either one **experiment** (an ``[experiment]`` table) or a **suite** (a ``[suite]``
table whose ``include`` lists experiment files, run one after the other). Every key is checked: an
unknown key or a bad value raises :class:`serveplan.errors.InputError` naming the file, the key path
(``methods[1].time_limit_s``) and, for misspelt keys or names, the closest valid ones.

The full reference of keys is in ``docs/harness.md``; the schema below is its executable form.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serveplan.errors import InputError, UnknownNameError
from serveplan.paths import REPO_ROOT
from serveplan.registry import PROBLEMS

# Columns every result row has; a grid axis or metric may not take one of these names.
RESERVED_COLUMNS = frozenset(
    {
        "experiment", "config_hash", "case_id", "point_id", "seed", "method", "label", "problem", "family",
        "evaluator", "backend", "threads", "time_limit_s", "rel_gap", "params", "options", "status", "verified",
        "violations", "objective", "bound", "gap", "method_wall_s", "wall_s", "message", "serveplan_version",
        "python_version", "numpy_version", "solver", "solver_version", "host", "finished_at", "info",
    }
)  # fmt: skip
BUDGET_KEYS = ("backend", "time_limit_s", "threads", "rel_gap")
AXIS_PREFIXES = ("instance.", "evaluator.", "budget.", "options.")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# --------------------------------------------------------------------------------------------------
# Value checkers (shared with other TOML schemas, e.g. bench suites): each returns the normalised
# value or raises ValueError with the reason.


def nonempty_str(v: Any) -> str:
    """A non-empty string."""
    if not isinstance(v, str) or not v:
        raise ValueError("expected a non-empty string")
    return v


def name_str(v: Any) -> str:
    """A name usable as a folder name."""
    v = nonempty_str(v)
    if not _NAME_RE.match(v):
        raise ValueError("expected a name of letters, digits, '_', '-' and '.' (it names a results folder)")
    return v


def text_str(v: Any) -> str:
    """Any string."""
    if not isinstance(v, str):
        raise ValueError("expected a string")
    return v


def positive_number(v: Any) -> float:
    """A finite number > 0."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        raise ValueError("expected a positive number")
    return float(v)


def nonnegative_number(v: Any) -> float:
    """A finite number >= 0."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        raise ValueError("expected a number >= 0")
    return float(v)


def positive_int(v: Any) -> int:
    """An integer > 0 (booleans refused)."""
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError("expected a positive integer")
    return v


def toml_table(v: Any) -> dict[str, Any]:
    """A TOML table (a dict)."""
    if not isinstance(v, dict):
        raise ValueError("expected a table")
    return dict(v)


def str_list(v: Any) -> tuple[str, ...]:
    """A list of distinct non-empty strings."""
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise ValueError("expected a list of non-empty strings")
    if len(set(v)) != len(v):
        raise ValueError("expected distinct entries")
    return tuple(v)


def seed_list(v: Any) -> tuple[int, ...]:
    """Seeds: a count n (seeds 0..n-1) or a list of distinct integers >= 0."""
    if isinstance(v, int) and not isinstance(v, bool):
        if v <= 0:
            raise ValueError("a seed count must be positive")
        return tuple(range(v))
    if isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return tuple(v)
    raise ValueError("expected a seed count (positive integer) or a non-empty list of integers >= 0")


def problem_name(v: Any) -> str:
    """One of serveplan's problems."""
    v = nonempty_str(v)
    if v not in PROBLEMS:
        raise ValueError(f"expected one of {', '.join(PROBLEMS)}")
    return v


def backend_name(v: Any) -> str:
    """A solver backend name (available or not)."""
    from serveplan.solvers import BACKENDS

    v = nonempty_str(v)
    if v not in BACKENDS:
        close = difflib.get_close_matches(v, list(BACKENDS), n=1)
        raise ValueError(f"unknown backend; {'did you mean ' + repr(close[0]) if close else 'choose one of'} "
                         f"({', '.join(sorted(BACKENDS))})")  # fmt: skip
    return v


@dataclass(frozen=True)
class Key:
    """One key of a table: how to check its value, and whether it must be present."""

    check: Callable[[Any], Any]
    required: bool = False
    doc: str = ""


EXPERIMENT_KEYS = {
    "name": Key(name_str, True, "names the results folder results/<name>/"),
    "problem": Key(problem_name, True, "chain or alpaserve"),
    "description": Key(text_str, False, "free text"),
    "seeds": Key(seed_list, False, "count (0..n-1) or list of seeds; default 1"),
    "metrics": Key(str_list, False, "metrics `serveplan show` and figures look at first"),
    "figures": Key(str_list, False, "paper_figures modules drawn after the run"),
    "plugins": Key(str_list, False, "modules imported before running (they register methods/families)"),
    "case_timeout_s": Key(positive_number, False, "hard wall-clock limit of one case (instance, method, evaluator)"),
}
INSTANCE_KEYS = {"family": Key(nonempty_str, True, "registered instance family"), "params": Key(toml_table)}
GRID_KEYS = {"product": Key(toml_table), "zip": Key(toml_table)}
BUDGET_TABLE_KEYS = {
    "backend": Key(backend_name),
    "time_limit_s": Key(positive_number),
    "threads": Key(positive_int),
    "rel_gap": Key(nonnegative_number),
}
METHOD_KEYS = {
    "name": Key(nonempty_str, True),
    "label": Key(nonempty_str),
    "options": Key(toml_table),
    **BUDGET_TABLE_KEYS,
}
EVALUATOR_KEYS = {"name": Key(nonempty_str, True), "params": Key(toml_table)}
EXPERIMENT_TOP = {
    "experiment": Key(toml_table, True),
    "instance": Key(toml_table, True),
    "grid": Key(toml_table),
    "budget": Key(toml_table),
    "methods": Key(lambda v: v, True),
    "evaluator": Key(toml_table),
}
SUITE_KEYS = {
    "name": Key(name_str, True),
    "description": Key(text_str),
    "include": Key(str_list, True, "experiment config files, relative to this file"),
    "figures": Key(str_list),
}


def _suggest(word: str, choices: list[str], what: str = "valid keys") -> str | None:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return f"{what}: {', '.join(choices)}" if choices else None


def check_table(data: dict[str, Any], schema: dict[str, Key], path: str, source: str) -> dict[str, Any]:
    """Check one table against its schema; returns the normalised values of the keys present."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        if key not in schema:
            raise InputError("unknown key", source=source, field=where, hint=_suggest(key, list(schema)))
        try:
            out[key] = schema[key].check(value)
        except ValueError as exc:
            raise InputError(str(exc), source=source, field=where, value=value) from None
    for key, spec in schema.items():
        if spec.required and key not in data:
            raise InputError("missing required key", source=source, field=f"{path}.{key}" if path else key)
    return out


# --------------------------------------------------------------------------------------------------
# The resolved forms.


@dataclass(frozen=True)
class MethodSpec:
    """One ``[[methods]]`` entry with the budget defaults filled in."""

    name: str
    label: str
    backend: str
    time_limit_s: float | None
    threads: int | None
    rel_gap: float | None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the resolved config and hashing)."""
        return {
            "name": self.name,
            "label": self.label,
            "backend": self.backend,
            "time_limit_s": self.time_limit_s,
            "threads": self.threads,
            "rel_gap": self.rel_gap,
            "options": self.options,
        }


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment: what to build, which methods to run, how to measure them.

    Attributes
    ----------
    name, problem, description : str
    source : str
        The file it came from.
    family : str
        Registered instance family of ``problem``.
    instance_params : dict
        Parameters every instance gets (grid axes add to them).
    product, zipped : dict of str -> list
        Grid axes: the cartesian product of ``product`` times the rows of ``zipped``.
    methods : tuple of MethodSpec
    seeds : tuple of int
    metrics : tuple of str
    evaluator : str or None
    evaluator_params : dict
    figures, plugins : tuple of str
    case_timeout_s : float or None
        Hard limit of one case; a case past it is stored as an error (the method's own time limit is
        the budget; this catches methods and evaluators that overrun it).
    """

    name: str
    problem: str
    description: str
    source: str
    family: str
    instance_params: dict[str, Any]
    product: dict[str, list[Any]]
    zipped: dict[str, list[Any]]
    methods: tuple[MethodSpec, ...]
    seeds: tuple[int, ...]
    metrics: tuple[str, ...]
    evaluator: str | None
    evaluator_params: dict[str, Any]
    figures: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()
    case_timeout_s: float | None = None

    @property
    def axes(self) -> list[str]:
        """Grid axis names, product axes first."""
        return [*self.product, *self.zipped]

    def to_dict(self) -> dict[str, Any]:
        """The resolved config (every default filled in), as stored in ``resolved.json``."""
        return {
            "experiment": {
                "name": self.name,
                "problem": self.problem,
                "description": self.description,
                "seeds": list(self.seeds),
                "metrics": list(self.metrics),
                "figures": list(self.figures),
                "plugins": list(self.plugins),
                "case_timeout_s": self.case_timeout_s,
            },
            "instance": {"family": self.family, "params": self.instance_params},
            "grid": {"product": self.product, "zip": self.zipped},
            "methods": [m.to_dict() for m in self.methods],
            "evaluator": {"name": self.evaluator, "params": self.evaluator_params},
            "source": self.source,
        }

    def config_hash(self) -> str:
        """Hash of the resolved config (the source path excluded)."""
        d = self.to_dict()
        d.pop("source")
        return stable_hash(d)


@dataclass(frozen=True)
class SuiteConfig:
    """A config that runs several experiment configs in turn (e.g. one per problem)."""

    name: str
    description: str
    source: str
    experiments: tuple[ExperimentConfig, ...]
    figures: tuple[str, ...] = ()


def stable_hash(obj: Any, length: int = 16) -> str:
    """Short sha256 of the canonical JSON of ``obj`` (sorted keys): equal data, equal hash."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def resolve_config_path(path: str | Path) -> Path:
    """``path`` as given if it exists, else relative to the repository root (for figure modules' CONFIGS)."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    alt = REPO_ROOT / p
    return alt if alt.exists() else p


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a missing file or a syntax error is an :class:`InputError` naming the file."""
    if not path.exists():
        raise InputError("file not found", source=str(path))
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", source=str(path)) from None


def load_config(path: str | Path, *, check_names: bool = True) -> ExperimentConfig | SuiteConfig:
    """Read and validate an experiment or suite config.

    Parameters
    ----------
    path : str or Path
        The TOML file.
    check_names : bool, default True
        Also check family, method and evaluator names against the registry (after importing the
        config's plugins).

    Raises
    ------
    InputError
        Naming the file, the key path, the offending value and a suggestion.
    """
    path = resolve_config_path(path)
    data = read_toml(path)
    source = str(path)
    if "suite" in data:
        extra = [k for k in data if k != "suite"]
        if extra:
            raise InputError("a suite config holds only the [suite] table", source=source, field=extra[0])
        suite = check_table(toml_table(data["suite"]), SUITE_KEYS, "suite", source)
        experiments = []
        for i, inc in enumerate(suite["include"]):
            inc_path = path.parent / inc
            if not inc_path.exists():
                raise InputError("included config not found", source=source, field=f"suite.include[{i}]", value=inc)
            sub = load_config(inc_path, check_names=check_names)
            if isinstance(sub, SuiteConfig):
                raise InputError("a suite may include experiments only", source=source, field=f"suite.include[{i}]")
            experiments.append(sub)
        names = [e.name for e in experiments]
        if len(set(names)) != len(names):
            raise InputError("included experiments must have distinct names", source=source, field="suite.include")
        if check_names:
            check_figure_names(suite.get("figures", ()), source, "suite")
        return SuiteConfig(
            name=suite["name"],
            description=suite.get("description", ""),
            source=source,
            experiments=tuple(experiments),
            figures=suite.get("figures", ()),
        )
    return _experiment_from_dict(data, source, check_names)


def _experiment_from_dict(data: dict[str, Any], source: str, check_names: bool) -> ExperimentConfig:
    top = check_table(data, EXPERIMENT_TOP, "", source)
    exp = check_table(top["experiment"], EXPERIMENT_KEYS, "experiment", source)
    inst = check_table(top["instance"], INSTANCE_KEYS, "instance", source)
    grid = check_table(top.get("grid", {}), GRID_KEYS, "grid", source)
    budget = check_table(top.get("budget", {}), BUDGET_TABLE_KEYS, "budget", source)
    instance_params = inst.get("params", {})

    product = _check_axes(grid.get("product", {}), "grid.product", source)
    zipped = _check_axes(grid.get("zip", {}), "grid.zip", source)
    lengths = {len(v) for v in zipped.values()}
    if len(lengths) > 1:
        raise InputError(
            "zipped axes must have the same length",
            source=source,
            field="grid.zip",
            value={k: len(v) for k, v in zipped.items()},
        )
    for name in product:
        if name in zipped:
            raise InputError("axis appears in both grid.product and grid.zip", source=source, field=f"grid.zip.{name}")
    for section, axes in (("grid.product", product), ("grid.zip", zipped)):
        for name in axes:
            target = name.removeprefix("instance.") if "." in name else name
            if ("." not in name or name.startswith("instance.")) and target in instance_params:
                raise InputError(
                    "axis also set in instance.params",
                    source=source,
                    field=f"{section}.{name}",
                    hint="set a parameter in one place: the grid or instance.params",
                )
            if name.startswith("budget.") and name.removeprefix("budget.") not in BUDGET_KEYS:
                raise InputError(
                    "unknown budget axis",
                    source=source,
                    field=f"{section}.{name}",
                    hint=_suggest(name.removeprefix("budget."), list(BUDGET_KEYS)),
                )

    methods_raw = top["methods"]
    if not isinstance(methods_raw, list) or not methods_raw or not all(isinstance(m, dict) for m in methods_raw):
        raise InputError("expected one or more [[methods]] tables", source=source, field="methods")
    methods = []
    for i, raw in enumerate(methods_raw):
        m = check_table(raw, METHOD_KEYS, f"methods[{i}]", source)
        methods.append(
            MethodSpec(
                name=m["name"],
                label=m.get("label", m["name"]),
                backend=m.get("backend", budget.get("backend", "highs")),
                time_limit_s=m.get("time_limit_s", budget.get("time_limit_s")),
                threads=m.get("threads", budget.get("threads")),
                rel_gap=m.get("rel_gap", budget.get("rel_gap")),
                options=m.get("options", {}),
            )
        )
    labels = [m.label for m in methods]
    for i, lab in enumerate(labels):
        if lab in labels[:i]:
            raise InputError(
                "two methods share a label",
                source=source,
                field=f"methods[{i}]",
                value=lab,
                hint="give each entry a distinct `label`",
            )

    evaluator = None
    evaluator_params: dict[str, Any] = {}
    if "evaluator" in top:
        ev = check_table(top["evaluator"], EVALUATOR_KEYS, "evaluator", source)
        evaluator, evaluator_params = ev["name"], ev.get("params", {})

    config = ExperimentConfig(
        name=exp["name"],
        problem=exp["problem"],
        description=exp.get("description", ""),
        source=source,
        family=inst["family"],
        instance_params=instance_params,
        product=product,
        zipped=zipped,
        methods=tuple(methods),
        seeds=exp.get("seeds", (0,)),
        metrics=exp.get("metrics", ()),
        evaluator=evaluator,
        evaluator_params=evaluator_params,
        figures=exp.get("figures", ()),
        plugins=exp.get("plugins", ()),
        case_timeout_s=exp.get("case_timeout_s"),
    )
    if check_names:
        check_registry_names(config)
    return config


def _check_axes(axes: dict[str, Any], path: str, source: str) -> dict[str, list[Any]]:
    out = {}
    for name, values in axes.items():
        where = f"{path}.{name}"
        if not isinstance(values, list) or not values:
            raise InputError("a grid axis needs a non-empty list of values", source=source, field=where, value=values)
        if "." in name and not name.startswith(AXIS_PREFIXES):
            raise InputError(
                "unknown axis target",
                source=source,
                field=where,
                hint=f"use a plain name (an instance parameter) or one of the prefixes {', '.join(AXIS_PREFIXES)}",
            )
        if name in RESERVED_COLUMNS:
            raise InputError("axis name is a reserved result column", source=source, field=where)
        out[name] = values
    return out


def import_plugins(plugins: tuple[str, ...] | list[str], source: str | None = None) -> None:
    """Import the modules a config names in ``experiment.plugins`` (they register methods/families)."""
    import importlib

    for i, mod in enumerate(plugins):
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            raise InputError(f"cannot import plugin: {exc}", source=source, field=f"experiment.plugins[{i}]") from None


def check_registry_names(config: ExperimentConfig) -> None:
    """Check the family, method and evaluator names against the registry (suggesting close ones)."""
    from serveplan.registry import get_evaluator, get_family, get_method

    import_plugins(config.plugins, config.source)
    check_figure_names(config.figures, config.source, "experiment")

    def relabel(exc: UnknownNameError, where: str) -> InputError:
        return exc.relabel(source=config.source, field=where)

    try:
        get_family(config.problem, config.family)
    except UnknownNameError as exc:
        raise relabel(exc, "instance.family") from None
    for i, m in enumerate(config.methods):
        try:
            get_method(config.problem, m.name)
        except UnknownNameError as exc:
            raise relabel(exc, f"methods[{i}].name") from None
    if config.evaluator is not None:
        try:
            get_evaluator(config.problem, config.evaluator)
        except UnknownNameError as exc:
            raise relabel(exc, "evaluator.name") from None


def check_figure_names(names: tuple[str, ...], source: str, where: str) -> None:
    """Each figure name must be a module of ``paper_figures`` (or an importable module)."""
    import importlib.util
    import pkgutil

    import paper_figures

    known = sorted(m.name for m in pkgutil.iter_modules(paper_figures.__path__) if not m.name.startswith("_"))
    for i, name in enumerate(names):
        if name in known:
            continue
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise InputError(
                "unknown figure",
                source=source,
                field=f"{where}.figures[{i}]",
                value=name,
                hint=_suggest(name, known, "known figures"),
            )


def experiments_of(config: ExperimentConfig | SuiteConfig) -> tuple[ExperimentConfig, ...]:
    """The experiments a config runs (one, or a suite's)."""
    return config.experiments if isinstance(config, SuiteConfig) else (config,)
