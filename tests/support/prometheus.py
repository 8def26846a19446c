"""A real Prometheus for integration tests, and a hand-written remote-write client to feed it.

Tests need exact series at exact timestamps (a counter reset mid-window, a 0/0 ratio, two series
where one is expected), which scraping cannot give: a scrape lands when it lands. Prometheus's
remote-write receiver takes samples at any timestamp we choose, and with
``out_of_order_time_window`` it also takes samples older than the newest one, so each test can push
its own history. The encoder is a few dozen lines of protobuf varints and a literal-only snappy
block, because the PyPI clients pull in grpcio-tools and a snappy binding for this much.

Each test isolates its data with a unique label value (``test_id``), so one server per session
serves every test. A test that needs to stop a server uses :func:`start_prometheus` for its own.

The ``prometheus`` binary is a test dependency (Debian ``prometheus``, installed by
``scripts/system-deps.sh``); without it the fixtures fail with that instruction, never skip:
a skipped integration suite looks green and tests nothing.
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

Labels = Mapping[str, str]
Sample = tuple[int, float]  # (timestamp in ms, value)
Series = tuple[Labels, Sequence[Sample]]

__all__ = [
    "PrometheusServer",
    "encode_write_request",
    "free_port",
    "prometheus",
    "push",
    "snappy_compress",
    "start_prometheus",
    "unique_id",
]

# One opener for everything: the environment's proxies must not route loopback traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- protobuf (just what WriteRequest needs) ---------------------------------------------------


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


def _field(number: int, wire_type: int) -> bytes:
    return _varint((number << 3) | wire_type)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _field(number, 2) + _varint(len(payload)) + payload


def encode_write_request(series: Sequence[Series]) -> bytes:
    """``prometheus.WriteRequest`` protobuf bytes for ``series`` (labels sorted, as required).

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
            sample = _field(1, 1) + struct.pack("<d", float(value)) + _field(2, 0) + _varint(int(ts))
            body += _bytes_field(2, sample)
        out += _bytes_field(1, bytes(body))
    return bytes(out)


# -- snappy block format, literals only ----------------------------------------------------------


def snappy_compress(data: bytes) -> bytes:
    """Valid snappy block-format bytes that store ``data`` as literal chunks (no compression).

    Prometheus only requires the format, not a good ratio: preamble = uvarint length, then
    literal elements (tag ``61<<2``: length-1 in two little-endian bytes, up to 64 KiB each).
    """
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


# -- a server ------------------------------------------------------------------------------------


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (never 9090, which a packaged server may hold)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != 9090:
            return port


def unique_id(prefix: str = "t") -> str:
    """A label value no other test uses, so tests sharing a server never see each other's series."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def push(url: str, series: Sequence[Series], *, timeout: float = 10.0) -> None:
    """Remote-write ``series`` to the Prometheus at ``url``; raises with Prometheus's reason on refusal."""
    body = snappy_compress(encode_write_request(series))
    request = urllib.request.Request(
        url.rstrip("/") + "/api/v1/write",
        data=body,
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
        raise AssertionError(f"remote write refused ({e.code}): {e.read().decode(errors='replace')}") from e


@dataclass
class PrometheusServer:
    """One ``prometheus`` process on 127.0.0.1 with its own data directory and log file."""

    directory: Path
    scrape_targets: Sequence[str] = ()
    scrape_interval: str = "1s"
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "prometheus.log"

    def start(self, *, ready_within: float = 20.0) -> PrometheusServer:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail(
                "the `prometheus` binary is not on PATH: install it with scripts/system-deps.sh "
                "(Debian package `prometheus`); integration tests run against a real server"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "prometheus.yml"
        config.write_text(json.dumps(self._config()))  # JSON is YAML
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = self.port or free_port()
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    [
                        binary,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={self.directory / 'data'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--web.enable-remote-write-receiver",
                        "--storage.tsdb.retention.time=100y",
                        "--log.level=warn",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            if self._wait_ready(ready_within):
                return self
            if "address already in use" in self.log.read_text(errors="replace"):
                self.port = 0
                continue
            break
        self.stop()
        pytest.fail(f"prometheus did not become ready at {self.url}; log:\n{self._log_tail()}")

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s); safe to call twice."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def push(self, series: Sequence[Series]) -> None:
        push(self.url, series)

    def query(self, promql: str, at: float) -> list[dict[str, Any]]:
        """Raw instant-query result, for tests checking what Prometheus holds."""
        qs = urllib.parse.urlencode({"query": promql, "time": repr(at)})
        with _OPENER.open(f"{self.url}/api/v1/query?{qs}", timeout=10) as response:
            data = json.load(response)
        result: list[dict[str, Any]] = data["data"]["result"]
        return result

    def _config(self) -> dict[str, Any]:
        scrape = [
            {
                "job_name": "sluice-simulator",
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "static_configs": [{"targets": list(self.scrape_targets)}],
            }
        ] if self.scrape_targets else []
        return {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": "15s"},
            "storage": {"tsdb": {"out_of_order_time_window": "3650d"}},
            "scrape_configs": scrape,
        }

    def _wait_ready(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with _OPENER.open(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        return False

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return "(no log)"


@contextmanager
def start_prometheus(
    directory: Path, *, scrape_targets: Sequence[str] = (), scrape_interval: str = "1s"
) -> Iterator[PrometheusServer]:
    """A server of the caller's own (e.g. to stop it mid-test), stopped on exit."""
    server = PrometheusServer(directory, scrape_targets=scrape_targets, scrape_interval=scrape_interval)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """The session's shared Prometheus: fresh data directory, remote-write receiver on."""
    with start_prometheus(tmp_path_factory.mktemp("prometheus")) as server:
        yield server
