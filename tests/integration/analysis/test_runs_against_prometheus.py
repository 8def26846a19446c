"""AnalysisRuns judged from a real Prometheus: the verdict paths of issue 4, through real PromQL.

The simulator's traffic (fixed seeds, the same scenarios ``sluice simulate`` offers) is pushed by
:class:`simulations.prometheus_feed.TrafficFeed` at simulated timestamps, then the run loop
(:func:`analysis.run_loop.advance`) ticks over that history with the real
:class:`~analysis.providers.prometheus.PrometheusProvider`, exactly as the controller would, only
faster than the wall clock. The regressions are large (errors ×5, latency +50%) and traffic is
100 requests/s with 20% to the canary, so the asserted verdicts are far from the boundary.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from analysis.judge import ThresholdRule
from analysis.providers.port import Arm, MetricProvider, Queries
from analysis.providers.prometheus import PrometheusProvider
from analysis.run_loop import MetricPlan, TickResult, advance
from simulations.prometheus_feed import FeedLabels, TrafficFeed
from simulations.simulated_provider import scenario
from tests.support.prometheus import PrometheusServer, start_prometheus, unique_id

pytestmark = pytest.mark.integration

ORIGIN = 1_670_000_000.0
ALPHAS = {"errors": 0.025, "latency": 0.025, "error-ratio": 0.025}
W = "{{window}}"
CANARY, STABLE = "shop-canary", "shop-stable"


def arm(ns: str, service: str) -> Queries:
    """The example templates' shape: a status-code counter and a latency histogram per service."""
    sel = f'namespace="{ns}",service="{service}"'
    return Queries(
        events=f'sum(increase(http_requests_total{{{sel},code=~"5.."}}[{W}])) or vector(0)',
        total=f"sum(increase(http_requests_total{{{sel}}}[{W}]))",
        buckets=f"sum by (le) (increase(http_request_duration_seconds_bucket{{{sel}}}[{W}]))",
    )


def compare(ns: str, canary: str = CANARY) -> Mapping[Arm, Queries]:
    return {"canary": arm(ns, canary), "baseline": arm(ns, STABLE)}


def errors(ns: str, **kw: Any) -> MetricPlan:
    return MetricPlan("errors", "counts", 30.0, **{"queries": compare(ns), "count": 20, **kw})


def latency(ns: str, **kw: Any) -> MetricPlan:
    return MetricPlan("latency", "histogram", 30.0, **{"queries": compare(ns), "count": 20, **kw})


def feed(server: PrometheusServer, name: str, until: float, weight: float = 20.0) -> str:
    """Push ``until`` seconds of scenario ``name`` under a fresh namespace; returns the namespace."""
    ns = unique_id("ns")
    sc = scenario(name)
    traffic = TrafficFeed(
        sc.model,
        lambda: weight,
        FeedLabels.for_services(ns, CANARY, STABLE),
        origin=ORIGIN,
        seed=sc.seed,
    )
    traffic.push_until(server.url, ORIGIN + until)
    return ns


def run(
    plans: list[MetricPlan],
    provider: MetricProvider,
    until: float = 1200,
    *,
    step: float = 10,
    seen: list[str] | None = None,
    **kw: Any,
) -> tuple[float, TickResult]:
    """Tick like the controller every ``step`` s; ``seen`` collects every phase on the way."""
    state: dict[str, Any] | None = None
    now = ORIGIN
    while True:
        r = advance(
            plans,
            state,
            start=ORIGIN,
            now=now,
            provider_for=lambda _: provider,
            alphas=ALPHAS,
            **kw,
        )
        state = json.loads(json.dumps(r.state))
        if seen is not None:
            seen.append(r.phase)
        if r.phase != "Running" or now >= ORIGIN + until:
            return now - ORIGIN, r
        now += step


@pytest.fixture
def provider(prometheus: PrometheusServer) -> Iterator[PrometheusProvider]:
    p = PrometheusProvider(prometheus.url, timeout=5.0)
    yield p
    p.close()


