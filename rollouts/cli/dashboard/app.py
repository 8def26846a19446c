"""The dashboard's web application: pages, live updates and operations (starlette + jinja2).

Pages are rendered on the server from the CLI's view builder (``build_view`` / ``gather``), so
they work without JavaScript; the small script in ``static/dashboard.js`` only swaps in the
fragments the server pushes over server-sent events, filters the list as one types, and draws
the charts with uPlot (vendored in ``static/``, no CDN).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rollouts.cli import operations
from rollouts.cli.connection import CliError, Target
from rollouts.cli.dashboard.csrf import FIELD, SESSION_COOKIE, CsrfTokens, same_origin
from rollouts.cli.dashboard.feeds import Page, PageFeeds
from rollouts.cli.dashboard.hub import RESET, Key, RolloutHub
from rollouts.cli.dashboard.numbers import numbers
from rollouts.cli.dashboard.words import (
    PHASE_SYMBOLS,
    STEP_SYMBOLS,
    headline,
    in_flight,
    metric_words,
    phase_symbol,
    run_words,
)
from rollouts.cli.render_text import age, num
from rollouts.cli.rollout_view import MetricView, RolloutView, build_view
from rollouts.engine.plan import RequestKind
from rollouts.request_annotation import ANNOTATION

HERE = Path(__file__).parent
KEEPALIVE_SECONDS = 15.0
"""An SSE comment this often keeps proxies and the browser from closing a quiet stream."""
OPERATION_TIMEOUT = 30.0
"""How long an operation waits for the controller's answer (``status.lastRequest``), as the CLI."""

OPERATIONS: dict[str, tuple[str, str]] = {
    "promote": ("Promote", "End the current pause or step and go on to the next one."),
    "promote-full": (
        "Promote fully",
        "Skip every remaining step and analysis: all traffic to the new revision now "
        "(sluice promote --full).",
    ),
    "abort": (
        "Abort",
        "All traffic back to the stable revision, then scale the canary down. The Rollout stays "
        "Degraded until a new revision or a retry.",
    ),
    "retry": ("Retry", "Start the aborted revision's rollout again from the first step."),
    "pause": ("Pause", "Hold the rollout at its current step until resume (or promote)."),
    "resume": ("Resume", "Continue the rollout after a pause."),
}
"""Request kind → button label and what it does; the same kinds and annotation as the CLI."""


@dataclass(frozen=True)
class Outcome:
    """What became of an operation: sent (the annotation value), handled, ignored and why."""

    value: str | None
    handled: bool
    ignored: str | None = None
    replaced: str | None = None
    view: RolloutView | None = None
    error: str | None = None


