"""The simulator's traffic reaches a real Prometheus with the series and labels templates query."""

from __future__ import annotations

import itertools
import math
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from analysis.providers.port import Buckets, Counts, NoData, Queries
from analysis.providers.prometheus import PrometheusProvider
from simulations.prometheus_feed import FeedLabels, MetricsEndpoint, TrafficFeed
from simulations.traffic import Effect, Nuisances, TrafficModel
from tests.support.prometheus import PrometheusServer, unique_id

pytestmark = pytest.mark.integration

ORIGIN = 1_660_000_000.0  # a past epoch: simulated time, pushed at its own timestamps
W = "{{window}}"


def arm_queries(ns: str, service: str) -> Queries:
    sel = f'namespace="{ns}",service="{service}"'
    return Queries(
        events=f'sum(increase(http_requests_total{{{sel},code=~"5.."}}[{W}]))',
        total=f"sum(increase(http_requests_total{{{sel}}}[{W}]))",
        buckets=f"sum by (le) (increase(http_request_duration_seconds_bucket{{{sel}}}[{W}]))",
    )


def cumulative_at(
    series: list[tuple[dict[str, str], list[tuple[int, float]]]], t: float
) -> dict[tuple[str, ...], float]:
    """Each series' cumulative value at ``t`` (the truth the provider's increase() must give back)."""
    ms = round(t * 1000)
    out = {}
    for labels, points in series:
        key = (labels["__name__"], labels["service"], labels.get("code", ""), labels.get("le", ""))
        out[key] = next(v for ts, v in points if ts == ms)
    return out


def test_pushed_counts_and_buckets_read_back_per_arm(prometheus: PrometheusServer) -> None:
    ns = unique_id("ns")
    model = TrafficModel(total_rps=50.0, base_error_rate=0.02, effect=Effect("errors x3", 3.0))
    feed = TrafficFeed(
        model,
        lambda: 25.0,
        FeedLabels.for_services(ns, "shop-canary", "shop-stable"),
        origin=ORIGIN,
        seed=7,
    )
    series = feed.advance(ORIGIN + 120)
    prometheus.push(series)
    truth_lo, truth_hi = cumulative_at(series, ORIGIN + 60), cumulative_at(series, ORIGIN + 120)
    provider = PrometheusProvider(prometheus.url)
    for arm, service in (("canary", "shop-canary"), ("baseline", "shop-stable")):
        q = arm_queries(ns, service)
        counts = provider.measure("counts", arm, q, ORIGIN + 60, ORIGIN + 120)
        errors = (
            truth_hi[("http_requests_total", service, "500", "")]
            - truth_lo[("http_requests_total", service, "500", "")]
        )
        ok = (
            truth_hi[("http_requests_total", service, "200", "")]
            - truth_lo[("http_requests_total", service, "200", "")]
        )
        assert counts == Counts(events=pytest.approx(errors), total=pytest.approx(errors + ok))
        assert isinstance(counts, Counts) and counts.total > 0
        buckets = provider.measure("histogram", arm, q, ORIGIN + 60, ORIGIN + 120)
        assert isinstance(buckets, Buckets)
        assert buckets.bounds == feed.bounds
        assert buckets.counts[-1] == pytest.approx(counts.total)
    # the canary gets a quarter of the traffic and three times the error rate
    c = provider.measure("counts", "canary", arm_queries(ns, "shop-canary"), ORIGIN, ORIGIN + 120)
    b = provider.measure("counts", "baseline", arm_queries(ns, "shop-stable"), ORIGIN, ORIGIN + 120)
    assert isinstance(c, Counts) and isinstance(b, Counts)
    assert 0.15 < c.total / (c.total + b.total) < 0.35
    assert c.events / c.total > 1.5 * b.events / b.total


def test_scrape_gaps_are_missing_samples_not_zeros(prometheus: PrometheusServer) -> None:
    ns = unique_id("ns")
    model = TrafficModel(total_rps=50.0, nuisances=Nuisances(scrape_gap_prob=1.0))
    feed = TrafficFeed(model, lambda: 50.0, FeedLabels.for_services(ns, "c", "s"), origin=ORIGIN)
    assert feed.push_until(prometheus.url, ORIGIN + 60) == 0
    with pytest.raises(NoData):
        PrometheusProvider(prometheus.url).measure(
            "counts", "canary", arm_queries(ns, "c"), ORIGIN, ORIGIN + 60
        )


def test_metrics_endpoint_serves_a_valid_exposition() -> None:
    import time

    feed = TrafficFeed(
        TrafficModel(total_rps=200.0),
        lambda: 50.0,
        FeedLabels.for_services("shop", "shop-canary", "shop-stable"),
        origin=time.time() - 5,
        tick_s=1.0,
    )
    with MetricsEndpoint(feed) as endpoint:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(endpoint.url, timeout=5) as response:
            text = response.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {
        "http_requests",
        "http_request_duration_seconds",
        "sluice_simulated_saturation_ratio",
    } <= set(families)
    requests = {
        (s.labels["service"], s.labels["code"]): s.value for s in families["http_requests"].samples
    }
    assert set(requests) == {
        (svc, code) for svc in ("shop-canary", "shop-stable") for code in ("200", "500")
    }
    for service in ("shop-canary", "shop-stable"):
        buckets = sorted(
            (float(s.labels["le"]), s.value)
            for s in families["http_request_duration_seconds"].samples
            if s.name.endswith("_bucket") and s.labels["service"] == service
        )
        assert buckets[-1][0] == math.inf
        assert all(a[1] <= b[1] for a, b in itertools.pairwise(buckets)), "cumulative in le"
        assert buckets[-1][1] == pytest.approx(
            requests[(service, "200")] + requests[(service, "500")]
        )
        assert buckets[-1][1] > 0