def test_error_rate_regression_fails_naming_the_metric(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    ns = feed(prometheus, "error-regression", 1200)
    t, r = run([errors(ns), latency(ns, critical=False)], provider)
    assert r.phase == "Failed", r.message
    assert "'errors'" in r.message and "e-value" in r.message
    m = {x.name: x for x in r.metrics}["errors"]
    assert m.evidence is not None and m.evidence.estimate is not None and m.evidence.estimate > 2.0
    assert m.tally.errors == 0 and m.tally.successful > 0
    assert t <= 300


def test_healthy_canary_promotes(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    ns = feed(prometheus, "healthy", 1200)
    t, r = run([errors(ns, tolerance=1.25), latency(ns, critical=False)], provider)
    assert r.phase == "Successful", r.message
    assert 60 <= t < 630
    assert all(m.tally.errors == 0 for m in r.metrics)


def test_latency_regression_from_histogram_buckets_fails(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    ns = feed(prometheus, "latency-regression", 1200)
    _, r = run([errors(ns, critical=False), latency(ns)], provider)
    assert r.phase == "Failed", r.message
    assert "'latency'" in r.message
    m = {x.name: x for x in r.metrics}["latency"]
    assert m.evidence is not None and m.evidence.events > 0


def test_missing_canary_series_is_insufficient_evidence_never_success(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    """The canary's selector matches nothing (a typo, or no pods yet): empty results, never zeros."""
    ns = feed(prometheus, "healthy", 700)
    plans = [
        MetricPlan(
            "errors", "counts", 30.0, count=8, queries=compare(ns, canary="shop-canary-typo")
        )
    ]
    seen: list[str] = []
    _, r = run(plans, provider, until=700, seen=seen)
    assert "Successful" not in seen
    assert r.phase == "Inconclusive"
    assert "insufficient evidence" in r.message
    m = r.metrics[0]
    assert m.tally.successful == 0 and m.tally.inconclusive == 8 and m.tally.errors == 0
    assert all("empty result" in x.message for x in m.measurements)


def test_canary_without_traffic_is_insufficient_evidence(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    """Weight 0: the canary's counters exist but never move, so every window has 0 requests.

    Zero out of zero is no evidence: each window is NoData, and even the ``promote`` policy for
    inconclusive runs does not promote a critical metric that never saw data.
    """
    ns = feed(prometheus, "healthy", 400, weight=0.0)
    seen: list[str] = []
    _, r = run([errors(ns, count=4)], provider, until=400, seen=seen, inconclusive="promote")
    assert "Successful" not in seen  # not even with an inconclusive: promote policy
    assert r.phase == "Inconclusive"
    assert all("no requests in the window" in x.message for x in r.metrics[0].measurements)


def test_nan_ratio_threshold_is_inconclusive_not_a_pass(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    """errors/requests over a window without requests is 0/0 = NaN: a threshold max 1% must not pass."""
    ns = unique_id("ns")
    flat = [(round((ORIGIN + i) * 1000), 100.0) for i in range(0, 301, 10)]
    prometheus.push(
        [
            (
                {
                    "__name__": "http_requests_total",
                    "namespace": ns,
                    "service": CANARY,
                    "code": "200",
                },
                flat,
            ),
            (
                {
                    "__name__": "http_requests_total",
                    "namespace": ns,
                    "service": CANARY,
                    "code": "500",
                },
                flat,
            ),
        ]
    )
    sel = f'namespace="{ns}",service="{CANARY}"'
    ratio = MetricPlan(
        "error-ratio",
        "value",
        30.0,
        judgement="threshold",
        count=3,
        threshold=ThresholdRule(max=0.01, inconclusive_limit=1),
        queries={
            "absolute": Queries(
                value=(
                    f'sum(increase(http_requests_total{{{sel},code="500"}}[{W}]))'
                    f" / sum(increase(http_requests_total{{{sel}}}[{W}]))"
                )
            )
        },
    )
    seen: list[str] = []
    _, r = run([ratio], provider, until=300, seen=seen)
    assert "Successful" not in seen
    assert r.phase == "Inconclusive", r.message
    assert all(x.phase == "Inconclusive" and "NaN" in x.message for x in r.metrics[0].measurements)


def test_prometheus_stopped_mid_analysis_is_error_never_promotion(tmp_path: Path) -> None:
    """Healthy traffic, then the server goes away: Error measurements count toward the
    consecutive-error limit and the run ends Error, never Successful."""
    with start_prometheus(tmp_path / "p") as server:
        ns = feed(server, "healthy", 1200)
        provider = PrometheusProvider(server.url, timeout=2.0, retries=1, sleep=lambda _: None)
        plans = [errors(ns, tolerance=1.25), latency(ns, critical=False)]
        state: dict[str, Any] | None = None
        phases: list[str] = []
        now = ORIGIN
        for now in range(int(ORIGIN), int(ORIGIN) + 60, 10):  # two windows measured while up
            r = advance(
                plans, state, start=ORIGIN, now=now, provider_for=lambda _: provider, alphas=ALPHAS
            )
            state, _ = json.loads(json.dumps(r.state)), phases.append(r.phase)
        assert phases[-1] == "Running"
        before = {m.name: m.tally for m in r.metrics}
        assert before["errors"].successful >= 1 and before["errors"].errors == 0
        server.stop()
        while r.phase == "Running" and now < ORIGIN + 1200:
            now += 10
            r = advance(
                plans, state, start=ORIGIN, now=now, provider_for=lambda _: provider, alphas=ALPHAS
            )
            state, _ = json.loads(json.dumps(r.state)), phases.append(r.phase)
    assert "Successful" not in phases
    assert r.phase == "Error", r.message
    assert "consecutive measurement errors" in r.message and "cannot connect" in r.message
    m = {x.name: x for x in r.metrics}["errors"]
    assert m.tally.consecutive_errors == m.tally.errors > 4
    assert m.tally.successful == before["errors"].successful  # nothing judged while down
    assert m.measurements[-1].phase == "Error"


@pytest.mark.parametrize("inconclusive_limit", [0, 3])
@pytest.mark.parametrize("data", ["nan", "empty"])
def test_threshold_on_nan_or_empty_never_promotes_under_policy_promote(
    prometheus: PrometheusServer, provider: PrometheusProvider, data: str, inconclusive_limit: int
) -> None:
    """Issue 13: a threshold metric with ``inconclusive: promote`` promoted after one NaN window.

    Real PromQL: a ratio over counters that never move (0/0 = NaN), or a selector that matches
    nothing (an empty vector). Whether the inconclusiveLimit is exceeded at once (0) or the count
    is reached on NaN windows only (3), the run ends Inconclusive and names why, never Successful.
    """
    ns = unique_id("ns")
    flat = [(round((ORIGIN + i) * 1000), 100.0) for i in range(0, 301, 10)]
    series = {"__name__": "http_requests_total", "namespace": ns, "service": CANARY}
    prometheus.push([({**series, "code": "200"}, flat), ({**series, "code": "500"}, flat)])
    service = CANARY if data == "nan" else "shop-canary-typo"
    sel = f'namespace="{ns}",service="{service}"'
    ratio = MetricPlan(
        "error-ratio",
        "value",
        30.0,
        judgement="threshold",
        count=3,
        threshold=ThresholdRule(max=0.01, inconclusive_limit=inconclusive_limit),
        queries={
            "absolute": Queries(
                value=(
                    f'sum(increase(http_requests_total{{{sel},code="500"}}[{W}]))'
                    f" / sum(increase(http_requests_total{{{sel}}}[{W}]))"
                )
            )
        },
    )
    seen: list[str] = []
    _, r = run([ratio], provider, until=300, seen=seen, inconclusive="promote")
    assert "Successful" not in seen
    assert r.phase == "Inconclusive", r.message
    assert "no valid measurement of 'error-ratio'" in r.message and "not promoted" in r.message
    marker = "NaN" if data == "nan" else "empty result"
    assert all(marker in x.message for x in r.metrics[0].measurements)


def pod_counters(ns: str, service: str, pod: str, ok: float, bad: float) -> list[Any]:
    """A pod's request counter (every 15 s, like a scrape) from an hour before the run on."""
    start, end = ORIGIN - 3600, ORIGIN + 900
    base = {"__name__": "http_requests_total", "namespace": ns, "service": service, "pod": pod}
    stamps = range(int(start), int(end) + 1, 15)
    return [
        ({**base, "code": "200"}, [(t * 1000, ok * (t - start)) for t in stamps]),
        ({**base, "code": "500"}, [(t * 1000, bad * (t - start)) for t in stamps]),
    ]


def pod_arm(ns: str, service: str) -> Queries:
    sel = f'namespace="{ns}",service="{service}"'
    return Queries(
        events=f'sum by (pod) (increase(http_requests_total{{{sel},code=~"5.."}}[{W}]))',
        total=f"sum by (pod) (increase(http_requests_total{{{sel}}}[{W}]))",
        pod_label="pod",
    )


@pytest.mark.parametrize("canary_errors", [0.2, 1.0])
def test_per_pod_series_bound_the_spread_and_a_regression_still_fails(
    prometheus: PrometheusServer, provider: PrometheusProvider, canary_errors: float
) -> None:
    """``sum by (pod)`` queries and canaryPods: ten baseline pods 20 req/s each whose error rates
    differ (0.8-1.2%), two canary pods. The hour before the run bounds the spread; the status
    evidence shows it. A canary at the baseline's rate is not failed; one at 5x is."""
    ns = unique_id("ns")
    series: list[Any] = []
    for i in range(10):
        bad = 0.2 * (0.8 + 0.4 * i / 9)
        series += pod_counters(ns, STABLE, f"stable-{i}", 20.0 - bad, bad)
    for i in range(2):
        series += pod_counters(ns, CANARY, f"canary-{i}", 20.0 - canary_errors, canary_errors)
    prometheus.push(series)
    queries = {"canary": pod_arm(ns, CANARY), "baseline": pod_arm(ns, STABLE)}
    plan = MetricPlan("errors", "counts", 30.0, queries=queries, count=20, canary_pods=2)
    _, r = run([plan], provider, until=600)
    ev = {m.name: m for m in r.metrics}["errors"].evidence
    assert ev is not None
    d = ev.details
    assert d.pod_spread_estimated is True and d.baseline_pods == 10 and d.canary_pods == 2
    # ten pods bound a spread of 0.14 by about 0.34 (chi-square, 9 df): r0' about 2
    assert d.widened_tolerance is not None and 1.5 < d.widened_tolerance < 2.5
    if canary_errors > 0.5:
        assert r.phase == "Failed" and "'errors'" in r.message
    else:
        assert r.phase != "Failed"
