"""Azure LLM trace loader and the token-level service model."""

from __future__ import annotations

import numpy as np
import pytest

from serveplan.chain.builders import ripe_instance
from serveplan.chain.placement import Chain, service_time_s
from serveplan.chain.simulator import simulate
from serveplan.chain.traces import TokenServiceModel, load_azure_llm_trace, token_features
from serveplan.errors import InputError


def test_code_trace_statistics_match_the_paper():
    t = load_azure_llm_trace("code")
    assert len(t) == 8819
    assert t.rate == pytest.approx(2.57, abs=0.01)  # paper: 2.57 req/s
    assert t.interarrival_cv == pytest.approx(13.15, abs=0.01)  # paper: 13.15x the exponential std
    assert t.input_tokens.mean() == pytest.approx(2048, abs=1)
    assert t.output_tokens.mean() == pytest.approx(27.9, abs=0.05)
    first = load_azure_llm_trace("code", 1000)
    assert first.rate == pytest.approx(1.92, abs=0.01)
    assert first.arrival_s[0] == 0.0 and np.all(np.diff(first.arrival_s) >= 0)


def test_conv_trace_and_bad_selection():
    t = load_azure_llm_trace("conv", 500, offset=100)
    assert len(t) == 500
    with pytest.raises(InputError):
        load_azure_llm_trace("chat")
    with pytest.raises(InputError):
        load_azure_llm_trace("code", 10, offset=8815)


def test_token_model_reproduces_instance_times_at_mean_tokens():
    inst = ripe_instance(9, 1 / 3, 1.0, model="llama2_7b", seed=3, eta_rounding="round")
    model = TokenServiceModel.from_instance(inst, "llama2_7b")
    x = token_features([2048], [28])[0]  # the model spec's mean tokens
    np.testing.assert_allclose(model.comm_coef @ x, inst.comm_time_s, rtol=1e-9)
    np.testing.assert_allclose(model.block_coef @ x, inst.compute_time_s, rtol=1e-9)
    chain = Chain((0, 1), (20, 12))
    assert model.chain_coef([chain])[0] @ x == pytest.approx(service_time_s(inst, chain))


def test_token_sized_jobs_follow_the_linear_model():
    coef = np.array([[1.0, 0.001, 0.1]])
    res = simulate([0.0, 10.0], token_features([1000, 2000], [1, 11]), coef, [1])
    np.testing.assert_allclose(res.service_s, [2.0, 4.0])
