"""Latency tolerance in latency units, judged from a real Prometheus through real PromQL.

The edges are chosen from the stable service's buckets over the ten minutes before the analysis
(a query of its own, over a window no evidence window covers), each edge's ratio from the hour
before it (here the ten minutes the feed has); then a canary 5% slower than
stable stays within "may grow by 10%" while one 50% slower is aborted. 400 requests/s with 20% to
the canary, fixed seeds: both verdicts are far from the boundary (benchmarks/latency_tail.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from analysis.providers.prometheus import PrometheusProvider
from analysis.run_loop import MetricPlan, TickResult, advance
from simulations.prometheus_feed import FeedLabels, TrafficFeed
from simulations.traffic import Effect, TrafficModel
from tests.integration.analysis.test_runs_against_prometheus import (
    CANARY,
    ORIGIN,
    STABLE,
    compare,
)
from tests.support.prometheus import PrometheusServer, unique_id

pytestmark = pytest.mark.integration

START = ORIGIN + 600.0  # stable traffic before the analysis: where the edges come from


@pytest.fixture
def provider(prometheus: PrometheusServer) -> Iterator[PrometheusProvider]:
    p = PrometheusProvider(prometheus.url, timeout=5.0)
    yield p
    p.close()


def feed(server: PrometheusServer, scale: float) -> str:
    ns = unique_id("ns")
    model = TrafficModel(400.0, 0.01, effect=Effect(f"latency x{scale:g}", latency_scale=scale))
    traffic = TrafficFeed(
        model, lambda: 20.0, FeedLabels.for_services(ns, CANARY, STABLE), origin=ORIGIN, seed=3
    )
    traffic.push_until(server.url, START + 600.0)
    return ns


def judge(ns: str, provider: PrometheusProvider) -> TickResult:
    plan = MetricPlan(
        "latency", "histogram", 30.0, queries=compare(ns), count=20, latency_increase=0.1
    )
    state: dict[str, Any] | None = None
    now = START
    while True:
        r = advance(
            [plan],
            state,
            start=START,
            now=now,
            provider_for=lambda _: provider,
            alphas={"latency": 0.025},
            budget=0.025,
        )
        state = json.loads(json.dumps(r.state))
        if r.phase != "Running" or now >= START + 600.0:
            return r
        now += 30.0


def test_a_shift_under_the_tolerance_passes_and_a_regression_aborts(
    prometheus: PrometheusServer,
    provider: PrometheusProvider,
) -> None:
    under = judge(feed(prometheus, 1.05), provider)
    assert under.phase != "Failed", under.message
    m = under.metrics[0]
    # the edges came from before the analysis: no window was spent choosing them
    assert m.tally.inconclusive == 0 and m.tally.successful > 0
    ev = m.evidence
    assert ev is not None and ev.details.latency_increase == 0.1 and ev.details.edges
    assert all(e.baseline_point == pytest.approx(e.edge / 1.1) for e in ev.details.edges)
    assert all(e.canary_requests > 0 and e.baseline_requests > 0 for e in ev.details.edges)
    # the ratio at an edge where the stable traffic before the analysis shows the tail's slope
    # (the hour's query holds the ten minutes this feed has): above 1, and the same in the state
    frozen = [e.tolerance for e in ev.details.edges if e.tolerance is not None]
    assert frozen and all(1.0 < k < 5.0 for k in frozen)
    assert under.state["metrics"]["latency"]["edgeTolerances"] == [
        e.tolerance for e in ev.details.edges
    ]

    over = judge(feed(prometheus, 1.5), provider)
    assert over.phase == "Failed", over.message
    assert "'latency'" in over.message and "latency grows by at most 10%" in (
        over.metrics[0].evidence.rule if over.metrics[0].evidence else ""
    )
