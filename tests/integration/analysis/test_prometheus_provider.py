"""PrometheusProvider against a real Prometheus fed exact series through remote write.

Timestamps: each test pushes its own history at a fixed past epoch (accepted because the fixture's
config sets an out-of-order window) under its own ``test_id`` label. With one sample per second
and windows whose edges fall on samples, ``increase()`` needs no extrapolation and counts are exact;
the one test with samples off the edges documents the extrapolation tolerance.
"""

from __future__ import annotations

import http.server
import math
import socket
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from analysis.providers.port import Buckets, Counts, NoData, ProviderError, Queries, Value
from analysis.providers.prometheus import PrometheusProvider, promql_duration
from tests.support.prometheus import PrometheusServer, Sample, start_prometheus, unique_id

pytestmark = pytest.mark.integration

BASE = 1_650_000_000  # seconds; a fixed past epoch keeps the arithmetic readable
W = "{{window}}"


def counter(start: int, seconds: int, per_second: float, *, first: float = 0.0) -> list[Sample]:
    """One sample per second, increasing by ``per_second`` each second."""
    return [((start + i) * 1000, first + per_second * i) for i in range(seconds + 1)]


def count_queries(tid: str, slot: str) -> Queries:
    sel = f'test_id="{tid}",slot="{slot}"'
    return Queries(
        events=f'sum(increase(http_requests_total{{{sel},code=~"5.."}}[{W}]))',
        total=f"sum(increase(http_requests_total{{{sel}}}[{W}]))",
    )


@dataclass
class Recorder:
    """A stub in front of Prometheus: records request headers, can answer a scripted status first."""

    upstream: str
    statuses: list[int] = field(default_factory=list)  # answered (and consumed) before forwarding
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def provider(prometheus: PrometheusServer) -> Iterator[PrometheusProvider]:
    p = PrometheusProvider(prometheus.url, timeout=5.0)
    yield p
    p.close()


@pytest.fixture
def recorder(prometheus: PrometheusServer) -> Iterator[Recorder]:
    rec = Recorder(prometheus.url)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            rec.headers.append(dict(self.headers.items()))
            if rec.statuses:
                status = rec.statuses.pop(0)
                body = b'{"status":"error","errorType":"unavailable","error":"scripted"}'
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(rec.upstream + self.path, timeout=5) as upstream:
                body = upstream.read()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