def perform(target: Target, name: str, kind: RequestKind, timeout: float) -> Outcome:
    """The CLI's own operation: write the request annotation, wait for ``status.lastRequest``,
    and read why the controller ignored the request, if it did."""
    try:
        before, value = operations.send(target, name, kind)
        earlier = ((before.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
        doc = operations.wait_handled(target, name, value, timeout)
    except CliError as e:
        return Outcome(None, False, error=e.message)
    if doc is None:
        return Outcome(value, False, replaced=earlier)
    ignored = operations.ignored_reason(target, name, value, doc)
    return Outcome(value, True, ignored=ignored, replaced=earlier, view=build_view(doc))


Performer = Callable[[Target, str, RequestKind, float], Outcome]


# --------------------------------------------------------------------------- list filtering


@dataclass(frozen=True)
class Filter:
    text: str = ""
    namespace: str = ""
    phase: str = ""
    waiting: bool = False

    @classmethod
    def of(cls, request: Request) -> Filter:
        q = request.query_params
        return cls(
            text=q.get("q", "").strip(),
            namespace=q.get("namespace", "").strip(),
            phase=q.get("phase", "").strip(),
            waiting=q.get("waiting") in ("1", "on", "true"),
        )

    def keeps(self, view: RolloutView) -> bool:
        """The same rule the page's script applies as one types (see dashboard.js)."""
        if self.namespace and view.namespace != self.namespace:
            return False
        if self.phase and (view.phase or "Unknown") != self.phase:
            return False
        if self.waiting and not view.waits_for_person:
            return False
        text = self.text.lower()
        return not text or text in f"{view.namespace}/{view.name} {view.message}".lower()


# --------------------------------------------------------------------------- chart data


def chart_data(m: MetricView, page: Page, run: str) -> dict[str, Any]:
    """What dashboard.js draws for one metric: the e-value path against its threshold, and the
    per-window trend with the estimate and its interval. Non-finite numbers become null."""

    def clean(x: float | None) -> float | None:
        return x if x is not None and math.isfinite(x) else None

    path = page.path(run, m.name)
    n = numbers(m)
    return {
        "metric": m.name,
        "path": {
            "x": [p.measurements for p in path],
            "y": [clean(p.e_value) for p in path],
        },
        "threshold": clean(n.threshold),
        "trend": [clean(v) for v in m.trend],
        "estimate": clean(n.estimate),
        "interval": [clean(n.lower), clean(n.upper)] if n.has_interval else None,
    }


# --------------------------------------------------------------------------- security


class Guard:
    """Pure ASGI middleware: refuse requests for other host names (a page of another site that
    rebinds its DNS name to 127.0.0.1 would otherwise read the dashboard), and send headers that
    keep the pages from being framed, sniffed or given foreign scripts."""

    HEADERS: Sequence[tuple[bytes, bytes]] = (
        (
            b"content-security-policy",
            b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
        (b"cache-control", b"no-store"),
    )

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str] | None) -> None:
        self.app = app
        self.allowed = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed is not None:
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host_name(host) not in self.allowed:
                response = Response("unknown host", status_code=400, media_type="text/plain")
                await response(scope, receive, send)
                return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def host_name(host: str) -> str:
    """``[::1]:8080`` → ``::1``, ``localhost:8080`` → ``localhost``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


# --------------------------------------------------------------------------- the app


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = num
    env.globals.update(
        STEP_SYMBOLS=STEP_SYMBOLS,
        PHASE_SYMBOLS=PHASE_SYMBOLS,
        OPERATIONS=OPERATIONS,
        phase_symbol=phase_symbol,
        metric_words=metric_words,
        numbers=numbers,
        run_words=run_words,
        headline=headline,
        in_flight=in_flight,
        chart_data=chart_data,
        json=lambda v: json.dumps(v, separators=(",", ":")),
    )
    return env


def create_app(
    hub: RolloutHub,
    feeds: PageFeeds,
    target_for: Callable[[str], Target],
    *,
    read_only: bool = False,
    allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS,
    operation_timeout: float = OPERATION_TIMEOUT,
    tokens: CsrfTokens | None = None,
    perform_operation: Performer = perform,
    context: str = "",
) -> ASGIApp:
    """The ASGI app; it starts ``hub`` with itself. ``target_for(namespace)`` gives the user's client
    acting in that namespace. ``allowed_hosts`` None accepts any Host (``--allow-remote``)."""
    env = _environment()
    csrf = tokens or CsrfTokens()

    def render(request: Request, template: str, status: int = 200, **values: Any) -> Response:
        session = request.cookies.get(SESSION_COOKIE)
        fresh = session is None
        session = session or csrf.new_session()
        html = env.get_template(template).render(
            csrf_field=FIELD,
            csrf_token=csrf.token(session),
            read_only=read_only,
            context=context,
            hub_error=hub.error,
            now=datetime.now(UTC),
            age=age,
            **values,
        )
        response = HTMLResponse(html, status_code=status)
        if fresh:
            response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict", path="/")
        return response

    async def synced() -> None:
        await asyncio.to_thread(hub.synced.wait, 15.0)

    async def index(request: Request) -> Response:
        await synced()
        views = hub.views()
        flt = Filter.of(request)
        return render(
            request,
            "list.html",
            rows=views,
            shown=[v for v in views if flt.keeps(v)],
            filter=flt,
            namespaces=sorted({v.namespace for v in views}),
            phases=sorted({v.phase or "Unknown" for v in views}),
        )

    def key_of(request: Request) -> Key:
        return (str(request.path_params["namespace"]), str(request.path_params["name"]))

    async def rollout_page(request: Request) -> Response:
        await synced()
        key = key_of(request)
        try:
            page = await feeds.page(key)
        except CliError as e:
            return render(
                request, "error.html", 502, title="Cannot read the rollout", message=e.message
            )
        if page is None:
            return render(
                request,
                "error.html",
                404,
                title="No such rollout",
                message=f"rollout {key[0]}/{key[1]} is not there (or was deleted)",
            )
        return render(request, "rollout.html", page=page, view=page.view)

    async def confirm(request: Request) -> Response:
        key, kind = key_of(request), str(request.path_params["operation"])
        if kind not in OPERATIONS:
            return render(request, "error.html", 404, title="No such operation", message=kind)
        if read_only:
            return read_only_refusal(request)
        await synced()
        view = hub.view(key)
        if view is None:
            return render(
                request, "error.html", 404, title="No such rollout", message=f"{key[0]}/{key[1]}"
            )
        return render(request, "confirm.html", view=view, kind=kind)

    def read_only_refusal(request: Request) -> Response:
        return render(
            request,
            "error.html",
            403,
            title="Read-only dashboard",
            message="this dashboard was started with --read-only: no operations",
        )

    async def operate(request: Request) -> Response:
        key, kind = key_of(request), str(request.path_params["operation"])
        if kind not in OPERATIONS:
            return render(request, "error.html", 404, title="No such operation", message=kind)
        if read_only:
            return read_only_refusal(request)
        form = await request.form()
        token = form.get(FIELD)
        if not csrf.valid(
            request.cookies.get(SESSION_COOKIE), token if isinstance(token, str) else None
        ):
            return render(
                request,
                "error.html",
                403,
                title="Refused: no valid form token",
                message="the request did not carry this session's form token (CSRF "
                "protection); reload the rollout's page and use its buttons",
            )
        headers = request.headers
        if not same_origin(
            headers.get("origin"), headers.get("referer"), headers.get("host"), request.url.scheme
        ):
            return render(
                request,
                "error.html",
                403,
                title="Refused: foreign origin",
                message="the request came from another site's page",
            )
        outcome = await asyncio.to_thread(
            perform_operation,
            target_for(key[0]),
            key[1],
            cast(RequestKind, kind),  # one of OPERATIONS, checked above
            operation_timeout,
        )
        return render(
            request,
            "result.html",
            502 if outcome.error else 200,
            key=key,
            kind=kind,
            outcome=outcome,
            timeout=operation_timeout,
        )

    async def list_events(request: Request) -> Response:
        sub = hub.subscribe()
        row = env.get_template("row.html")

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                while True:
                    key = await sub.next(KEEPALIVE_SECONDS)
                    if key is None:
                        yield ": keepalive\n\n"
                    elif key == RESET:
                        yield sse("reset", {})
                    else:
                        view = hub.view(key)
                        rid = row_id(*key)
                        if view is None:
                            yield sse("remove", {"id": rid})
                        else:
                            yield sse(
                                "row",
                                {
                                    "id": rid,
                                    "html": row.render(r=view, now=datetime.now(UTC), age=age),
                                },
                            )
            finally:
                hub.unsubscribe(sub)

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def rollout_events(request: Request) -> Response:
        key = key_of(request)
        queue = feeds.subscribe(key)
        body = env.get_template("rollout_body.html")

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                while True:
                    try:
                        page = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                    except TimeoutError:
                        yield ": keepalive\n\n"
                        continue
                    if page is None:
                        yield sse("gone", {"message": f"rollout {key[0]}/{key[1]} was deleted"})
                        continue
                    html = body.render(page=page, view=page.view, now=datetime.now(UTC), age=age)
                    yield sse("view", {"html": html, "phase": page.view.phase})
            finally:
                feeds.unsubscribe(key, queue)

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def healthz(_request: Request) -> Response:
        return JSONResponse(
            {"synced": hub.synced.is_set(), "rollouts": len(hub.keys()), "error": hub.error}
        )

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/events", list_events),
        Route("/events/rollouts/{namespace}/{name}", rollout_events),
        Route("/rollouts/{namespace}/{name}", rollout_page),
        Route("/rollouts/{namespace}/{name}/confirm/{operation}", confirm),
        Route("/rollouts/{namespace}/{name}/operations/{operation}", operate, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    env.globals["row_id"] = row_id

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        hub.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            hub.stop()
            await feeds.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    return Guard(app, allowed_hosts)


def row_id(namespace: str, name: str) -> str:
    """An HTML id for a list row: namespace and name are DNS labels, so ``--`` cannot collide."""
    return f"row-{namespace}--{name}"


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def namespaced(target: Target) -> Callable[[str], Target]:
    """The user's client acting in another namespace (same credentials, same connection pool)."""
    return lambda namespace: replace(target, namespace=namespace)
