"""End to end on the wall clock: the simulator serves /metrics, Prometheus scrapes it every second,
and an analysis run judges the canary from what was scraped.

This is the one slow test (about half a minute): scraping is the path remote-write tests skip
(scrape timing, ``job``/``instance`` labels added by Prometheus, ``increase()`` over samples that
land wherever the scrape lands). The fastest honest outcome is chosen: an error regression
(errors ×5 at 50% weight) that must fail the run, naming the metric.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest

from analysis.providers.port import Queries
from analysis.providers.prometheus import PrometheusProvider
from analysis.run_loop import MetricPlan, advance
from simulations.prometheus_feed import FeedLabels, MetricsEndpoint, TrafficFeed
from simulations.simulated_provider import scenario
from tests.support.prometheus import start_prometheus

pytestmark = pytest.mark.integration

W = "{{window}}"
LAG_S = 2.0  # judge a window only once the scrape covering its end has landed
DEADLINE_S = 90.0


def arm(service: str) -> Queries:
    sel = f'namespace="shop",service="{service}"'
    return Queries(
        events=f'sum(increase(http_requests_total{{{sel},code=~"5.."}}[{W}])) or vector(0)',
        total=f"sum(increase(http_requests_total{{{sel}}}[{W}]))",
    )


def test_error_regression_scraped_from_the_simulator_fails_the_run(tmp_path: Path) -> None:
    sc = scenario("error-regression")
    model = dataclasses.replace(sc.model, total_rps=400.0)
    feed = TrafficFeed(
        model,
        lambda: 50.0,
        FeedLabels.for_services("shop", "shop-canary", "shop-stable"),
        origin=time.time(),
        seed=sc.seed,
        tick_s=1.0,
    )
    with (
        MetricsEndpoint(feed) as endpoint,
        start_prometheus(
            tmp_path / "prometheus", scrape_targets=[endpoint.address], scrape_interval="1s"
        ) as server,
    ):
        provider = PrometheusProvider(server.url, timeout=5.0)
        # Five seconds of warm-up cover the first scrapes (queryable only after a few seconds).
        plan = MetricPlan(
            "errors",
            "counts",
            5.0,
            initial_delay=5.0,
            count=15,
            queries={"canary": arm("shop-canary"), "baseline": arm("shop-stable")},
        )
        start = time.time()
        state: dict[str, Any] | None = None
        phases: list[str] = []
        while time.time() - start < DEADLINE_S:
            r = advance(
                [plan],
                state,
                start=start,
                now=time.time() - LAG_S,
                provider_for=lambda _: provider,
                alphas={"errors": 0.05},
            )
            state = json.loads(json.dumps(r.state))
            phases.append(r.phase)
            if r.phase != "Running":
                break
            time.sleep(1.0)
        elapsed = time.time() - start
    print(f"scrape e2e: {r.phase} after {elapsed:.1f} s: {r.message}")
    assert r.phase == "Failed", f"{r.phase}: {r.message}; measurements {r.metrics[0].measurements}"
    assert "'errors'" in r.message
    m = r.metrics[0]
    assert m.tally.errors == 0, "no provider errors on the scrape path"
    assert m.tally.successful >= 1
    assert m.evidence is not None and m.evidence.estimate is not None and m.evidence.estimate > 2.0
    assert "Successful" not in phases
