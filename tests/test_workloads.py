import numpy as np
import pytest

from serveplan.errors import InputError
from serveplan.paths import data_path
from serveplan.workloads import (
    Workload,
    gamma_arrivals,
    gamma_workload,
    parse_spec,
    power_law_rates,
    workload_from_spec,
)
from serveplan.workloads.azure_functions import load_azure_2019, load_azure_2021, maf1_workload, maf2_workload
from serveplan.workloads.azure_llm import azure_llm_workload, load_azure_llm_arrivals
from serveplan.workloads.gamma_fit import fit_gamma, fit_rate_cv
from serveplan.workloads.maf import maf_like_workload
from serveplan.workloads.servegen import load_servegen, servegen_workload
from serveplan.workloads.spec import with_stream


@pytest.mark.parametrize("cv", [0.5, 1.0, 4.0])
def test_gamma_arrivals_rate_and_cv(cv):
    rate, dur = 50.0, 4000.0
    t = gamma_arrivals(rate, cv, dur, np.random.default_rng(1))
    gaps = np.diff(t)
    assert t.size / dur == pytest.approx(rate, rel=0.03 * cv)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.05)
    assert np.all(gaps >= 0) and t[0] >= 0 and t[-1] < dur


def test_gamma_arrivals_edge_cases():
    rng = np.random.default_rng(0)
    assert gamma_arrivals(0.0, 1.0, 10.0, rng).size == 0
    assert gamma_arrivals(5.0, 1.0, 0.0, rng).size == 0
    with pytest.raises(InputError, match="cv"):
        gamma_arrivals(1.0, 0.0, 10.0, rng)
    with pytest.raises(InputError, match="rate"):
        gamma_arrivals(-1.0, 1.0, 10.0, rng)
    t = gamma_arrivals(10.0, 1.0, 5.0, rng, start_s=100.0)
    assert t.min() >= 100.0 and t.max() < 105.0


def test_power_law_split():
    r = power_law_rates(30.0, 4, 0.5)
    assert r.sum() == pytest.approx(30.0)
    np.testing.assert_allclose(r[1:] / r[0], [2**-0.5, 3**-0.5, 4**-0.5])
    np.testing.assert_allclose(power_law_rates(8.0, 4, 0.0), 2.0)


def test_gamma_workload_seeded_distinct_streams_and_per_model_rates():
    rates = power_law_rates(40.0, 5)
    a = gamma_workload(rates, 2.0, 1000.0, seed=7)
    b = gamma_workload(rates, 2.0, 1000.0, seed=7)
    train = gamma_workload(rates, 2.0, 1000.0, seed=7, stream=1)
    np.testing.assert_array_equal(a.arrival_s, b.arrival_s)
    np.testing.assert_array_equal(a.model_id, b.model_id)
    assert not np.array_equal(a.arrival_s[:50], train.arrival_s[:50])
    np.testing.assert_allclose(a.rates(), rates, rtol=0.12)
    assert np.all(np.diff(a.arrival_s) >= 0)
    assert a.arrival_s.dtype == np.float64 and a.model_id.dtype == np.int32
    # adding a model leaves the others' arrivals unchanged
    more = gamma_workload(np.append(rates, 1.0), 2.0, 1000.0, seed=7)
    np.testing.assert_array_equal(more.arrival_s[more.model_id == 0], a.arrival_s[a.model_id == 0])


def test_workload_validation_names_field():
    with pytest.raises(InputError, match=r"arrival_s\[2\]"):
        Workload(np.array([0.0, 2.0, 1.0]), np.zeros(3), 3.0, 1)
    with pytest.raises(InputError, match=r"model_id\[1\]"):
        Workload(np.array([0.0, 1.0]), np.array([0, 3]), 3.0, 2)
    with pytest.raises(InputError, match="length"):
        Workload(np.array([0.0, 1.0]), np.array([0]), 3.0, 2)
    with pytest.raises(InputError, match="not finite"):
        Workload(np.array([0.0, np.nan]), np.array([0, 0]), 3.0, 1)
    w = Workload.from_unsorted(np.array([3.0, 1.0, 2.0]), np.array([0, 1, 0]), 4.0, 2)
    assert w.arrival_s.tolist() == [1.0, 2.0, 3.0] and w.model_id.tolist() == [1, 0, 0]
    with pytest.raises(ValueError):
        w.arrival_s[0] = 5.0  # read-only


