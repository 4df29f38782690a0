"""A server-chain composition instance: heterogeneous servers, L identical blocks, a Poisson load.

Notation follows Sun, He, Hou 2026 ("Serving chain-structured jobs with large memory footprints"),
system model: server j has memory M_j (``memory_gb``), a per-job communication time tau^c_j
(``comm_time_s``, summed over all tokens of a job) and a per-block computation time tau^p_j
(``compute_time_s``, one block processing all tokens of one job). The service has L blocks
(``num_blocks``), each needing s_m GB for parameters (``block_memory_gb``) and s_c GB of cache per
concurrent job (``cache_memory_gb``). Jobs arrive at rate lambda (``arrival_rate``, per second) and
placements are sized for a target load rho_bar (``target_load``): total service rate >= lambda/rho_bar.

Times are seconds. The JSON form is documented by ``docs/schemas/chain_instance.schema.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from serveplan.errors import InputError

FORMAT = "serveplan.chain_instance"
FORMAT_VERSION = 1


def _number(value: Any, field: str, *, positive: bool = True, allow_zero: bool = False) -> float:
    """``value`` as a finite float, or an :class:`InputError` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InputError("must be a number", field=field, value=value)
    x = float(value)
    if not math.isfinite(x):
        raise InputError("must be finite", field=field, value=value)
    if positive and (x < 0 or (x == 0 and not allow_zero)):
        raise InputError("must be positive" if not allow_zero else "must be non-negative", field=field, value=value)
    return x


def _frozen_array(values: list[float]) -> np.ndarray:
    """A read-only float array (cached on the instance, so callers must not modify it)."""
    arr = np.array(values, dtype=float)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True)
