"""Arrival processes and trace loaders; every workload is numpy arrays, never an object per request.

* :class:`Workload`: sorted ``arrival_s`` (float64) and ``model_id`` (int32) arrays, ``duration_s``,
  ``num_models``; ``.npz``/``.csv`` files.
* :mod:`~serveplan.workloads.arrivals`: Gamma renewal arrivals (rate, CV), power-law rate split,
  per-window Gamma replay.
* :mod:`~serveplan.workloads.maf`: MAF-like synthetic traces.
* :mod:`~serveplan.workloads.spec`: one-line workload specs (``gamma:rate=20,cv=4,duration=200,seed=1``).
* Trace loaders: :mod:`~serveplan.workloads.azure_functions` (2019 per-minute, 2021 timestamps),
  :mod:`~serveplan.workloads.azure_llm` (Azure LLM 2023), :mod:`~serveplan.workloads.servegen`.

Train and test samples of a generated workload are distinct draws (``stream`` 1 and 0); using the
same sample for both is an explicit option of the instance families (``oracle=True``).
"""

from serveplan.workloads.arrivals import gamma_arrivals, gamma_workload, power_law_rates, windowed_gamma_workload
from serveplan.workloads.spec import parse_spec, workload_from_spec
from serveplan.workloads.workload import Workload

__all__ = [
    "Workload",
    "gamma_arrivals",
    "gamma_workload",
    "parse_spec",
    "power_law_rates",
    "windowed_gamma_workload",
    "workload_from_spec",
]
