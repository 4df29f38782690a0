"""AlpaServe instance families and the simulation evaluator, for the experiment harness.

Families (``fn(params, seed) -> AlpaInstance``; every parameter has a default):

``synthetic``
    Power-law rates split over the models, Gamma arrivals (AlpaServe section 6.3/6.5 setups).
    ``models`` (a preset ``s1``/``s2``/``s3``/``s3_small``/``bert104``, or a list of names with
    optional ``*count``, e.g. ``["bert-2.6b*8"]``; default ``"bert-2.6b*8"``), ``num_gpus`` (8),
    ``rate`` total requests/s (20), ``cv`` (4), ``slo_scale`` (5; SLO = scale x single-GPU latency),
    ``duration`` test seconds (200), ``train_duration`` (default: ``duration``), ``exponent`` (0.5),
    ``memory_budget_gb`` (13 GiB on V100; 13/16 of the memory of other GPUs), ``gpu`` (``v100-16gb``;
    ``h100-80gb``/``h200-141gb`` use the shipped measured tables), ``gpus_per_node`` (8), ``oracle`` (False:
    train and test are distinct draws; True: the test sample is also the training sample, AlpaServe's
    own setting, and the name says ``oracle``).
``maf_like``
    As ``synthetic`` with MAF-like per-window rates (:mod:`serveplan.workloads.maf`): adds
    ``interval`` (60), ``burst`` (1.0), ``rate_scale`` (1), ``cv_scale`` (1); defaults to ``s3_small``.
``azure_llm``
    Azure LLM 2023 arrival times (``trace`` code/conv, ``time_scale``); train = first half hour,
    test = second half hour unless ``oracle``.
``servegen``
    ServeGen client statistics (``folder``, ``start``, ``rate_scale``, ``cv_scale``).
``maf1`` / ``maf2``
    The Azure Functions 2019 / 2021 traces replayed as AlpaServe does (``trace`` = the user's files;
    ``maf2`` defaults to the shipped 199-request fixture).

Evaluator ``simulate``: SLO attainment of the method's placement on the **test** workload, latency
mean/P90/P99, the smallest per-model attainment, the number of GPUs used and whether the solution
verified. Simulator options come from ``params`` (``fixed_overhead_s``, ``stage_penalty``,
``dispatch``, ``max_batch_size``, ``warmup_s``). A method without a solution scores 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from serveplan.alpaserve.cluster import Cluster, Placement, TimeVaryingPlacement
from serveplan.alpaserve.instance import AlpaInstance
from serveplan.alpaserve.latency import GPUS, latency_model_for
from serveplan.alpaserve.model import ModelSpec, get_model
from serveplan.alpaserve.simulator import Simulator
from serveplan.alpaserve.verify import verify
from serveplan.errors import InputError
from serveplan.registry import MethodResult, register_evaluator, register_family
from serveplan.workloads.arrivals import TEST_STREAM, TRAIN_STREAM, gamma_workload, power_law_rates
from serveplan.workloads.azure_llm import azure_llm_workload
from serveplan.workloads.maf import maf_like_workload
from serveplan.workloads.servegen import servegen_workload
from serveplan.workloads.workload import Workload

MIXED6 = ("bert-6.7b", "moe-5.3b", "bert-2.6b", "moe-2.4b", "bert-1.3b", "moe-1.3b")
PRESETS: dict[str, list[str]] = {
    "s1": ["bert-1.3b*48"],
    "s2": ["bert-6.7b*48"],
    "s3": list(MIXED6) * 12,
    "s3_small": list(MIXED6) * 2,
    "bert104": ["bert-104b*4"],
}


def resolve_models(spec: str | list[str] | tuple[str, ...]) -> tuple[ModelSpec, ...]:
    """Model list from a preset name, ``"name*count"`` entries, or plain catalogue names."""
    entries = PRESETS.get(spec.lower(), [spec]) if isinstance(spec, str) else list(spec)
    out: list[ModelSpec] = []
    for e in entries:
        name, _, count = str(e).partition("*")
        try:
            k = int(count) if count else 1
        except ValueError:
            raise InputError("bad model count", field="models", value=e) from None
        if k < 1:
            raise InputError("model count must be >= 1", field="models", value=e)
        out.extend([get_model(name.strip())] * k)
    if not out:
        raise InputError("no models", field="models", value=spec)
    return tuple(out)


def _get(params: dict[str, Any], key: str, default: Any, kind: type) -> Any:
    v = params.get(key, default)
    try:
        return kind(v)
    except (TypeError, ValueError):
        raise InputError(f"parameter must be {kind.__name__}", field=key, value=v) from None


def _base(params: dict[str, Any], default_models: str) -> tuple[Cluster, tuple[ModelSpec, ...], Any, tuple[float, ...]]:
    models = resolve_models(params.get("models", default_models))
    gpu = str(params.get("gpu", "v100-16gb"))
    # default budget: AlpaServe's 13 GiB of a 16 GB V100, the same fraction of other GPUs' memory
    default_budget = 13.0 if gpu not in GPUS else round(GPUS[gpu].memory_gb * 13.0 / 16.0, 1)
    cluster = Cluster(
        _get(params, "num_gpus", 8, int),
        gpus_per_node=_get(params, "gpus_per_node", 8, int),
        memory_budget_gb=_get(params, "memory_budget_gb", default_budget, float),
        gpu=gpu,
    )
    lm = latency_model_for(cluster.gpu, cluster.gpus_per_node, params.get("profile", "auto"))
    slo_scale = _get(params, "slo_scale", 5.0, float)
    slo = tuple(slo_scale * lm.single_gpu_latency_s(m) for m in models)
    return cluster, models, lm, slo


def _label(kind: str, params: dict[str, Any], seed: int, oracle: bool) -> str:
    keys = ",".join(f"{k}={params[k]}" for k in sorted(params) if not isinstance(params[k], list | dict))
    return f"alpaserve/{kind}[{keys}]seed={seed}" + (",oracle" if oracle else "")


@register_family(
    "alpaserve", "synthetic", summary="power-law rates, Gamma arrivals (rate, cv), SLO scale, distinct train/test"
)
def synthetic(params: dict[str, Any], seed: int) -> AlpaInstance:
    """See the module docstring."""
    cluster, models, lm, slo = _base(params, "bert-2.6b*8")
    rate = _get(params, "rate", 20.0, float)
    cv = _get(params, "cv", 4.0, float)
    duration = _get(params, "duration", 200.0, float)
    train_duration = _get(params, "train_duration", duration, float)
    exponent = _get(params, "exponent", 0.5, float)
    oracle = bool(params.get("oracle", False))
    rates = power_law_rates(rate, len(models), exponent)
    spec = f"gamma:rate={rate},cv={cv},duration={duration},seed={seed},exponent={exponent}"
    test = gamma_workload(rates, cv, duration, seed, stream=TEST_STREAM, spec=spec + ",stream=0")
    if oracle:
        train = test
    else:
        train = gamma_workload(
            rates,
            cv,
            train_duration,
            seed,
            stream=TRAIN_STREAM,
            spec=f"gamma:rate={rate},cv={cv},duration={train_duration},seed={seed},exponent={exponent},stream=1",
        )
    return AlpaInstance(cluster, models, slo, lm, train, test, _label("synthetic", params, seed, oracle))


def _two_streams(
    family: str,
    params: dict[str, Any],
    seed: int,
    base: tuple[Cluster, tuple[ModelSpec, ...], Any, tuple[float, ...]],
    make: Callable[[int], Workload],
) -> AlpaInstance:
    """An instance whose test and train workloads are two streams of one generator (the same one with ``oracle``)."""
    cluster, models, lm, slo = base
    oracle = bool(params.get("oracle", False))
    test = make(TEST_STREAM)
    train = test if oracle else make(TRAIN_STREAM)
    return AlpaInstance(cluster, models, slo, lm, train, test, _label(family, params, seed, oracle))


@register_family(
    "alpaserve", "maf_like", summary="MAF-like per-window rates (power-law mean, log-normal bursts), Gamma arrivals"
)
def maf_like(params: dict[str, Any], seed: int) -> AlpaInstance:
    """See the module docstring."""
    cluster, models, lm, slo = _base(params, "s3_small")
    kw = {
        "total_rate": _get(params, "rate", 20.0, float),
        "cv": _get(params, "cv", 4.0, float),
        "duration_s": _get(params, "duration", 600.0, float),
        "interval_s": _get(params, "interval", 60.0, float),
        "exponent": _get(params, "exponent", 0.5, float),
        "rate_scale": _get(params, "rate_scale", 1.0, float),
        "cv_scale": _get(params, "cv_scale", 1.0, float),
        "burstiness": _get(params, "burst", 1.0, float),
    }
    return _two_streams(
        "maf_like",
        params,
        seed,
        (cluster, models, lm, slo),
        lambda stream: maf_like_workload(len(models), seed=seed, stream=stream, **kw),
    )


@register_family(
    "alpaserve", "azure_llm", summary="Azure LLM 2023 arrivals split over models; train = first half, test = second"
)
def azure_llm(params: dict[str, Any], seed: int) -> AlpaInstance:
    """See the module docstring."""
    cluster, models, lm, slo = _base(params, "bert-1.3b*8")
    w = azure_llm_workload(
        len(models),
        trace=str(params.get("trace", "conv")),
        exponent=_get(params, "exponent", 0.5, float),
        time_scale=_get(params, "time_scale", 1.0, float),
        seed=seed,
    )
    oracle = bool(params.get("oracle", False))
    half = w.duration_s / 2
    if oracle:
        train = test = w
    else:
        train, test = w.slice(0.0, half), w.slice(half, w.duration_s)
    return AlpaInstance(cluster, models, slo, lm, train, test, _label("azure_llm", params, seed, oracle))


@register_family(
    "alpaserve", "servegen", summary="ServeGen client window statistics replayed as per-window Gamma arrivals"
)
def servegen(params: dict[str, Any], seed: int) -> AlpaInstance:
    """See the module docstring."""
    cluster, models, lm, slo = _base(params, "bert-1.3b*8")
    kw = {
        "folder": str(params.get("folder", "reason/deepseek-r1")),
        "start_s": _get(params, "start", 36000.0, float),
        "duration_s": _get(params, "duration", 1200.0, float),
        "rate_scale": _get(params, "rate_scale", 0.1, float),
        "cv_scale": _get(params, "cv_scale", 1.0, float),
    }
    return _two_streams(
        "servegen",
        params,
        seed,
        (cluster, models, lm, slo),
        lambda stream: servegen_workload(len(models), seed=seed, stream=stream, **kw),
    )


@register_family("alpaserve", "maf1", summary="Azure Functions 2019 (user's files) replayed as AlpaServe's MAF1")
def maf1(params: dict[str, Any], seed: int) -> AlpaInstance:
    """Azure Functions 2019 per-minute trace (``trace``: folder or file of ``invocations_..._dNN.csv``).

    ``start_min`` (0) / ``end_min`` (60) slice the test window, ``train_start_min`` (default: the test
    window) the training window of the same length; ``interval`` (60), ``rate_scale`` (2e-3),
    ``cv_scale`` (4), ``mapping`` (stripe). The training sample is a distinct Gamma draw of its
    windows unless ``oracle``.
    """
    from serveplan.workloads.azure_functions import load_azure_2019, maf1_workload

    if "trace" not in params:
        raise InputError("maf1 needs the trace location", field="trace", hint="download Azure Functions 2019")
    cluster, models, lm, slo = _base(params, "s1")
    trace = load_azure_2019(str(params["trace"]))
    start = _get(params, "start_min", 0, int)
    end = _get(params, "end_min", 60, int)
    kw = {
        "interval_s": _get(params, "interval", 60.0, float),
        "rate_scale": _get(params, "rate_scale", 2e-3, float),
        "cv_scale": _get(params, "cv_scale", 4.0, float),
        "mapping": str(params.get("mapping", "stripe")),
        "seed": seed,
    }
    oracle = bool(params.get("oracle", False))
    test = maf1_workload(trace, len(models), start_min=start, end_min=end, stream=TEST_STREAM, **kw)
    tstart = _get(params, "train_start_min", start, int)
    train = (
        test
        if oracle
        else maf1_workload(
            trace, len(models), start_min=tstart, end_min=tstart + end - start, stream=TRAIN_STREAM, **kw
        )
    )
    return AlpaInstance(cluster, models, slo, lm, train, test, _label("maf1", params, seed, oracle))


@register_family("alpaserve", "maf2", summary="Azure Functions 2021 (user's file) replayed as AlpaServe's MAF2")
def maf2(params: dict[str, Any], seed: int) -> AlpaInstance:
    """Azure Functions 2021 invocation trace (``trace``: the CSV file; default the shipped 199-request fixture).

    ``start`` (0 s) / ``end`` (whole trace), ``interval`` (5400 s), ``rate_scale`` (1), ``cv_scale`` (1),
    ``mapping`` (stripe), ``vanilla`` (False: per-window Gamma refit; True: the raw arrivals, then
    train = test). The training sample is a distinct draw of the refitted windows unless ``oracle``.
    """
    from serveplan.paths import data_path
    from serveplan.workloads.azure_functions import load_azure_2021, maf2_workload

    cluster, models, lm, slo = _base(params, "s1")
    path = params.get("trace") or data_path("azure_functions_2021_microslice", "Azure2021_200.csv")
    trace = load_azure_2021(str(path))
    end = params.get("end")
    kw = {
        "start_s": _get(params, "start", 0.0, float),
        "end_s": None if end is None else float(end),
        "interval_s": _get(params, "interval", 5400.0, float),
        "rate_scale": _get(params, "rate_scale", 1.0, float),
        "cv_scale": _get(params, "cv_scale", 1.0, float),
        "mapping": str(params.get("mapping", "stripe")),
        "seed": seed,
        "vanilla": bool(params.get("vanilla", False)),
    }
    oracle = bool(params.get("oracle", False)) or kw["vanilla"]
    test = maf2_workload(trace, len(models), stream=TEST_STREAM, **kw)
    train = test if oracle else maf2_workload(trace, len(models), stream=TRAIN_STREAM, **kw)
    return AlpaInstance(cluster, models, slo, lm, train, test, _label("maf2", params, seed, oracle))


_SIM_OPTIONS = {
    "fixed_overhead_s": float,
    "stage_penalty": float,
    "dispatch": str,
    "max_batch_size": int,
    "warmup_s": float,
}


def simulator_options(params: dict[str, Any]) -> dict[str, Any]:
    """The simulator keyword arguments present in ``params``."""
    return {k: _get(params, k, None, t) for k, t in _SIM_OPTIONS.items() if k in params}


def evaluate_placement(
    instance: AlpaInstance,
    placement: Placement | TimeVaryingPlacement | None,
    workload: Workload | None = None,
    **options: Any,
) -> dict[str, float]:
    """Scalar metrics of ``placement`` on ``workload`` (default: the test workload)."""
    w = workload if workload is not None else instance.test
    if placement is None:
        return {
            "attainment": 0.0,
            "model_attainment_min": 0.0,
            "latency_mean_s": float("nan"),
            "latency_p90_s": float("nan"),
            "latency_p99_s": float("nan"),
            "num_requests": float(w.num_requests),
            "num_gpus_used": 0.0,
            "verified": 0.0,
        }
    rep = verify(instance, placement)
    res = Simulator(instance, w, **options).run(placement)
    ma = res.model_attainment
    return {
        "attainment": res.attainment,
        "model_attainment_min": float(np.nanmin(ma)) if np.any(np.isfinite(ma)) else float("nan"),
        "latency_mean_s": res.latency_mean_s,
        "latency_p90_s": res.latency_p90_s,
        "latency_p99_s": res.latency_p99_s,
        "num_requests": float(res.num_requests),
        "num_gpus_used": float(placement.num_gpus),
        "verified": float(rep.ok),
    }


@register_evaluator("alpaserve", "simulate", summary="SLO attainment and latency mean/P90/P99 on the test workload")
def simulate_evaluator(
    instance: AlpaInstance, result: MethodResult, params: dict[str, Any], seed: int
) -> dict[str, float]:
    """See the module docstring."""
    return evaluate_placement(instance, result.solution, **simulator_options(params))
