"""Model specifications (AlpaServe Table 1 / digest section 5) and the shipped model catalogue.

A :class:`ModelSpec` describes a transformer well enough for the analytic latency model (layers,
hidden size, sequence length, vocabulary, experts) and carries its total weight size. The
catalogue lives in ``data/alpaserve_models/*.toml``, one file per model; users add their own files
there or pass a directory to :func:`load_models`.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from serveplan.errors import InputError
from serveplan.paths import data_path

MODEL_KINDS = ("dense", "moe")


@dataclass(frozen=True)
class ModelSpec:
    """One servable model.

    Parameters
    ----------
    name : str
        Catalogue name, e.g. ``bert-1.3b``; profile-table rows are matched on it.
    num_layers : int
        Transformer layers.
    hidden_size : int
        Hidden dimension h.
    seq_len : int
        Tokens per request (the profiled input length; AlpaServe serves fixed-length requests).
    weight_bytes : float
        Total fp16 weight size in bytes (what the memory constraint counts, split over stages and
        intra-op shards by the latency model).
    kind : {"dense", "moe"}
        Dense (BERT/GPT-style) or mixture-of-experts (GShard-style, an MoE FFN every
        ``moe_every`` layers, top-2 routing).
    num_heads : int
        Attention heads (informational; the FLOP count does not depend on it).
    vocab_size : int
        Vocabulary size (embedding and output-layer FLOPs and weights).
    num_experts : int
        Experts per MoE layer (``kind="moe"`` only).
    moe_every : int
        One MoE layer every this many layers (GShard: 2).
    reference_latency_s : float, optional
        Single-GPU (pp=1, op=1), batch-1 latency the analytic model is calibrated to. When absent,
        the analytic model's own FLOPs/peak estimate is used. For models that do not fit one GPU
        (BERT-104B) this is the nominal base latency AlpaServe uses for SLOs (4.6 s).
    reference_gpu : str
        The GPU type ``reference_latency_s`` was taken on (default ``v100-16gb``).
    source : str
        Where the numbers come from (a citation line, kept in instance files).
    """

    name: str
    num_layers: int
    hidden_size: int
    seq_len: int
    weight_bytes: float
    kind: str = "dense"
    num_heads: int = 32
    vocab_size: int = 51200
    num_experts: int = 0
    moe_every: int = 2
    reference_latency_s: float | None = None
    reference_gpu: str = "v100-16gb"
    source: str = ""

    def __post_init__(self) -> None:
        where = f"models[{self.name}]"
        if not self.name or not isinstance(self.name, str):
            raise InputError("model name must be a non-empty string", field="name", value=self.name)
        for f in ("num_layers", "hidden_size", "seq_len", "num_heads", "vocab_size", "moe_every"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError("must be a positive integer", field=f"{where}.{f}", value=v)
        if not (self.weight_bytes > 0):
            raise InputError("must be > 0", field=f"{where}.weight_bytes", value=self.weight_bytes)
        if self.kind not in MODEL_KINDS:
            raise InputError(f"kind must be one of {MODEL_KINDS}", field=f"{where}.kind", value=self.kind)
        if self.kind == "moe" and self.num_experts < 1:
            raise InputError(
                "an MoE model needs num_experts >= 1", field=f"{where}.num_experts", value=self.num_experts
            )
        if self.reference_latency_s is not None and not (self.reference_latency_s > 0):
            raise InputError("must be > 0", field=f"{where}.reference_latency_s", value=self.reference_latency_s)
        object.__setattr__(self, "weight_bytes", float(self.weight_bytes))

    @property
    def weight_gb(self) -> float:
        """Total weight size in GB (1e9 bytes)."""
        return self.weight_bytes / 1e9

    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-ready dict (``None`` fields dropped)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str | None = None) -> ModelSpec:
        """Build from a dict; unknown keys and wrong types are :class:`InputError` naming the field."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError("unknown model field", source=source, field=unknown[0], hint=f"known: {sorted(known)}")
        missing = [k for k in ("name", "num_layers", "hidden_size", "seq_len", "weight_bytes") if k not in d]
        if missing:
            raise InputError("missing model field", source=source, field=missing[0])
        try:
            return cls(**d)
        except InputError as exc:
            raise exc.relabel(source=source) from None
        except TypeError as exc:
            raise InputError(str(exc), source=source) from None


def models_dir() -> Path:
    """The shipped catalogue folder ``data/alpaserve_models``."""
    return data_path("alpaserve_models")


def load_model_file(path: str | Path) -> ModelSpec:
    """Read one ``.toml`` model file (keys = :class:`ModelSpec` fields)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            d = tomllib.load(fh)
    except FileNotFoundError:
        raise InputError("model file not found", source=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", source=str(path)) from None
    return ModelSpec.from_dict(d, source=str(path))


def load_models(directory: str | Path | None = None) -> dict[str, ModelSpec]:
    """All models in a catalogue folder (default: the shipped one), by name."""
    folder = Path(directory) if directory is not None else models_dir()
    out: dict[str, ModelSpec] = {}
    for f in sorted(folder.glob("*.toml")):
        m = load_model_file(f)
        out[m.name] = m
    return out


_CATALOGUE: dict[str, ModelSpec] | None = None


def get_model(name: str) -> ModelSpec:
    """A shipped model by name (case-insensitive), e.g. ``get_model("bert-6.7b")``."""
    global _CATALOGUE
    if _CATALOGUE is None:
        _CATALOGUE = load_models()
    key = name.lower()
    if key not in _CATALOGUE:
        raise InputError("unknown model", field="model", value=name, hint=f"known: {', '.join(sorted(_CATALOGUE))}")
    return _CATALOGUE[key]
