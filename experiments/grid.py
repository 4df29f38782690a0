"""Grid expansion: an experiment config becomes the ordered list of cases to run.

A **grid point** is one combination of axis values: the cartesian product of ``grid.product`` times
the rows of ``grid.zip`` (the i-th values of every zipped axis go together). A **case** is a grid
point, a seed and a method. Its ``case_id`` hashes exactly what determines its result (problem,
family, instance and evaluator parameters, method, label, budget, options, seed), so a rerun of an
edited config reruns only the cases the edit changed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

from experiments.config import ExperimentConfig, MethodSpec, stable_hash


@dataclass(frozen=True)
class GridPoint:
    """One combination of axis values, and what it sets."""

    axes: dict[str, Any]
    instance_params: dict[str, Any]
    evaluator_params: dict[str, Any]
    budget: dict[str, Any]
    options: dict[str, Any]

    @property
    def point_id(self) -> str:
        """Hash of the axis values."""
        return stable_hash(self.axes, 12)


@dataclass(frozen=True)
class Case:
    """One unit of work: build the instance, run the method, evaluate, return one row.

    Everything a worker process needs travels in this object (it is pickled to the worker).
    """

    experiment: str
    config_hash: str
    problem: str
    family: str
    instance_params: dict[str, Any]
    evaluator: str | None
    evaluator_params: dict[str, Any]
    method: MethodSpec
    seed: int
    axes: dict[str, Any]
    point_id: str
    plugins: tuple[str, ...] = ()
    timeout_s: float | None = None
    case_id: str = field(default="")

    def identity(self) -> dict[str, Any]:
        """What the result depends on (hashed into ``case_id``)."""
        return {
            "problem": self.problem,
            "family": self.family,
            "instance_params": self.instance_params,
            "evaluator": self.evaluator,
            "evaluator_params": self.evaluator_params,
            "method": self.method.to_dict(),
            "seed": self.seed,
        }


def grid_points(config: ExperimentConfig) -> list[GridPoint]:
    """All grid points, in a fixed order (product axes vary slowest-first as written, then zip rows)."""
    prod_names = list(config.product)
    prod_combos = list(itertools.product(*(config.product[n] for n in prod_names))) if prod_names else [()]
    zip_names = list(config.zipped)
    zip_rows = list(zip(*(config.zipped[n] for n in zip_names), strict=True)) if zip_names else [()]
    points = []
    for combo in prod_combos:
        for zrow in zip_rows:
            axes = dict(zip(prod_names, combo, strict=True)) | dict(zip(zip_names, zrow, strict=True))
            points.append(_apply_axes(config, axes))
    return points


def _apply_axes(config: ExperimentConfig, axes: dict[str, Any]) -> GridPoint:
    instance = dict(config.instance_params)
    evaluator = dict(config.evaluator_params)
    budget: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for name, value in axes.items():
        target, _, key = name.partition(".") if "." in name else ("instance", "", name)
        {"instance": instance, "evaluator": evaluator, "budget": budget, "options": options}[target][key] = value
    return GridPoint(axes, instance, evaluator, budget, options)


def expand_cases(config: ExperimentConfig) -> list[Case]:
    """Every case of the experiment, ordered by grid point, then seed, then method."""
    chash = config.config_hash()
    cases = []
    for point in grid_points(config):
        for seed in config.seeds:
            for spec in config.methods:
                method = spec
                if point.budget or point.options:
                    method = MethodSpec(
                        name=spec.name,
                        label=spec.label,
                        backend=point.budget.get("backend", spec.backend),
                        time_limit_s=point.budget.get("time_limit_s", spec.time_limit_s),
                        threads=point.budget.get("threads", spec.threads),
                        rel_gap=point.budget.get("rel_gap", spec.rel_gap),
                        options=spec.options | point.options,
                    )
                case = Case(
                    experiment=config.name,
                    config_hash=chash,
                    problem=config.problem,
                    family=config.family,
                    instance_params=point.instance_params,
                    evaluator=config.evaluator,
                    evaluator_params=point.evaluator_params,
                    method=method,
                    seed=seed,
                    axes=point.axes,
                    point_id=point.point_id,
                    plugins=config.plugins,
                    timeout_s=config.case_timeout_s,
                )
                cases.append(_with_id(case))
    return cases


def _with_id(case: Case) -> Case:
    return replace(case, case_id=stable_hash(case.identity()))
