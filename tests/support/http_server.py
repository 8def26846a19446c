"""A real HTTP server on 127.0.0.1 for tests: programmable routes, recorded requests.

Web metrics, gates and notification webhooks are all "Sluice calls a URL"; testing them against a
mock of ``httpx``/``requests`` would test the mock. This server answers over real sockets, from a
thread, so timeouts, refused connections and slow or hanging receivers behave as they do in a
cluster. One server serves many routes; a test programs each route's answer (and may change it
while the controller runs: a gate that opens, a check that starts failing) and reads back every
request it received.

Modes per route: a fixed answer (status, body, headers), ``delay`` seconds before answering
(slow), ``hang`` (never answers until the server stops: the client's timeout must fire), or a
callable computing the answer from the request. Bad JSON is simply a body that is not JSON.

Usage::

    with HttpServer() as server:
        server.route("/gate", status=403, body="closed")
        url = server.url("/gate")
        ...
        server.route("/gate", status=200, body="open")
        assert server.requests("/gate")[-1].method == "GET"
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Answer", "HttpServer", "Recorded", "http_server"]


@dataclass(frozen=True)
class Recorded:
    """One request the server received, as it arrived."""

    method: str
    path: str
    """The path without the query string."""
    query: str
    """The raw query string (still percent-encoded)."""
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    """What a route answers. ``body`` may be bytes, text, or anything JSON-serialisable."""

    status: int = 200
    body: Any = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (a slow receiver)."""
    hang: bool = False
    """Never answer (until the server stops): the client's timeout is what ends the call."""

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode(), headers
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode(), headers


Responder = Callable[[Recorded], Answer]


class HttpServer:
    """A threaded HTTP/1.1 server on a free port of 127.0.0.1 (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, Responder] = {}
        self._requests: list[Recorded] = []
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorded = Recorded(
                    method=self.command,
                    path=parts.path,
                    query=parts.query,
                    headers={k: v for k, v in self.headers.items()},
                    body=body,
                )
                answer = server._answer(recorded)
                if answer.hang:
                    server._stopping.wait()
                    self.close_connection = True
                    return
                if answer.delay and server._stopping.wait(answer.delay):
                    self.close_connection = True
                    return
                payload, headers = answer.encoded()
                self.send_response(answer.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging and slow handlers
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------ programming
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(
        self,
        path: str,
        *,
        status: int = 200,
        body: Any = b"",
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        hang: bool = False,
        respond: Responder | None = None,
    ) -> None:
        """Set (or replace) what ``path`` answers; ``respond`` computes it per request instead."""
        answer = Answer(status, body, dict(headers or {}), delay, hang)
        with self._lock:
            self._routes[path] = respond if respond is not None else (lambda _r: answer)

    def requests(self, path: str | None = None) -> list[Recorded]:
        """Requests received so far (for ``path`` only, when given), oldest first."""
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def _answer(self, recorded: Recorded) -> Answer:
        with self._lock:
            self._requests.append(recorded)
            responder = self._routes.get(recorded.path)
        if responder is None:
            return Answer(404, f"no route {recorded.path}")
        return responder(recorded)


@contextmanager
def http_server() -> Iterator[HttpServer]:
    """A started :class:`HttpServer`, stopped on exit (for a pytest fixture's ``yield``)."""
    with HttpServer() as server:
        yield server
