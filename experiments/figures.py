"""Figure modules: discovery, the rows they need, and drawing.

A figure module (``paper_figures/<name>.py``, or any importable module given by dotted path) exposes

- ``NAME``: str, the figure's name (by convention the module name);
- ``CONFIGS``: list of config paths (relative to the repository root) whose rows it plots;
- ``plot(rows: pandas.DataFrame, out_dir: Path) -> list[Path]``: draws from the rows only and
  writes PNG + PDF + the CSV it plotted (``paper_figures._common.save_figure`` does all three).

:func:`draw_figures` runs whatever cases of ``CONFIGS`` are missing first (unless told not to), then
calls ``plot`` with the concatenated rows of every experiment in ``CONFIGS``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pandas as pd

from experiments.config import ExperimentConfig, SuiteConfig, experiments_of, load_config
from serveplan.errors import InputError, UnknownNameError
from serveplan.paths import results_dir


@dataclass(frozen=True)
class FigureInfo:
    """A figure module's name, configs and one-line description."""

    name: str
    module: str
    configs: tuple[str, ...]
    summary: str


def list_figures() -> list[FigureInfo]:
    """Every module in ``paper_figures/`` (names starting with ``_`` are helpers, not figures)."""
    import paper_figures

    out = []
    for mod in pkgutil.iter_modules(paper_figures.__path__):
        if mod.name.startswith("_"):
            continue
        out.append(_info(importlib.import_module(f"paper_figures.{mod.name}")))
    return sorted(out, key=lambda f: f.name)


def _info(module: ModuleType) -> FigureInfo:
    for attr in ("NAME", "CONFIGS", "plot"):
        if not hasattr(module, attr):
            raise InputError(f"figure module {module.__name__} lacks {attr}", hint="see paper_figures/README.md")
    doc = (module.__doc__ or "").strip().splitlines()
    return FigureInfo(module.NAME, module.__name__, tuple(module.CONFIGS), doc[0] if doc else "")


def load_figure(name: str) -> ModuleType:
    """The module of figure ``name``: ``paper_figures.<name>``, else any importable module of that name."""
    importlib.invalidate_caches()
    candidates = [name] if "." in name else [f"paper_figures.{name}", name]
    for modname in candidates:
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (modname + ".").startswith(exc.name + "."):
                continue
            raise
        _info(module)
        return module
    import difflib

    known = [f.name for f in list_figures()]
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"known figures: {', '.join(known) or 'none'}"
    raise UnknownNameError("unknown figure", field="figure", value=name, hint=hint)


def figure_configs(module: ModuleType) -> list[ExperimentConfig]:
    """The experiment configs a figure reads (suites expanded)."""
    out: list[ExperimentConfig] = []
    for path in module.CONFIGS:
        cfg: ExperimentConfig | SuiteConfig = load_config(path)
        out.extend(experiments_of(cfg))
    return out


def draw_figures(
    names: list[str],
    *,
    out_dir: Path | None = None,
    results_root: Path | None = None,
    run_missing: bool = True,
    executor: str = "local",
    workers: int | None = None,
    progress: bool = False,
) -> list[Path]:
    """Draw the named figures; returns every file written.

    Parameters
    ----------
    names : list of str
        Figure names (see :func:`list_figures`) or dotted module paths.
    out_dir : Path, optional
        Where files go; default ``results/figures``.
    results_root : Path, optional
        Results folder; default :func:`serveplan.paths.results_dir`.
    run_missing : bool, default True
        Run the cases of the figure's configs that have no finished row yet.
    """
    from experiments.executors import make_executor
    from experiments.runner import load_rows, missing_cases, run_experiment

    root = results_root or results_dir()
    out = out_dir or root / "figures"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in names:
        module = load_figure(name)
        configs = figure_configs(module)
        if run_missing:
            todo = [c for c in configs if missing_cases(c, root)]
            if todo:
                ex = make_executor(executor, workers=workers)
                try:
                    for cfg in todo:
                        run_experiment(cfg, ex, progress=progress, root=root / cfg.name)
                finally:
                    ex.close()
        frames = [load_rows(c, root) for c in configs]
        frames = [f for f in frames if not f.empty]
        rows = pd.concat(frames, ignore_index=True, sort=False) if frames else pd.DataFrame()
        if rows.empty:
            raise InputError(
                f"figure {module.NAME} has no result rows", hint=f"run: serveplan run {' '.join(module.CONFIGS)}"
            )
        paths = [Path(p) for p in module.plot(rows, out)]
        missing = {".png", ".pdf", ".csv"} - {p.suffix for p in paths}
        if missing:
            raise InputError(
                f"figure {module.NAME} wrote no {', '.join(sorted(missing))} file",
                hint="plot() must write PNG, PDF and the CSV it plotted (paper_figures._common.save_figure)",
            )
        written.extend(paths)
    return written


def index_markdown(results_root: Path | None = None, cores: int | None = None) -> str:
    """``paper_figures/INDEX.md``: every figure with its configs, command and run time on this machine.

    The run time is estimated from the stored rows: the sum of the cases' wall times divided by the
    cores (the local executor runs one case per core), "not run yet" without rows.
    """
    import os

    from experiments.runner import load_rows

    root = results_root or results_dir()
    ncores = cores or os.cpu_count() or 1
    lines = [
        "# Figure index",
        "",
        "Every figure, the configs whose rows it plots, the command that produces it, and its run time on the",
        f"reference machine ({ncores} cores). `serveplan figures NAME` runs the missing experiments and draws;",
        "`serveplan figures NAME --no-run` only draws. Files go to `results/figures/NAME.{png,pdf,csv}`.",
        "Run time: the sum of the stored cases' wall times divided by the cores (one case per core), from",
        "the rows in `results/` when this page was generated (`serveplan figures --index`); a run with",
        "`--limit-cases` or fewer seeds shows its own cost. Add 10-30 s per run for starting worker processes",
        "and compiling the numba kernels.",
        "",
        "| figure | shows | configs | command | cases | run time |",
        "|---|---|---|---|---|---|",
    ]
    for info in list_figures():
        module = load_figure(info.name)
        try:
            configs = figure_configs(module)
        except InputError as exc:
            cfgs = ", ".join(info.configs)
            lines.append(f"| `{info.name}` | {info.summary} | {cfgs} | - | - | config error: {exc} |")
            continue
        total = sum(len(_cases(c)) for c in configs)
        rows = [load_rows(c, root) for c in configs]
        walls = [float(r["wall_s"].fillna(0).sum()) for r in rows if not r.empty and "wall_s" in r]
        done = sum(len(r) for r in rows)
        runtime = _duration(sum(walls) / ncores) if done else "not run yet"
        if done and done < total:
            runtime += f" ({done} of {total} cases)"
        cfgs = "<br>".join(f"`{c}`" for c in info.configs)
        command = f"`serveplan figures {info.name}`"
        lines.append(f"| `{info.name}` | {info.summary} | {cfgs} | {command} | {total} | {runtime} |")
    return "\n".join(lines) + "\n"


def _cases(config: ExperimentConfig) -> list:
    from experiments.grid import expand_cases

    return expand_cases(config)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