class Server:
    """One heterogeneous server.

    Parameters
    ----------
    name : str
        Unique name within an instance.
    memory_gb : float
        Memory M_j available for blocks and cache, GB; > 0.
    comm_time_s : float
        tau^c_j: communication time of one job through this server (summed over the job's tokens), s; >= 0
        (zero is allowed: a chain's service time stays positive through the compute term).
    compute_time_s : float
        tau^p_j: time for one block on this server to process one job (all its tokens), s; > 0.
    """

    name: str
    memory_gb: float
    comm_time_s: float
    compute_time_s: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise InputError("must be a string", field="name", value=self.name)
        object.__setattr__(self, "memory_gb", _number(self.memory_gb, "memory_gb"))
        object.__setattr__(self, "comm_time_s", _number(self.comm_time_s, "comm_time_s", allow_zero=True))
        object.__setattr__(self, "compute_time_s", _number(self.compute_time_s, "compute_time_s"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "name": self.name,
            "memory_gb": self.memory_gb,
            "comm_time_s": self.comm_time_s,
            "compute_time_s": self.compute_time_s,
        }


_SERVER_FIELDS = ("name", "memory_gb", "comm_time_s", "compute_time_s")
_INSTANCE_FIELDS = ("num_blocks", "block_memory_gb", "cache_memory_gb", "arrival_rate")


@dataclass(frozen=True)
class ChainInstance:
    """A server-chain composition problem (paper section "System model").

    Parameters
    ----------
    servers : tuple of Server
        The server set J (at least one; names unique).
    num_blocks : int
        L, the number of identical blocks (>= 1).
    block_memory_gb : float
        s_m, GB of parameters per block (> 0).
    cache_memory_gb : float
        s_c, GB of cache per block per concurrent job (> 0).
    arrival_rate : float
        lambda, Poisson arrival rate in jobs per second (> 0).
    target_load : float, default 0.7
        rho_bar in (0, 1): placements must reach a total service rate of lambda / rho_bar.
    name : str, default ""
        Free-form label.
    """

    servers: tuple[Server, ...]
    num_blocks: int
    block_memory_gb: float
    cache_memory_gb: float
    arrival_rate: float
    target_load: float = 0.7
    name: str = ""

    def __post_init__(self) -> None:
        servers = tuple(self.servers)
        if not servers:
            raise InputError("an instance needs at least one server", field="servers", value=[])
        for i, s in enumerate(servers):
            if not isinstance(s, Server):
                raise InputError("must be a Server", field=f"servers[{i}]", value=s)
        names = [s.name for s in servers]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise InputError("server names must be unique", field="servers[].name", value=dup)
        object.__setattr__(self, "servers", servers)
        L = self.num_blocks
        if isinstance(L, bool) or not isinstance(L, int | np.integer) or L < 1:
            raise InputError("must be an integer >= 1", field="num_blocks", value=L)
        object.__setattr__(self, "num_blocks", int(L))
        for f in ("block_memory_gb", "cache_memory_gb", "arrival_rate"):
            object.__setattr__(self, f, _number(getattr(self, f), f))
        rho = _number(self.target_load, "target_load")
        if not 0.0 < rho < 1.0:
            raise InputError("must lie strictly between 0 and 1", field="target_load", value=self.target_load)
        object.__setattr__(self, "target_load", rho)
        if not isinstance(self.name, str):
            raise InputError("must be a string", field="name", value=self.name)

    # -- array views -------------------------------------------------------------------------------
    @property
    def num_servers(self) -> int:
        """J, the number of servers."""
        return len(self.servers)

    @cached_property
    def memory_gb(self) -> np.ndarray:
        """M_j as a read-only float array of length J."""
        return _frozen_array([s.memory_gb for s in self.servers])

    @cached_property
    def comm_time_s(self) -> np.ndarray:
        """tau^c_j as a read-only float array of length J."""
        return _frozen_array([s.comm_time_s for s in self.servers])

    @cached_property
    def compute_time_s(self) -> np.ndarray:
        """tau^p_j as a read-only float array of length J."""
        return _frozen_array([s.compute_time_s for s in self.servers])

    @property
    def required_rate(self) -> float:
        """The total service rate lambda / rho_bar that a solution must reach (jobs per second)."""
        return self.arrival_rate / self.target_load

    # -- serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the documented format (``docs/schemas/chain_instance.schema.json``)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "name": self.name,
            "num_blocks": self.num_blocks,
            "block_memory_gb": self.block_memory_gb,
            "cache_memory_gb": self.cache_memory_gb,
            "arrival_rate": self.arrival_rate,
            "target_load": self.target_load,
            "servers": [s.to_dict() for s in self.servers],
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> ChainInstance:
        """Build an instance from its dict form; every error names ``source``, the field and the value."""
        try:
            return cls._from_dict(data)
        except InputError as exc:
            raise exc.relabel(source=source) from None

    @classmethod
    def _from_dict(cls, data: Any) -> ChainInstance:
        if not isinstance(data, dict):
            raise InputError("an instance must be a JSON object", value=type(data).__name__)
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise InputError(f"not a chain instance (expected format {FORMAT!r})", field="format", value=fmt)
        version = data.get("version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise InputError(
                f"unsupported version (this serveplan reads {FORMAT_VERSION})", field="version", value=version
            )
        known = {"format", "version", "name", "target_load", "servers", *_INSTANCE_FIELDS}
        for key in data:
            if key not in known:
                raise InputError("unknown field", field=str(key), hint=f"known fields: {', '.join(sorted(known))}")
        for key in (*_INSTANCE_FIELDS, "servers"):
            if key not in data:
                raise InputError("missing required field", field=key)
        raw_servers = data["servers"]
        if not isinstance(raw_servers, list):
            raise InputError("must be a list of servers", field="servers", value=type(raw_servers).__name__)
        servers = []
        for i, raw in enumerate(raw_servers):
            if not isinstance(raw, dict):
                raise InputError("a server must be an object", field=f"servers[{i}]", value=raw)
            for key in raw:
                if key not in _SERVER_FIELDS:
                    raise InputError("unknown field", field=f"servers[{i}].{key}", hint=f"known: {_SERVER_FIELDS}")
            for key in _SERVER_FIELDS[1:]:
                if key not in raw:
                    raise InputError("missing required field", field=f"servers[{i}].{key}")
            try:
                servers.append(
                    Server(
                        name=raw.get("name", f"s{i}"),
                        memory_gb=raw["memory_gb"],
                        comm_time_s=raw["comm_time_s"],
                        compute_time_s=raw["compute_time_s"],
                    )
                )
            except InputError as exc:
                raise exc.relabel(source=None, field=f"servers[{i}].{exc.field}", hint=None) from None
        return cls(
            servers=tuple(servers),
            num_blocks=data["num_blocks"],
            block_memory_gb=data["block_memory_gb"],
            cache_memory_gb=data["cache_memory_gb"],
            arrival_rate=data["arrival_rate"],
            target_load=data.get("target_load", 0.7),
            name=data.get("name", ""),
        )

    def save_json(self, path: str | Path) -> None:
        """Write the instance as JSON (indent 2)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load_json(cls, path: str | Path) -> ChainInstance:
        """Read an instance written by :meth:`save_json` (or by hand, following the JSON Schema)."""
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise InputError(f"cannot read file: {exc.strerror}", source=str(p)) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", source=str(p)
            ) from None
        return cls.from_dict(data, source=str(p))

    def with_arrival_rate(self, arrival_rate: float) -> ChainInstance:
        """A copy with another lambda."""
        return ChainInstance(
            self.servers,
            self.num_blocks,
            self.block_memory_gb,
            self.cache_memory_gb,
            arrival_rate,
            self.target_load,
            self.name,
        )