def test_workload_files_roundtrip_and_errors(tmp_path):
    w = gamma_workload([2.0, 1.0], 3.0, 50.0, seed=1)
    for suffix in (".npz", ".csv"):
        p = w.save(tmp_path / f"w{suffix}")
        back = Workload.load(p)
        np.testing.assert_allclose(back.arrival_s, w.arrival_s, atol=1e-9)
        np.testing.assert_array_equal(back.model_id, w.model_id)
        assert back.duration_s == w.duration_s and back.num_models == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("arrival_s,model\n0.1,0\n")
    with pytest.raises(InputError, match="model_id") as exc:
        Workload.load(bad)
    assert "bad.csv" in str(exc.value)
    unsorted = tmp_path / "unsorted.csv"
    unsorted.write_text("arrival_s,model_id\n0.5,0\n0.1,0\n")
    with pytest.raises(InputError, match="not sorted"):
        Workload.load(unsorted)
    empty = tmp_path / "empty.csv"
    empty.write_text("arrival_s,model_id\n")
    assert Workload.load(empty, num_models=3).num_requests == 0
    with pytest.raises(InputError, match="not found"):
        Workload.load(tmp_path / "nope.npz")


def test_slice_and_windows():
    w = Workload(np.array([0.5, 1.5, 2.5, 3.5]), np.array([0, 1, 0, 1]), 4.0, 2)
    s = w.slice(1.0, 3.0)
    assert s.arrival_s.tolist() == [0.5, 1.5] and s.duration_s == 2.0
    assert [x.num_requests for x in w.windows(1.5)] == [1, 2, 1]


def test_specs():
    kind, p = parse_spec("gamma:rate=20,cv=4,duration=200,seed=1")
    assert kind == "gamma" and p["rate"] == 20.0 and p["seed"] == 1 and p["exponent"] == 0.5
    w = workload_from_spec("gamma:rate=20,cv=4,duration=200,seed=1", 3)
    assert w.num_models == 3 and w.spec.startswith("gamma:") and 2000 < w.num_requests < 6000
    train = workload_from_spec(with_stream(w.spec, 1), 3)
    assert not np.array_equal(train.arrival_s[:20], w.arrival_s[:20])
    m = workload_from_spec("maf:rate=10,duration=300,interval=60,seed=2", 4)
    assert m.duration_s == 300.0 and m.num_models == 4
    for bad in ("poisson:rate=1", "gamma:rte=3", "gamma:rate=abc", "", "gamma:duration=0"):
        with pytest.raises(InputError):
            workload_from_spec(bad, 2)


def test_maf_like_rates_average_to_power_law():
    w = maf_like_workload(3, total_rate=30.0, cv=2.0, duration_s=6000.0, interval_s=60.0, seed=4, burstiness=0.5)
    np.testing.assert_allclose(w.rates(), power_law_rates(30.0, 3), rtol=0.15)
    # windows really differ (burstiness > 0) ...
    per_win = [x.counts()[0] for x in w.windows(60.0)]
    assert np.std(per_win) > 2 * np.sqrt(np.mean(per_win))
    flat = maf_like_workload(1, total_rate=10.0, cv=1.0, duration_s=600.0, seed=4, burstiness=0.0)
    assert flat.num_requests == pytest.approx(6000, rel=0.1)


def test_fit_gamma_recovers_parameters():
    rng = np.random.default_rng(3)
    x = rng.gamma(0.25, 8.0, size=20000)
    k, scale = fit_gamma(x)
    assert k == pytest.approx(0.25, rel=0.05) and scale == pytest.approx(8.0, rel=0.08)
    arr = np.cumsum(rng.gamma(1 / 4.0, 4.0 / 5.0, size=5000))  # rate 5, cv 2
    rate, cv = fit_rate_cv(arr, float(arr[-1]))
    assert rate == pytest.approx(5.0, rel=0.1) and cv == pytest.approx(2.0, rel=0.1)
    assert np.isnan(fit_rate_cv(np.array([1.0, 2.0]), 10.0)[0])


def write_2019_day(path, rows):
    header = "HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(i) for i in range(1, 1441))
    lines = [header] + [f"o,a,{name},http," + ",".join(str(int(c)) for c in counts) for name, counts in rows]
    path.write_text("\n".join(lines) + "\n")


def test_azure_2019_loader_and_maf1_replay(tmp_path):
    c1 = np.zeros(1440)
    c1[:60] = 600  # 10 req/s during the first hour
    c2 = np.zeros(1440)
    c2[:30] = 120  # 2 req/s during the first half hour
    write_2019_day(tmp_path / "invocations_per_function_md.anon.d01.csv", [("f1", c1), ("f2", c2), ("f3", 0 * c1)])
    write_2019_day(tmp_path / "invocations_per_function_md.anon.d02.csv", [("f2", c1)])
    trace = load_azure_2019(tmp_path)
    assert trace.counts.shape == (3, 2880)
    assert trace.counts[1, 1440:1500].sum() == 36000 and trace.counts[0, 1440:].sum() == 0
    w = maf1_workload(trace, 2, start_min=0, end_min=60, rate_scale=1.0, cv_scale=1.0, seed=1)
    counts = w.counts()
    assert w.duration_s == 3600.0
    assert counts[0] == pytest.approx(36000, rel=0.03) and counts[1] == pytest.approx(3600, rel=0.06)
    assert w.slice(1800, 3600).counts()[1] == 0  # f2 silent in the second half hour
    bad = tmp_path / "bad" / "invocations_per_function_md.anon.d01.csv"
    bad.parent.mkdir()
    bad.write_text("HashOwner,HashApp,Trigger,1\n")
    with pytest.raises(InputError, match="HashFunction"):
        load_azure_2019(bad)


