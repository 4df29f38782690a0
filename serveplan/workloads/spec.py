"""Workload specs: one-line strings that generate a workload, e.g. ``gamma:rate=20,cv=4,duration=200,seed=1``.

Grammar: ``KIND:key=value,key=value,...``. Kinds and keys:

``gamma``
    ``rate`` (total requests/s, default 10), ``cv`` (default 1), ``duration`` (s, default 60),
    ``seed`` (default 0), ``exponent`` (power-law rate split, default 0.5; 0 = uniform),
    ``stream`` (0 = test sample, 1 = train sample, default 0), ``stationary`` (1: each process starts
    in equilibrium, default; 0: fresh start as AlpaServe's generator, see
    :func:`serveplan.workloads.arrivals.gamma_arrivals`).
``maf``
    MAF-like synthetic trace (see :mod:`serveplan.workloads.maf`): ``rate``, ``cv``, ``duration``,
    ``interval`` (window s, default 60), ``seed``, ``exponent``, ``stream``, ``rate_scale``, ``cv_scale``,
    ``burst`` (window-to-window rate variability, default 1), ``stationary``.
``file``
    ``path`` of a ``.npz``/``.csv`` workload (``file:path=trace.npz``).
"""

from __future__ import annotations

from typing import Any

from serveplan.errors import InputError
from serveplan.workloads.workload import Workload

_DEFAULTS: dict[str, dict[str, Any]] = {
    "gamma": {"rate": 10.0, "cv": 1.0, "duration": 60.0, "seed": 0, "exponent": 0.5, "stream": 0, "stationary": 1},
    "maf": {
        "rate": 10.0,
        "cv": 4.0,
        "duration": 600.0,
        "interval": 60.0,
        "seed": 0,
        "exponent": 0.5,
        "stream": 0,
        "rate_scale": 1.0,
        "cv_scale": 1.0,
        "burst": 1.0,
        "stationary": 1,
    },
    "file": {"path": ""},
}


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``KIND:k=v,...`` into the kind and a dict with defaults filled in (numbers converted)."""
    if not isinstance(spec, str) or not spec.strip():
        raise InputError("empty workload spec", field="workload", value=spec)
    kind, _, rest = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in _DEFAULTS:
        raise InputError("unknown workload kind", field="workload", value=kind, hint=f"use one of {sorted(_DEFAULTS)}")
    params = dict(_DEFAULTS[kind])
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, val = item.partition("=")
        key = key.strip()
        if not eq or key not in params:
            raise InputError(
                f"unknown or malformed key in {kind} spec", field="workload", value=item, hint=f"keys: {sorted(params)}"
            )
        default = params[key]
        try:
            params[key] = type(default)(val.strip()) if not isinstance(default, str) else val.strip()
        except ValueError:
            raise InputError(f"bad value for {key}", field=f"workload.{key}", value=val) from None
    return kind, params


def workload_from_spec(spec: str, num_models: int) -> Workload:
    """Generate (or load) the workload a spec describes, for ``num_models`` models."""
    from serveplan.workloads.arrivals import gamma_workload, power_law_rates
    from serveplan.workloads.maf import maf_like_workload

    kind, p = parse_spec(spec)
    if kind == "file":
        if not p["path"]:
            raise InputError("file spec needs path=...", field="workload.path")
        return Workload.load(p["path"], num_models=num_models)
    if p["duration"] <= 0:
        raise InputError("duration must be > 0", field="workload.duration", value=p["duration"])
    if kind == "gamma":
        rates = power_law_rates(p["rate"], num_models, p["exponent"])
        return gamma_workload(
            rates, p["cv"], p["duration"], p["seed"], stream=p["stream"], spec=spec, stationary=bool(p["stationary"])
        )
    w = maf_like_workload(
        num_models,
        total_rate=p["rate"],
        cv=p["cv"],
        duration_s=p["duration"],
        interval_s=p["interval"],
        seed=p["seed"],
        exponent=p["exponent"],
        stream=p["stream"],
        rate_scale=p["rate_scale"],
        cv_scale=p["cv_scale"],
        burstiness=p["burst"],
        stationary=bool(p["stationary"]),
    )
    return Workload(w.arrival_s, w.model_id, w.duration_s, w.num_models, spec)


def with_stream(spec: str, stream: int) -> str:
    """The same spec drawing sample ``stream`` (0 test, 1 train)."""
    kind, _p = parse_spec(spec)
    if kind == "file":
        return spec
    _, _, rest = spec.partition(":")
    items = [s for s in rest.split(",") if s.strip() and not s.strip().startswith("stream=")]
    items.append(f"stream={int(stream)}")
    return f"{kind}:{','.join(items)}"