def test_counts_per_arm_match_the_pushed_truth(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    tid, t0 = unique_id(), BASE
    # canary: 20 req/s of which 2/s fail; baseline: 30 req/s of which 1/s fails, for 3 minutes.
    prometheus.push(
        [
            (
                {
                    "__name__": "http_requests_total",
                    "test_id": tid,
                    "slot": "canary",
                    "code": "200",
                },
                counter(t0, 180, 18),
            ),
            (
                {
                    "__name__": "http_requests_total",
                    "test_id": tid,
                    "slot": "canary",
                    "code": "500",
                },
                counter(t0, 180, 2),
            ),
            (
                {
                    "__name__": "http_requests_total",
                    "test_id": tid,
                    "slot": "stable",
                    "code": "200",
                },
                counter(t0, 180, 29),
            ),
            (
                {
                    "__name__": "http_requests_total",
                    "test_id": tid,
                    "slot": "stable",
                    "code": "503",
                },
                counter(t0, 180, 1),
            ),
        ]
    )
    for k in range(6):  # six 30 s windows tiling the three minutes
        start, end = t0 + 30 * k, t0 + 30 * (k + 1)
        canary = provider.measure("counts", "canary", count_queries(tid, "canary"), start, end)
        baseline = provider.measure("counts", "baseline", count_queries(tid, "stable"), start, end)
        assert canary == Counts(events=60.0, total=600.0)
        assert baseline == Counts(events=30.0, total=900.0)


def test_increase_extrapolation_stays_within_one_sample_of_the_truth(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    """Samples half a second off the window edges: increase() extrapolates the missing halves.

    With a constant rate the extrapolation is exact up to float error; the tolerance allowed here
    is one sample interval's worth of requests (10 of 600), what a real scrape misalignment costs.
    """
    tid = unique_id()
    samples = [((BASE * 1000 + 500 + i * 1000), 10.0 * i) for i in range(120)]
    prometheus.push(
        [
            (
                {
                    "__name__": "http_requests_total",
                    "test_id": tid,
                    "slot": "canary",
                    "code": "500",
                },
                samples,
            )
        ]
    )
    got = provider.measure("counts", "canary", count_queries(tid, "canary"), BASE + 30, BASE + 90)
    assert isinstance(got, Counts)
    assert got.events == got.total
    assert abs(got.total - 600.0) <= 10.0


def test_counter_reset_mid_window_is_counted_once(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    """A pod restart resets its counter to zero; increase() adds the post-reset count instead of a negative jump."""
    tid = unique_id()
    ok = {"__name__": "http_requests_total", "test_id": tid, "slot": "canary", "code": "200"}
    bad = {**ok, "code": "500"}
    restarted = range(21, 61)  # the pod restarts between second 20 and 21
    prometheus.push(
        [
            # 1000 → 1100 over 20 s, then from zero: 5, 10, ..., 200
            (
                ok,
                counter(BASE, 20, 5, first=1000.0)
                + [((BASE + t) * 1000, 5.0 * (t - 20)) for t in restarted],
            ),
            # 50 → 70 over 20 s, then from zero: 1, 2, ..., 40
            (
                bad,
                counter(BASE, 20, 1, first=50.0)
                + [((BASE + t) * 1000, 1.0 * (t - 20)) for t in restarted],
            ),
        ]
    )
    got = provider.measure("counts", "canary", count_queries(tid, "canary"), BASE, BASE + 60)
    # ok: 100 before, 5 in the restart second (0 → 5), 195 after = 300; bad: 20 + 1 + 39 = 60.
    # Without reset handling the drop 1100 → 5 would read as -1095.
    assert isinstance(got, Counts)
    assert got.events == pytest.approx(60.0) and got.total == pytest.approx(360.0)


def test_missing_events_series_is_no_data_unless_the_template_says_zero(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    """No 5xx series at all is *missing*, not zero; a template claims zero with `or vector(0)`."""
    tid = unique_id()
    labels = {"__name__": "http_requests_total", "test_id": tid, "slot": "canary", "code": "200"}
    prometheus.push([(labels, counter(BASE, 60, 10))])
    queries = count_queries(tid, "canary")
    with pytest.raises(NoData, match="events query"):
        provider.measure("counts", "canary", queries, BASE, BASE + 60)
    explicit = Queries(events=f"{queries.events} or vector(0)", total=queries.total)
    assert provider.measure("counts", "canary", explicit, BASE, BASE + 60) == Counts(0.0, 600.0)


def test_histogram_buckets_read_back(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    tid = unique_id()
    per_second = {"0.1": 6.0, "0.5": 9.0, "1": 9.5, "+Inf": 10.0}  # cumulative rates per bucket
    series = [
        (
            {
                "__name__": "http_request_duration_seconds_bucket",
                "test_id": tid,
                "pod": pod,
                "le": le,
            },
            counter(BASE, 60, rate / 2),
        )
        for le, rate in per_second.items()
        for pod in ("a", "b")  # two pods: the query must aggregate by le
    ]
    prometheus.push(series)
    q = Queries(
        buckets=f'sum by (le) (increase(http_request_duration_seconds_bucket{{test_id="{tid}"}}[{W}]))'
    )
    got = provider.measure("histogram", "canary", q, BASE, BASE + 60)
    assert got == Buckets(bounds=(0.1, 0.5, 1.0, math.inf), counts=(360.0, 540.0, 570.0, 600.0))

    unaggregated = Queries(
        buckets=f'increase(http_request_duration_seconds_bucket{{test_id="{tid}"}}[{W}])'
    )
    with pytest.raises(ProviderError, match="more than one series for le"):
        provider.measure("histogram", "canary", unaggregated, BASE, BASE + 60)

    no_inf = Queries(
        buckets=f'sum by (le) (increase(http_request_duration_seconds_bucket{{test_id="{tid}",le!="+Inf"}}[{W}]))'
    )
    with pytest.raises(ProviderError, match=r"\+Inf"):
        provider.measure("histogram", "canary", no_inf, BASE, BASE + 60)


def test_empty_result_is_no_data(provider: PrometheusProvider) -> None:
    q = Queries(value=f'sum(rate(http_requests_total{{test_id="{unique_id()}"}}[{W}]))')
    with pytest.raises(NoData, match="empty result"):
        provider.measure("value", "absolute", q, BASE, BASE + 30)


def test_ratio_over_no_requests_is_no_data(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    """Series present but flat: errors/requests = 0/0 = NaN, which must not read as a 0% error rate."""
    tid = unique_id()
    flat = [((BASE + i) * 1000, 42.0) for i in range(61)]
    prometheus.push(
        [
            ({"__name__": "http_requests_total", "test_id": tid, "code": "200"}, flat),
            ({"__name__": "http_requests_total", "test_id": tid, "code": "500"}, flat),
        ]
    )
    sel = f'test_id="{tid}"'
    q = Queries(
        value=f'sum(increase(http_requests_total{{{sel},code="500"}}[{W}])) / sum(increase(http_requests_total{{{sel}}}[{W}]))'
    )
    with pytest.raises(NoData, match="NaN"):
        provider.measure("value", "absolute", q, BASE, BASE + 60)


def test_gauge_value(prometheus: PrometheusServer, provider: PrometheusProvider) -> None:
    tid = unique_id()
    prometheus.push(
        [
            (
                {"__name__": "saturation", "test_id": tid},
                [((BASE + i) * 1000, 0.25 + i / 100) for i in range(31)],
            )
        ]
    )
    q = Queries(value=f'max_over_time(saturation{{test_id="{tid}"}}[{W}])')
    assert provider.measure("gauge", "canary", q, BASE, BASE + 30) == Value(0.55)


def test_two_series_where_one_was_expected_is_an_error(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    tid = unique_id()
    prometheus.push(
        [
            ({"__name__": "saturation", "test_id": tid, "pod": "a"}, [(BASE * 1000, 0.1)]),
            ({"__name__": "saturation", "test_id": tid, "pod": "b"}, [(BASE * 1000, 0.2)]),
        ]
    )
    q = Queries(value=f'last_over_time(saturation{{test_id="{tid}"}}[{W}])')
    with pytest.raises(ProviderError, match="expected one series, got 2") as e:
        provider.measure("gauge", "canary", q, BASE - 30, BASE)
    assert 'pod="a"' in str(e.value) and 'pod="b"' in str(e.value)


def test_range_vector_result_is_an_error(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    tid = unique_id()
    prometheus.push([({"__name__": "saturation", "test_id": tid}, [(BASE * 1000, 0.1)])])
    q = Queries(value=f'saturation{{test_id="{tid}"}}[{W}]')
    with pytest.raises(ProviderError, match="range vector"):
        provider.measure("value", "absolute", q, BASE - 30, BASE)


def test_bad_promql_fails_at_once_without_retries(prometheus: PrometheusServer) -> None:
    pauses: list[float] = []
    provider = PrometheusProvider(prometheus.url, retries=3, sleep=pauses.append)
    with pytest.raises(ProviderError, match="400") as e:
        provider.measure(
            "value", "absolute", Queries(value="sum(rate(x[{{window}}])"), BASE, BASE + 30
        )
    assert "sum(rate(x[{{window}}])" in str(e.value), "the message names the query"
    assert "parse error" in str(e.value), "the message carries Prometheus's reason"
    assert pauses == []


def test_stopped_server_is_an_error_after_bounded_retries(tmp_path: Path) -> None:
    with start_prometheus(tmp_path / "p") as server:
        pauses: list[float] = []
        provider = PrometheusProvider(server.url, retries=2, backoff=0.01, sleep=pauses.append)
        q = Queries(value="vector(1)")
        assert provider.measure("value", "absolute", q, BASE, BASE + 30) == Value(1.0)
        server.stop()
        with pytest.raises(ProviderError, match="3 attempts") as e:
            provider.measure("value", "absolute", q, BASE, BASE + 30)
    assert "vector(1)" in str(e.value)
    assert "cannot connect" in str(e.value)
    _assert_doubling(pauses, 0.01)


def test_timeout_is_an_error_after_bounded_retries() -> None:
    """A server that accepts connections and never answers: each attempt ends at the timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        pauses: list[float] = []
        provider = PrometheusProvider(url, timeout=0.2, retries=1, backoff=0.0, sleep=pauses.append)
        with pytest.raises(ProviderError, match=r"timed out after 0\.2s \(2 attempts\)"):
            provider.measure("value", "absolute", Queries(value="vector(1)"), BASE, BASE + 30)
    assert len(pauses) == 1


def test_5xx_is_retried_then_succeeds(recorder: Recorder) -> None:
    recorder.statuses = [503, 502]
    pauses: list[float] = []
    provider = PrometheusProvider(recorder.url, retries=2, backoff=0.01, sleep=pauses.append)
    assert provider.measure(
        "value", "absolute", Queries(value="vector(7)"), BASE, BASE + 30
    ) == Value(7.0)
    assert len(recorder.headers) == 3
    _assert_doubling(pauses, 0.01)


def test_5xx_beyond_the_retry_budget_is_an_error(recorder: Recorder) -> None:
    recorder.statuses = [503, 503, 503]
    provider = PrometheusProvider(recorder.url, retries=1, sleep=lambda _: None)
    with pytest.raises(ProviderError, match="503: scripted \\(2 attempts\\)"):
        provider.measure("value", "absolute", Queries(value="vector(7)"), BASE, BASE + 30)
    assert len(recorder.headers) == 2


def test_bearer_token_is_sent(recorder: Recorder) -> None:
    provider = PrometheusProvider(recorder.url, bearer_token="s3cret")
    assert provider.measure(
        "value", "absolute", Queries(value="vector(2)"), BASE, BASE + 30
    ) == Value(2.0)
    assert recorder.headers[-1]["Authorization"] == "Bearer s3cret"
    assert "s3cret" not in repr(provider)


def test_basic_auth_is_sent(recorder: Recorder) -> None:
    provider = PrometheusProvider(recorder.url, basic_auth=("ann", "pw"))
    provider.measure("value", "absolute", Queries(value="vector(2)"), BASE, BASE + 30)
    assert recorder.headers[-1]["Authorization"] == "Basic YW5uOnB3"  # base64("ann:pw")


def test_loopback_ignores_proxy_settings(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("NO_PROXY", "")
    provider = PrometheusProvider(recorder.url, retries=0)
    assert provider.measure(
        "value", "absolute", Queries(value="vector(3)"), BASE, BASE + 30
    ) == Value(3.0)


def test_range_values_per_step(prometheus: PrometheusServer, provider: PrometheusProvider) -> None:
    tid = unique_id()
    labels = {"__name__": "http_requests_total", "test_id": tid, "code": "200"}
    prometheus.push([(labels, counter(BASE, 120, 4))])
    q = f'sum(increase(http_requests_total{{test_id="{tid}"}}[{W}]))'
    points = provider.values(q, BASE + 30, BASE + 120, 30)
    assert points == [
        (BASE + 30.0, 120.0),
        (BASE + 60.0, 120.0),
        (BASE + 90.0, 120.0),
        (BASE + 120.0, 120.0),
    ]


@pytest.mark.parametrize(
    ("seconds", "text"), [(30, "30s"), (600, "600s"), (1.5, "1500ms"), (0.001, "1ms")]
)
def test_window_as_promql_duration(seconds: float, text: str) -> None:
    assert promql_duration(seconds) == text


def test_non_positive_window_is_an_error(provider: PrometheusProvider) -> None:
    with pytest.raises(ProviderError, match="window"):
        provider.measure("value", "absolute", Queries(value="vector(1)"), BASE, BASE)


def pod_queries(tid: str, slot: str, *, by_pod: bool = True) -> Queries:
    sel = f'test_id="{tid}",slot="{slot}"'
    by = " by (pod)" if by_pod else ""
    return Queries(
        events=f'sum{by}(increase(http_requests_total{{{sel},code=~"5.."}}[{W}]))',
        total=f"sum{by}(increase(http_requests_total{{{sel}}}[{W}]))",
        pod_label="pod",
    )


def test_per_pod_counts_read_back_per_pod_and_summed(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    """Pods as the sampling unit: ``sum by (pod)`` gives one series per pod; the provider returns
    each pod's counts (sorted by pod) and their sums. A pod whose error counter does not exist
    has no errors; the aggregate form of the same metric still reads as one series."""
    tid, t0 = unique_id(), BASE + 10_000
    rates = {"stable-a": (19, 1), "stable-b": (28, 2), "stable-c": (10, 0)}
    series = []
    for pod, (ok, bad) in rates.items():
        base = {"__name__": "http_requests_total", "test_id": tid, "slot": "stable", "pod": pod}
        series.append(({**base, "code": "200"}, counter(t0, 120, ok)))
        if bad:
            series.append(({**base, "code": "500"}, counter(t0, 120, bad)))
    canary = {"__name__": "http_requests_total", "test_id": tid, "slot": "canary", "pod": "c-1"}
    series.append(({**canary, "code": "200"}, counter(t0, 120, 9)))
    series.append(({**canary, "code": "500"}, counter(t0, 120, 1)))
    prometheus.push(series)
    got = provider.measure("counts", "baseline", pod_queries(tid, "stable"), t0, t0 + 60)
    assert got.per_pod == (  # type: ignore[union-attr]
        ("stable-a", 60.0, 1200.0),
        ("stable-b", 120.0, 1800.0),
        ("stable-c", 0.0, 600.0),
    )
    assert got == Counts(180.0, 3600.0, got.per_pod)  # type: ignore[union-attr]
    one = provider.measure("counts", "canary", pod_queries(tid, "canary"), t0, t0 + 60)
    assert one == Counts(60.0, 600.0, (("c-1", 60.0, 600.0),))
    agg = provider.measure(
        "counts", "baseline", pod_queries(tid, "stable", by_pod=False), t0, t0 + 60
    )
    assert agg == Counts(180.0, 3600.0)


def test_per_pod_series_without_the_pod_label_are_an_error(
    prometheus: PrometheusServer, provider: PrometheusProvider
) -> None:
    """Several series not split by pod (here by status code) would be summed over the wrong
    grouping: an error naming the series, as for a metric that is not per pod."""
    tid, t0 = unique_id(), BASE + 20_000
    base = {"__name__": "http_requests_total", "test_id": tid, "slot": "stable", "pod": "p"}
    prometheus.push(
        [
            ({**base, "code": "200"}, counter(t0, 120, 10)),
            ({**base, "code": "500"}, counter(t0, 120, 1)),
        ]
    )
    sel = f'test_id="{tid}",slot="stable"'
    q = Queries(
        events=f'sum by (code)(increase(http_requests_total{{{sel},code=~"5.."}}[{W}]))',
        total=f"sum by (code)(increase(http_requests_total{{{sel}}}[{W}]))",
        pod_label="pod",
    )
    with pytest.raises(ProviderError, match="expected one series per 'pod'"):
        provider.measure("counts", "baseline", q, t0, t0 + 60)
    plain = Queries(events=q.events, total=q.total)  # not per pod: two series stay an error
    with pytest.raises(ProviderError, match="expected one series, got 2"):
        provider.measure("counts", "baseline", plain, t0, t0 + 60)


def _assert_doubling(pauses: list[float], first: float) -> None:
    """Each pause doubles the last step, jittered within its upper half (analysis.retry_policy):
    never sooner than half the step, never later than the step."""
    assert len(pauses) == 2
    for n, pause in enumerate(pauses):
        step = first * 2**n
        assert step / 2 <= pause <= step, (n, pause)
