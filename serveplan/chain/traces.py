"""Request traces and the token-level service model for chain serving.

Two pieces the simulator needs beyond Poisson arrivals and Exp(1) sizes:

* :func:`load_azure_llm_trace` reads the Azure LLM inference trace 2023 (``data/azure_llm_2023``; code or conv
  service): arrival times in seconds from the first request, input and output token counts.
* :class:`TokenServiceModel` turns each request's own (l_in, l_out) into its service time on a chain through
  the paper's per-block compute model and the communication model (Sun, He, Hou 2026, simulation setup):
  tau^p_j(l_in, l_out) = t_o + (F / f_j) l_in + (s_m / b_j)(l_out - 1) per block, and
  tau^c_j(l_out) = l_out (RTT_j + 18 ms) ("paper" reading) or (RTT_j + 50 ms) + (l_out - 1) RTT_j
  ("author_code"). Both are linear in the features x = (1, l_in, l_out - 1), so a request's time on a chain is
  x @ (sum_j comm_coef[j] + m_ij block_coef[j]), which is the simulator's ``features @ coef`` form. At the
  trace's mean token counts it reproduces the instance's tau^c_j and tau^p_j.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from serveplan.chain.builders import (
    AUTHOR_CODE_PREFILL_OVERHEAD_MS,
    PETALS_HOP_OVERHEAD_MS,
    GpuType,
    ModelSpec,
    block_rates_ms,
    load_gpu_type,
    load_model_spec,
)
from serveplan.chain.instance import ChainInstance
from serveplan.chain.placement import Chain
from serveplan.errors import InputError
from serveplan.paths import data_path

TRACES = {"code": "AzureLLMInferenceTrace_code.csv", "conv": "AzureLLMInferenceTrace_conv.csv"}


@dataclass(frozen=True, eq=False)
class LlmTrace:
    """Requests of an LLM trace.

    Attributes
    ----------
    arrival_s : ndarray of float
        Arrival times, seconds after the first request of the selection (non-decreasing).
    input_tokens, output_tokens : ndarray of int
        Context and generated tokens per request (output >= 1).
    name : str
    """

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    name: str

    def __len__(self) -> int:
        return len(self.arrival_s)

    @property
    def rate(self) -> float:
        """Mean arrival rate (requests per second) over the span of the arrivals."""
        span = float(self.arrival_s[-1] - self.arrival_s[0]) if len(self) > 1 else 0.0
        return (len(self) - 1) / span if span > 0 else float("nan")

    @property
    def interarrival_cv(self) -> float:
        """Coefficient of variation of the inter-arrival times (1 for Poisson)."""
        gaps = np.diff(self.arrival_s)
        return float(np.std(gaps) / np.mean(gaps)) if len(gaps) and np.mean(gaps) > 0 else float("nan")


@lru_cache(maxsize=4)
def _read(kind: str) -> pd.DataFrame:
    path = data_path("azure_llm_2023", TRACES[kind])
    if not path.is_file():
        raise InputError("trace file not found", source=str(path), hint="the repository's data/ folder is missing")
    return pd.read_csv(path, parse_dates=["TIMESTAMP"])


def load_azure_llm_trace(kind: str = "code", num_requests: int | None = None, offset: int = 0) -> LlmTrace:
    """Azure LLM inference trace 2023 (Patel et al., Splitwise), rows ``offset .. offset + num_requests - 1``.

    Parameters
    ----------
    kind : {"code", "conv"}
    num_requests : int, optional
        How many requests (default: all from ``offset``).
    offset : int, default 0
        First row.
    """
    if kind not in TRACES:
        raise InputError("unknown trace", field="trace", value=kind, hint=f"choose one of {sorted(TRACES)}")
    frame = _read(kind)
    stop = len(frame) if num_requests is None else offset + int(num_requests)
    if offset < 0 or stop > len(frame) or stop <= offset:
        raise InputError(f"the {kind} trace has {len(frame)} requests", field="num_requests", value=(offset, stop))
    rows = frame.iloc[offset:stop]
    ts = rows["TIMESTAMP"].to_numpy()
    arrival = (ts - ts[0]) / np.timedelta64(1, "s")
    return LlmTrace(
        np.maximum.accumulate(arrival.astype(float)),
        rows["ContextTokens"].to_numpy(dtype=np.int64),
        np.maximum(rows["GeneratedTokens"].to_numpy(dtype=np.int64), 1),
        f"azure_llm_2023_{kind}[{offset}:{stop}]",
    )


def token_features(input_tokens: np.ndarray, output_tokens: np.ndarray) -> np.ndarray:
    """Features x = (1, l_in, l_out - 1) per request, shape (n, 3)."""
    l_in = np.asarray(input_tokens, dtype=float)
    l_out = np.asarray(output_tokens, dtype=float)
    return np.column_stack([np.ones_like(l_in), l_in, l_out - 1.0])


@dataclass(frozen=True, eq=False)
class TokenServiceModel:
    """Per-server linear coefficients of the communication and per-block compute times in x = (1, l_in, l_out-1).

    Attributes
    ----------
    comm_coef : ndarray, shape (J, 3)
        tau^c_j(x) = x @ comm_coef[j] (seconds).
    block_coef : ndarray, shape (J, 3)
        tau^p_j(x) = x @ block_coef[j] (seconds per block).
    """

    comm_coef: np.ndarray
    block_coef: np.ndarray

    @classmethod
    def from_profile(
        cls,
        model: ModelSpec,
        gpus: list[GpuType],
        rtt_ms: np.ndarray,
        *,
        comm_reading: str = "paper",
        profile_reading: str = "paper",
    ) -> TokenServiceModel:
        """Coefficients from the model spec, each server's GPU type and its RTT to the orchestrator (ms).

        The per-block rates follow ``profile_reading`` (:func:`serveplan.chain.builders.block_rates_ms`).
        """
        rtt = np.asarray(rtt_ms, dtype=float)
        if len(gpus) != len(rtt):
            raise InputError("one GPU type per server", field="gpus", value=(len(gpus), len(rtt)))
        block = np.array([block_rates_ms(model, g, profile_reading) for g in gpus])
        if comm_reading == "paper":
            comm = np.column_stack([rtt + PETALS_HOP_OVERHEAD_MS, np.zeros_like(rtt), rtt + PETALS_HOP_OVERHEAD_MS])
        elif comm_reading == "author_code":
            comm = np.column_stack([rtt + AUTHOR_CODE_PREFILL_OVERHEAD_MS, np.zeros_like(rtt), rtt])
        else:
            raise InputError("must be 'paper' or 'author_code'", field="comm_reading", value=comm_reading)
        return cls(comm / 1000.0, block / 1000.0)

    @classmethod
    def from_instance(
        cls,
        instance: ChainInstance,
        model: str,
        *,
        high_gpu: str = "a100_3g_40gb",
        low_gpu: str = "a100_2g_20gb",
        comm_reading: str = "paper",
        profile_reading: str = "paper",
    ) -> TokenServiceModel:
        """Recover the coefficients of an instance built by :func:`serveplan.chain.builders.ripe_instance`.

        The GPU type is read from each server's memory (``high_gpu``'s memory -> high-perf, else low-perf) and the
        RTT by inverting tau^c_j at the model's mean output length.
        """
        spec = load_model_spec(model).reading(profile_reading)
        hi, lo = load_gpu_type(high_gpu), load_gpu_type(low_gpu)
        gpus = [hi if abs(s.memory_gb - hi.memory_gb) < 1e-9 else lo for s in instance.servers]
        tc_ms = instance.comm_time_s * 1000.0
        l_out = spec.mean_output_tokens
        if comm_reading == "paper":
            rtt = tc_ms / l_out - PETALS_HOP_OVERHEAD_MS
        else:
            rtt = (tc_ms - AUTHOR_CODE_PREFILL_OVERHEAD_MS) / l_out
        return cls.from_profile(
            spec, gpus, np.maximum(rtt, 0.0), comm_reading=comm_reading, profile_reading=profile_reading
        )

    def chain_coef(self, chains: list[Chain] | tuple[Chain, ...]) -> np.ndarray:
        """Coefficients per chain, shape (K, 3): sum over its servers of comm_coef[j] + m_ij block_coef[j]."""
        out = np.zeros((len(chains), 3))
        for k, ch in enumerate(chains):
            idx = np.asarray(ch.servers)
            out[k] = (self.comm_coef[idx] + np.asarray(ch.blocks, dtype=float)[:, None] * self.block_coef[idx]).sum(0)
        return out
