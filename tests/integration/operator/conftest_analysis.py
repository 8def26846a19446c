"""Fixtures for the operator-with-analysis tests: a real Prometheus fed on the wall clock.

The operator's analysis clock is ``time.time()``, so the series a test pushes carry wall-clock
timestamps. A test pushes its whole timeline up front (a little past, a minute of future) at a
dense resolution; pushed samples are queryable at once, and instant queries at a window's end see
only the samples up to that end, so pushing the future ahead of time changes nothing the operator
can observe. Each test labels its series with its own ``test_id``, so one server serves them all.

Imported by ``test_analysis_operator.py`` (helper H); the shared ``conftest.py`` stays as it is.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from rollouts.settings import Settings
from tests.support.prometheus import PrometheusServer, Series, prometheus, unique_id

from .conftest import fast_settings

__all__ = [
    "Arm",
    "HeaderRecorder",
    "TrafficTimeline",
    "operator_settings",
    "prometheus",
    "recorder",
    "timeline",
]

STEP_S = 0.25  # sample spacing: a 1 s window holds four samples, enough for increase()


@dataclass(frozen=True)
class Arm:
    """One Service's traffic: requests per second and the share that fail with a 500."""

    service: str
    rps: float
    error_ratio: float


@dataclass
class TrafficTimeline:
    """``http_requests_total{test_id, service, code}`` counters for each arm, on the wall clock."""

    server: PrometheusServer
    test_id: str = field(default_factory=lambda: unique_id("op"))

    def push(self, arms: list[Arm], *, past: float = 10.0, future: float = 90.0) -> None:
        t0 = time.time() - past
        n = int((past + future) / STEP_S)
        series: list[Series] = []
        for arm in arms:
            for code, share in (("500", arm.error_ratio), ("200", 1.0 - arm.error_ratio)):
                labels = {
                    "__name__": "http_requests_total",
                    "test_id": self.test_id,
                    "service": arm.service,
                    "code": code,
                }
                rate = arm.rps * share
                samples = [(int((t0 + i * STEP_S) * 1000), rate * i * STEP_S) for i in range(n + 1)]
                series.append((labels, samples))
        self.server.push(series)


@pytest.fixture
def timeline(prometheus: PrometheusServer) -> TrafficTimeline:
    return TrafficTimeline(prometheus)


@pytest.fixture
def operator_settings(prometheus: PrometheusServer) -> Settings:
    """The shared fast settings, with the session's Prometheus as the controller's default."""
    return fast_settings(max_requeue_seconds=0.5, prometheus_url=prometheus.url)


@dataclass
class HeaderRecorder:
    """A stub Prometheus API: records each request's headers and answers every instant query
    with one sample of ``value``, the shape ``/api/v1/query`` returns."""

    value: float = 1.0
    headers: list[Mapping[str, str]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def recorder() -> Iterator[HeaderRecorder]:
    rec = HeaderRecorder()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            rec.headers.append(dict(self.headers.items()))
            body = (
                '{"status":"success","data":{"resultType":"vector","result":'
                f'[{{"metric":{{}},"value":[{time.time()},"{rec.value}"]}}]}}}}'
            ).encode()
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = _answer
        do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()
