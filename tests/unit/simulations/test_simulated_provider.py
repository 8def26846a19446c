"""The simulated provider serves Prometheus's shapes, reproducibly, and never zero for nothing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from analysis.providers.port import Buckets, Counts, NoData, ProviderError, Queries, Value
from simulations.simulated_provider import SimulatedProvider, load_scenario, scenario

Q = Queries()


def test_counts_follow_the_weight_and_the_effect() -> None:
    p = SimulatedProvider(scenario("error-regression"), lambda: 25)
    c = p.measure("counts", "canary", Q, 0, 600)
    b = p.measure("counts", "baseline", Q, 0, 600)
    assert isinstance(c, Counts) and isinstance(b, Counts)
    # 400 rps for 600 s, a quarter to the canary: within 5% of 60000 (Poisson sd ~ 250)
    assert abs(c.total - 60000) < 3000 and abs(b.total - 180000) < 9000
    ratio = (c.events / c.total) / (b.events / b.total)
    assert 4.0 < ratio < 6.0  # the scenario's error ratio is 5


def test_same_seed_same_counts_and_windows_tile() -> None:
    a = SimulatedProvider(scenario("healthy"), lambda: 10)
    b = SimulatedProvider(scenario("healthy"), lambda: 10)
    whole = a.measure("counts", "canary", Q, 0, 60)
    first = b.measure("counts", "canary", Q, 0, 30)
    second = b.measure("counts", "canary", Q, 30, 60)
    assert isinstance(whole, Counts) and isinstance(first, Counts) and isinstance(second, Counts)
    assert whole.total == first.total + second.total
    assert whole.events == first.events + second.events


def test_histogram_is_cumulative_with_inf_last() -> None:
    p = SimulatedProvider(scenario("healthy"), lambda: 50)
    h = p.measure("histogram", "canary", Q, 0, 60)
    assert isinstance(h, Buckets)
    assert math.isinf(h.bounds[-1]) and len(h.bounds) == len(h.counts)
    assert all(x <= y for x, y in zip(h.counts, h.counts[1:], strict=False))


def test_no_canary_traffic_is_no_data_not_zero() -> None:
    p = SimulatedProvider(scenario("healthy"), lambda: 0)
    with pytest.raises(NoData):
        p.measure("counts", "canary", Q, 0, 60)


def test_absolute_queries_by_keyword() -> None:
    p = SimulatedProvider(scenario("healthy"), lambda: 50)
    p99 = p.measure(
        "value", "absolute", Queries(value="histogram_quantile(0.99, rate(x[1m]))"), 0, 300
    )
    ok = p.measure("value", "absolute", Queries(value="success ratio"), 0, 300)
    assert isinstance(p99, Value) and 0.25 < p99.value < 1.0
    assert isinstance(ok, Value) and 0.98 < ok.value < 1.0
    with pytest.raises(ProviderError, match="cannot evaluate"):
        p.measure("value", "absolute", Queries(value="up"), 0, 300)


def test_scenario_file(tmp_path: Path) -> None:
    f = tmp_path / "slow.yaml"
    f.write_text("name: slow\nseed: 3\ntotalRps: 10\neffect: {latencyScale: 2}\n")
    sc = load_scenario(f)
    assert sc.name == "slow" and sc.seed == 3 and sc.model.effect.latency_scale == 2.0
    f.write_text("totalRps: 10\nbogus: 1\n")
    with pytest.raises(ValueError, match="bogus"):
        load_scenario(f)
