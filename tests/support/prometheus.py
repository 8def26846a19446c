"""A real Prometheus for integration tests, and a hand-written remote-write client to feed it.

Tests need exact series at exact timestamps (a counter reset mid-window, a 0/0 ratio, two series
where one is expected), which scraping cannot give: a scrape lands when it lands. Prometheus's
remote-write receiver takes samples at any timestamp we choose, and with
``out_of_order_time_window`` it also takes samples older than the newest one, so each test can push
its own history. The encoder lives in :mod:`simulations.prometheus_feed` (``sluice simulate
--prometheus`` pushes with it too) and is re-exported here.

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
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from simulations.prometheus_feed import Sample, Series, encode_write_request, push, snappy_compress

__all__ = [
    "PrometheusServer",
    "Sample",
    "Series",
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
        scrape = (
            [
                {
                    "job_name": "sluice-simulator",
                    "scrape_interval": self.scrape_interval,
                    "scrape_timeout": self.scrape_interval,
                    "static_configs": [{"targets": list(self.scrape_targets)}],
                }
            ]
            if self.scrape_targets
            else []
        )
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
    server = PrometheusServer(
        directory, scrape_targets=scrape_targets, scrape_interval=scrape_interval
    )
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
