"""A webhook receiver on 127.0.0.1: records every request, answers as its mode says.

Modes: ``ok`` (200), ``slow`` (200 after ``delay`` seconds), ``500`` (an error), ``hang`` (never
answers until the receiver is closed, as a wedged endpoint does). Threaded, so a hanging request
does not keep the next one out. apprise's ``json://127.0.0.1:PORT/path`` posts here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import pytest

Mode = Literal["ok", "slow", "500", "hang"]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self, mode: Mode = "ok", delay: float = 1.0) -> None:
        self.mode: Mode = mode
        self.delay = delay
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.path, dict(self.headers), body, time.monotonic())
                    )
                    mode = receiver.mode
                if mode == "hang":
                    receiver._closed.wait()
                    return
                if mode == "slow":
                    receiver._closed.wait(receiver.delay)
                status = 500 if mode == "500" else 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:  # quiet test output
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, scheme: str = "json", path: str = "/hook") -> str:
        """An apprise URL for this receiver (``json://`` or ``form://``)."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def close(self) -> None:
        self._closed.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    try:
        yield r
    finally:
        r.close()
