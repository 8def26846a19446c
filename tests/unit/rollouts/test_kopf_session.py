"""kopf's session: bounded connections, the same credentials kopf would send.

Against a real aiohttp server on 127.0.0.1 that records the client port of every request: many
requests at once share at most ``limit`` connections, and carry the token and headers of the
``ConnectionInfo`` they came from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import kopf
import pytest
from aiohttp import web

from rollouts.kopf_session import (
    REQUEST_CONNECTIONS,
    WATCHED_RESOURCES,
    RetriedRequestsAreWarnings,
    bounded_session,
    connection_limit,
    quiet_retried_requests,
)


class Recorder:
    def __init__(self) -> None:
        self.peers: set[int] = set()
        self.auth: set[str] = set()
        self.in_flight = 0
        self.most_in_flight = 0

    async def handle(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.peers.add(peer[1] if peer else -1)
        self.auth.add(request.headers.get("Authorization", ""))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)  # held open a moment, so requests overlap
        self.in_flight -= 1
        return web.json_response({"ok": True})


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Recorder]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_get("/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", recorder
    await runner.cleanup()


async def test_many_requests_share_the_bounded_connections(server: tuple[str, Recorder]) -> None:
    url, recorder = server
    info = kopf.ConnectionInfo(server=url, token="secret-token", default_namespace="team")
    context = bounded_session(info, limit=4)
    try:
        session = context.aiohttp_session

        async def get(i: int) -> int:
            async with session.get(f"{url}/apis/x/{i}") as response:
                return response.status

        statuses = await asyncio.gather(*(get(i) for i in range(200)))
    finally:
        await context.aiohttp_session.close()
    assert statuses == [200] * 200
    assert len(recorder.peers) <= 4  # 200 requests, no more than 4 connections
    assert recorder.most_in_flight <= 4
    assert recorder.auth == {"Bearer secret-token"}
    assert context.server == url and context.default_namespace == "team"


async def test_an_unbounded_session_would_have_opened_more(server: tuple[str, Recorder]) -> None:
    """The check above can fail: the same requests over kopf's own (unlimited) connector use
    more than four connections."""
    url, recorder = server
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def get(i: int) -> int:
            async with session.get(f"{url}/apis/x/{i}") as response:
                return response.status

        await asyncio.gather(*(get(i) for i in range(200)))
    assert len(recorder.peers) > 4


def test_the_limit_leaves_room_beyond_every_watch_stream() -> None:
    assert connection_limit(()) == WATCHED_RESOURCES + REQUEST_CONNECTIONS
    # namespaced: kopf watches each resource in each namespace, each stream holds a connection
    assert connection_limit(("a", "b", "c")) == 3 * WATCHED_RESOURCES + REQUEST_CONNECTIONS
    assert connection_limit(("a", "b", "c")) - 3 * WATCHED_RESOURCES >= REQUEST_CONNECTIONS


def _record(level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, msg, None, None)


def test_a_retried_attempt_is_a_warning_and_a_final_failure_stays_an_error() -> None:
    f = RetriedRequestsAreWarnings()
    retried = _record(
        logging.ERROR,
        "Request attempt #1/9 failed; will retry: PATCH http://x/rollouts/r7 -> "
        "ConnectionTimeoutError('Connection timeout to host')",
    )
    assert f.filter(retried) and retried.levelno == logging.WARNING
    assert retried.levelname == "WARNING"
    final = _record(logging.ERROR, "Request attempt #9/9 failed; escalating: PATCH http://x -> e")
    assert f.filter(final) and final.levelno == logging.ERROR
    other = _record(logging.ERROR, "Handler 'sluice' failed with an exception. Will retry.")
    assert f.filter(other) and other.levelno == logging.ERROR


def test_installed_on_kopfs_request_loggers(caplog: pytest.LogCaptureFixture) -> None:
    quiet_retried_requests()
    quiet_retried_requests()  # idempotent
    objects = logging.getLogger("kopf.objects")
    assert sum(isinstance(f, RetriedRequestsAreWarnings) for f in objects.filters) == 1
    with caplog.at_level(logging.DEBUG, logger="kopf.objects"):
        objects.error("Request attempt #2/9 failed; will retry: GET http://x -> boom")
    assert [r.levelname for r in caplog.records] == ["WARNING"]


def test_the_watch_allowance_covers_every_resource_the_operator_watches() -> None:
    """``WATCHED_RESOURCES`` is a constant; the operator's own registry says how many resources
    kopf watches (each a stream, each a connection), plus the peering object's."""
    import kubernetes

    from rollouts.operator import Controller, build_registry
    from rollouts.settings import Settings

    settings = Settings(standalone=True, metrics_port=None, liveness_port=None)
    controller = Controller(kubernetes.client.ApiClient(), settings)
    try:
        registry = build_registry(controller, settings)
        watched = {
            h.selector
            for handlers in (registry._indexing, registry._watching, registry._changing)
            for h in handlers.get_all_handlers()
        }
    finally:
        controller.close()
    assert len(watched) >= 8  # Rollouts, AnalysisRuns, slot Deployments, Services, 4 routers
    assert len(watched) + 1 <= WATCHED_RESOURCES