def test_azure_2021_microslice_and_maf2():
    path = data_path("azure_functions_2021_microslice", "Azure2021_200.csv")
    trace = load_azure_2021(path)
    assert sum(a.size for a in trace.arrivals) == 199
    assert all(np.all(np.diff(a) >= 0) for a in trace.arrivals)
    raw = maf2_workload(trace, 3, vanilla=True)
    assert raw.num_requests == 199 and raw.num_models == 3
    fitted = maf2_workload(trace, 3, interval_s=300.0, seed=1)
    assert fitted.num_requests > 0 and fitted.duration_s == raw.duration_s
    with pytest.raises(InputError, match="rate"):
        maf2_workload(trace, 3, vanilla=True, rate_scale=2.0)


def test_azure_2021_missing_column(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("app,func,end_timestamp\na,b,1.0\n")
    with pytest.raises(InputError, match="duration"):
        load_azure_2021(p)


def test_azure_llm_trace():
    t = load_azure_llm_arrivals("code")
    assert t.size == 8819 and t[0] == 0.0
    gaps = np.diff(t)
    assert gaps.std() / gaps.mean() > 5  # very bursty
    w = azure_llm_workload(4, trace="conv", time_scale=2.0, seed=0)
    assert w.num_requests == 19366 and w.num_models == 4
    assert w.counts()[0] > w.counts()[3]  # power-law popularity
    with pytest.raises(InputError, match="not found"):
        load_azure_llm_arrivals("/nonexistent.csv")


def test_servegen_statistics_and_workload():
    s = load_servegen("reason/deepseek-r1")
    assert s.rates.shape == (73, 144) and np.all(s.cvs > 0)
    w = servegen_workload(2, folder="reason/deepseek-r1", start_s=36000.0, duration_s=1200.0, seed=3)
    expected = s.rates[:, 60:62].mean(axis=1).sum()
    assert w.num_requests / 1200.0 == pytest.approx(expected, rel=0.15)
    with pytest.raises(InputError):
        servegen_workload(2, folder="reason/deepseek-r1", start_s=86000.0, duration_s=7200.0)


def test_stationary_start_removes_window_bias():
    # Gamma cv=4 restarted fresh adds ~ (cv^2 - 1)/2 = 7.5 arrivals per window; the equilibrium start does not
    rate, cv, dur, reps = 0.5, 4.0, 10.0, 3000
    fresh = np.mean(
        [gamma_arrivals(rate, cv, dur, np.random.default_rng(i), stationary=False).size for i in range(reps)]
    )
    stat = np.mean([gamma_arrivals(rate, cv, dur, np.random.default_rng(i)).size for i in range(reps)])
    assert stat == pytest.approx(rate * dur, rel=0.1)
    assert fresh > rate * dur + 4


def test_azure_2019_rows_of_one_function_add_up(tmp_path):
    c = np.ones(1440)
    write_2019_day(tmp_path / "invocations_per_function_md.anon.d01.csv", [("f1", c), ("f2", 2 * c), ("f1", 3 * c)])
    trace = load_azure_2019(tmp_path)
    assert trace.counts.shape == (2, 1440)
    np.testing.assert_array_equal(trace.counts[0], 4.0)
    np.testing.assert_array_equal(trace.counts[1], 2.0)
    bad = tmp_path / "x" / "invocations_per_function_md.anon.d01.csv"
    bad.parent.mkdir()
    write_2019_day(bad, [("f1", -c)])
    with pytest.raises(InputError, match="row 2"):
        load_azure_2019(bad)


def test_time_scaled_multiplies_rates():
    w = gamma_workload([2.0, 1.0], 3.0, 400.0, seed=2)
    f = w.time_scaled(4.0)
    np.testing.assert_allclose(f.rates(), 4 * w.rates())
    gaps, fgaps = np.diff(w.arrival_s), np.diff(f.arrival_s)
    assert fgaps.std() / fgaps.mean() == pytest.approx(gaps.std() / gaps.mean())
    with pytest.raises(InputError, match="factor"):
        w.time_scaled(0.0)
