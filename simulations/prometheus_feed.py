"""Feed a real Prometheus with the traffic simulator's counters, so analysis runs query real PromQL.

``sluice simulate --prometheus URL`` and the integration tests need the simulator's requests,
errors and latency buckets *as Prometheus series*, with the names and labels the example templates
query. Two ways in, for two uses:

- **Remote write at simulated timestamps** (:meth:`TrafficFeed.push_until`): a simulated clock can
  run a 30-minute rollout in seconds, pushing each tick's counter values at the tick's own
  timestamp. Needs ``--web.enable-remote-write-receiver`` (and, for timestamps older than the
  server's newest sample, ``storage.tsdb.out_of_order_time_window``).
- **A ``/metrics`` endpoint on the wall clock** (:class:`MetricsEndpoint`): Prometheus scrapes the
  simulator like any exporter. Slower (a 1 s scrape interval and a few seconds before the first
  sample is queryable) but end to end: scrape, staleness, ``increase()`` over scraped samples.

The series (labels per arm from :class:`FeedLabels`, by default ``namespace`` and ``service``)::

    http_requests_total{namespace, service, code="200"|"500"}             counter
    http_request_duration_seconds_bucket{namespace, service, le}          counter, cumulative in le
    http_request_duration_seconds_count{namespace, service}               counter
    sluice_simulated_saturation_ratio{namespace, service}                 gauge

Counters are cumulative from the feed's start, as an exporter's would be; the simulator's own
nuisances (scrape gaps) show up as missing samples, never as zeros.

The remote-write encoder is written by hand (protobuf varints and snappy's block format with
literal chunks only: Prometheus requires the format, not a good ratio), which spares a dependency
on grpcio-tools and a snappy binding for a few dozen lines.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import math
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulations.traffic import Simulator, TrafficModel

__all__ = [
    "BUCKET_METRIC",
    "REQUESTS_METRIC",
    "SATURATION_METRIC",
    "FeedLabels",
    "MetricsEndpoint",
    "Series",
    "TrafficFeed",
    "encode_write_request",
    "newest_sample",
    "push",
    "snappy_compress",
]

REQUESTS_METRIC = "http_requests_total"
BUCKET_METRIC = "http_request_duration_seconds_bucket"
COUNT_METRIC = "http_request_duration_seconds_count"
SATURATION_METRIC = "sluice_simulated_saturation_ratio"

Labels = Mapping[str, str]
Sample = tuple[int, float]  # (timestamp in ms, value)
Series = tuple[Labels, Sequence[Sample]]

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never proxy a feed


# -- remote write --------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 on the wire: two's complement in ten bytes
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def encode_write_request(series: Sequence[Series]) -> bytes:
    """``prometheus.WriteRequest`` protobuf bytes (labels sorted by name, as Prometheus requires).

    ``TimeSeries{labels=1, samples=2}``, ``Label{name=1, value=2}``,
    ``Sample{value=1 double, timestamp=2 int64}``.
    """
    out = bytearray()
    for labels, samples in series:
        body = bytearray()
        for name in sorted(labels):
            label = _bytes_field(1, name.encode()) + _bytes_field(2, str(labels[name]).encode())
            body += _bytes_field(1, label)
        for ts, value in samples:
            sample = b"\x09" + struct.pack("<d", float(value)) + b"\x10" + _varint(int(ts))
            body += _bytes_field(2, sample)
        out += _bytes_field(1, bytes(body))
    return bytes(out)


def snappy_compress(data: bytes) -> bytes:
    """Snappy block format holding ``data`` as literal elements (preamble: uvarint length;
    elements: tag ``61<<2`` then length-1 as two little-endian bytes, up to 64 KiB each)."""
    out = bytearray(_varint(len(data)))
    for start in range(0, len(data), 65536):
        chunk = data[start : start + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        else:
            out.append(61 << 2)
            out += struct.pack("<H", n)
        out += chunk
    return bytes(out)


def push(url: str, series: Sequence[Series], *, timeout: float = 10.0) -> None:
    """Remote-write ``series`` to the Prometheus at ``url``; raises ``RuntimeError`` with
    Prometheus's reason when it refuses (e.g. out-of-order samples without the window).

    ``url`` is the server's base URL or its write endpoint (``.../api/v1/write``): both are
    what people paste, and only one can be meant.
    """
    if not series:
        return
    endpoint = url.rstrip("/")
    if not endpoint.endswith("/api/v1/write"):
        endpoint += "/api/v1/write"
    request = urllib.request.Request(
        endpoint,
        data=snappy_compress(encode_write_request(series)),
        method="POST",
        headers={
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as e:
        reason = e.read().decode(errors="replace").strip()
        raise RuntimeError(f"remote write to {endpoint} refused ({e.code}): {reason}") from None
    except urllib.error.URLError as e:
        raise RuntimeError(f"remote write to {endpoint} failed: {e.reason}") from None


def newest_sample(url: str, *, timeout: float = 5.0) -> float | None:
    """The timestamp (unix seconds) of the newest sample the Prometheus at ``url`` holds in its
    head block, None when it holds none; raises ``RuntimeError`` naming the URL when it cannot be
    asked.

    A simulation remote-writes its series at simulated timestamps; a second run placed after the
    first one's samples neither collides with them (out-of-order samples are refused) nor mixes
    with them in a query's window."""
    endpoint = url.rstrip("/") + "/api/v1/status/tsdb"
    try:
        with _OPENER.open(endpoint, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{endpoint} answered {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise RuntimeError(f"cannot reach {endpoint}: {e.reason}") from None
    except (OSError, ValueError) as e:
        raise RuntimeError(f"cannot read {endpoint}: {e}") from None
    head = (body.get("data") or {}).get("headStats") or {}
    count, newest = head.get("numSeries") or 0, head.get("maxTime")
    if not count or not isinstance(newest, int | float) or newest <= 0:
        return None
    return float(newest) / 1000.0


# -- the traffic as counters ---------------------------------------------------------------------


@dataclass(frozen=True)
class FeedLabels:
    """The labels that tell the arms apart, as the analysis templates select them."""

    canary: Labels
    baseline: Labels

    @classmethod
    def for_services(cls, namespace: str, canary_service: str, stable_service: str) -> FeedLabels:
        """Arms told apart by ``service``, as the ``http_requests_total`` example templates do."""
        return cls(
            canary={"namespace": namespace, "service": canary_service},
            baseline={"namespace": namespace, "service": stable_service},
        )


def _le(bound: float) -> str:
    """``le`` as Go clients write it (``0.25``, ``1``, ``+Inf``), so ``le="1"`` selectors match."""
    return "+Inf" if math.isinf(bound) else f"{bound:.12g}"


@dataclass
class _ArmCounters:
    ok: float = 0.0
    errors: float = 0.0
    buckets: list[float] = field(default_factory=list)
    saturation: float | None = None
    seen: bool = False  # no sample before the arm's first scraped tick: absent, not zero


class TrafficFeed:
    """The simulator's traffic as cumulative Prometheus counters, tick by tick.

    ``weight`` returns the canary's share in percent, read at every tick, so the traffic follows
    the Rollout as the simulation moves it. ``origin`` is the unix time of the traffic's start
    (a past time for remote write at simulated timestamps, ``time.time()`` for a live endpoint).
    ``tick_s`` overrides the model's tick (a live endpoint scraped every second wants 1 s ticks).
    """

    def __init__(
        self,
        model: TrafficModel,
        weight: Callable[[], float],
        labels: FeedLabels,
        *,
        origin: float,
        seed: int = 1,
        tick_s: float | None = None,
        horizon_s: float = 24 * 3600.0,
    ) -> None:
        if tick_s is not None:
            model = dataclasses.replace(model, tick_s=tick_s)
        self.model = model
        self.weight = weight
        self.labels = labels
        self.origin = origin
        self.bounds: tuple[float, ...] = (*model.bounds, math.inf)
        self._sim = Simulator(model, 1, np.random.default_rng(seed), horizon_s)
        self._arms = {"canary": _ArmCounters(), "baseline": _ArmCounters()}
        self._lock = threading.Lock()

    @property
    def now(self) -> float:
        """The end of the last generated tick (unix seconds)."""
        return self.origin + self._sim.t_end

    def advance(self, until: float) -> list[Series]:
        """Generate every tick ending by ``until``; the new samples, one per tick and series."""
        samples: dict[tuple[tuple[str, str], ...], list[Sample]] = {}
        while self.now + self.model.tick_s <= until + 1e-9:
            w = min(max(self.weight() / 100.0, 0.0), 1.0)
            tick = self._sim.tick(w)
            ts = round((self.origin + tick.t_end) * 1000)
            with self._lock:
                for name, arm in (("canary", tick.canary), ("baseline", tick.baseline)):
                    if self._add(self._arms[name], arm):
                        for labels, value in self._current(name):
                            samples.setdefault(tuple(sorted(labels.items())), []).append(
                                (ts, value)
                            )
        return [(dict(key), points) for key, points in samples.items()]

    def push_until(self, url: str, until: float) -> int:
        """Advance to ``until`` and remote-write the new samples; returns how many were pushed."""
        series = self.advance(until)
        push(url, series)
        return sum(len(points) for _, points in series)

    def exposition(self) -> str:
        """The current counters in Prometheus's text format, for a ``/metrics`` endpoint."""
        families: dict[str, list[str]] = {
            REQUESTS_METRIC: [f"# TYPE {REQUESTS_METRIC} counter"],
            "http_request_duration_seconds": ["# TYPE http_request_duration_seconds histogram"],
            SATURATION_METRIC: [f"# TYPE {SATURATION_METRIC} gauge"],
        }
        with self._lock:
            for name in ("canary", "baseline"):
                for labels, value in self._current(name):
                    metric = labels["__name__"]
                    family = metric if metric in families else "http_request_duration_seconds"
                    inner = ",".join(
                        f'{k}="{_escape(v)}"' for k, v in labels.items() if k != "__name__"
                    )
                    families[family].append(f"{metric}{{{inner}}} {value!r}")
        # samples grouped under their family's TYPE line, as the text format requires
        lines = [line for family in families.values() for line in family]
        return "\n".join(lines) + "\n"

    # -- internals --

    def _add(self, counters: _ArmCounters, arm: Any) -> bool:
        requests = float(arm.requests[0])
        if math.isnan(requests):
            return False  # a scrape gap: this tick has no sample at all
        errors = float(arm.errors[0])
        counters.errors += errors
        counters.ok += requests - errors
        increments = [float(x) for x in arm.buckets[0]]
        if not counters.buckets:
            counters.buckets = [0.0] * len(increments)
        counters.buckets = [a + b for a, b in zip(counters.buckets, increments, strict=True)]
        counters.saturation = float(arm.saturation[0])
        counters.seen = True
        return True

    def _current(self, arm: str) -> list[tuple[dict[str, str], float]]:
        counters = self._arms[arm]
        if not counters.seen:
            return []
        base = dict(self.labels.canary if arm == "canary" else self.labels.baseline)
        out: list[tuple[dict[str, str], float]] = [
            ({"__name__": REQUESTS_METRIC, **base, "code": "200"}, counters.ok),
            ({"__name__": REQUESTS_METRIC, **base, "code": "500"}, counters.errors),
        ]
        for bound, count in zip(self.bounds, counters.buckets, strict=True):
            out.append(({"__name__": BUCKET_METRIC, **base, "le": _le(bound)}, count))
        out.append(({"__name__": COUNT_METRIC, **base}, counters.buckets[-1]))
        if counters.saturation is not None:
            out.append(({"__name__": SATURATION_METRIC, **base}, counters.saturation))
        return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsEndpoint:
    """Serves a feed's counters on ``http://host:port/metrics``, advancing it on the wall clock.

    A background thread advances the feed to ``time.time()`` every ``poll_s``, so the counters move
    as a live service's would whether or not anyone scrapes. Use as a context manager; ``port=0``
    picks a free port (read :attr:`url`).
    """

    def __init__(
        self, feed: TrafficFeed, *, host: str = "127.0.0.1", port: int = 0, poll_s: float = 0.2
    ) -> None:
        self.feed = feed
        self.poll_s = poll_s
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                endpoint.feed.advance(time.time())
                body = endpoint.feed.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def start(self) -> MetricsEndpoint:
        self._threads = [
            threading.Thread(
                target=self._server.serve_forever,
                args=(0.05,),
                name="metrics-endpoint",
                daemon=True,
            ),
            threading.Thread(target=self._tick, name="metrics-feed", daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> MetricsEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.feed.advance(time.time())
