"""Executable check of proofs/alpaserve_placement_np_hard.md (BIN PACKING -> AlpaServe placement)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

GIB = float(2**30)


def bin_packing_yes(sizes: list[int], bins: int, cap: int) -> bool:
    for assign in itertools.product(range(bins), repeat=len(sizes)):
        load = [0] * bins
        for s, b in zip(sizes, assign, strict=True):
            load[b] += s
        if max(load) <= cap:
            return True
    return False


def _random_bin_packing(rng: np.random.Generator):
    n = int(rng.integers(3, 5))
    bins = int(rng.integers(2, 4))
    sizes = [int(x) for x in rng.integers(1, 7, size=n)]
    cap = int(rng.integers(max(sizes), max(sizes) + 5))
    return sizes, bins, cap


def build_reduction(sizes: list[int], bins: int, cap: int):
    """The AlpaServe instance of the proof, with the project's types."""
    from serveplan.alpaserve.cluster import Cluster
    from serveplan.alpaserve.instance import AlpaInstance
    from serveplan.alpaserve.latency import latency_model_for
    from serveplan.alpaserve.model import ModelSpec
    from serveplan.workloads.workload import Workload

    models = tuple(
        ModelSpec(f"item{i}", num_layers=4, hidden_size=256, seq_len=64, weight_bytes=s * GIB)
        for i, s in enumerate(sizes)
    )
    n = len(sizes)
    trace = Workload(10.0 * np.arange(1, n + 1), np.arange(n, dtype=np.int32), 10.0 * (n + 1), n)
    return AlpaInstance(
        Cluster(bins, memory_budget_gb=float(cap)),
        models,
        tuple(1.0 for _ in models),
        latency_model_for("v100-16gb"),
        trace,
        trace,
    )


def test_bin_packing_reduction_maps_answers():
    pytest.importorskip("serveplan.alpaserve.simulator")
    from serveplan.alpaserve.cluster import Group, ParallelConfig, Placement
    from serveplan.alpaserve.simulator import Simulator
    from serveplan.alpaserve.verify import verify

    single = ParallelConfig(1, 1)
    rng = np.random.default_rng(12)
    answers = []
    for _ in range(16):
        sizes, bins, cap = _random_bin_packing(rng)
        inst = build_reduction(sizes, bins, cap)
        n = len(sizes)
        for i, m in enumerate(inst.models):  # the model's weight on one GPU is exactly s_i GiB
            assert inst.latency.max_stage_weight_bytes(m, single) == pytest.approx(sizes[i] * GIB, rel=1e-12)
        sim = Simulator(inst, inst.train)
        subsets = [s for k in range(n + 1) for s in itertools.combinations(range(n), k)]
        fitting = [h for h in subsets if sum(sizes[i] for i in h) <= cap]
        over = [h for h in subsets if sum(sizes[i] for i in h) > cap]
        if over:  # the project's verifier rejects an over-budget GPU
            assert not verify(inst, Placement((Group(single, over[0]),))).ok
        # Exhaustive over placements; the simulator scores one representative per set of placed models (on these
        # traces attainment depends only on that set, which is asserted on the representatives and a sample).
        reps: dict[frozenset, tuple] = {}
        sample = []
        for count, hosted in enumerate(itertools.product(fitting, repeat=bins)):
            reps.setdefault(frozenset(itertools.chain.from_iterable(hosted)), hosted)
            if count % 53 == 0:
                sample.append(hosted)
        best = 0.0
        for hosted in [*reps.values(), *sample]:
            placement = Placement(tuple(Group(single, h) for h in hosted))
            assert verify(inst, placement).ok
            att = sim.run(placement).attainment
            placed = len(set(itertools.chain.from_iterable(hosted)))
            assert att == pytest.approx(placed / n)  # no overlap: every placed model's request meets its SLO
            best = max(best, att)
        yes = bin_packing_yes(sizes, bins, cap)
        assert (best == pytest.approx(1.0)) == yes
        answers.append(yes)
    assert any(answers) and not all(answers), "the generator must produce both yes and no instances"
