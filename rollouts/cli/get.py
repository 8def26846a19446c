"""``sluice get rollout NAME [--watch]``: one Rollout, as a person follows it.

On a terminal the view is drawn with rich (colours, a weight bar, tables) and ``--watch`` redraws
it in place; anywhere else (a pipe, a CI log, ``TERM=dumb``, ``--no-color``) it is plain text and
``--watch`` appends a new block only when something changed, so a log stays readable.

The watch is a Kubernetes watch on the Rollout, read in a background thread that hands changes to
the drawing loop; the loop also redraws every few seconds on its own, because the slot
Deployments, Events and AnalysisRuns change without the Rollout changing, and ages move on.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import click
import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from rollouts.cli.kube import (
    GROUP,
    REQUEST_TIMEOUT,
    ROLLOUTS,
    VERSION,
    CliError,
    Target,
    cluster_options,
    describe,
)
from rollouts.cli.render_text import render_text
from rollouts.cli.rollout_view import RolloutView, gather

REFRESH_SECONDS = 2.0
"""Redraw at least this often while watching: readiness, events and ages change between
Rollout updates."""
WATCH_TIMEOUT_SECONDS = 240
"""A watch request ends after this long (server side) and is reopened from where it left off;
API servers and proxies close long requests anyway, so the code path is exercised, not rare."""


@click.group()
def get() -> None:
    """Show Sluice objects.

    \b
    Example:
      sluice get rollout web -n shop --watch
    """


def _plain(no_color: bool) -> bool:
    """Plain text unless a person is looking at a capable terminal."""
    return no_color or os.environ.get("TERM") == "dumb" or not sys.stdout.isatty()


def _unicode() -> bool:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    return os.environ.get("TERM") != "dumb" and encoding in ("utf8", "utf16", "utf32")


def _now() -> datetime:
    return datetime.now(UTC)


@get.command("rollout")
@click.argument("name")
@click.option(
    "-w",
    "--watch",
    is_flag=True,
    help="Keep watching: redraw on every change (and every few seconds) until Ctrl-C. "
    "Ctrl-C exits with status 0; a Rollout deleted meanwhile ends the watch with status 1.",
)
@click.option(
    "--no-color",
    is_flag=True,
    help="Plain text even on a terminal (also the default when stdout is not a terminal "
    "or TERM=dumb).",
)
@cluster_options
def rollout(name: str, watch: bool, no_color: bool, target: Target) -> None:
    """Show one Rollout: phase, steps, weights, slots, analysis evidence and recent events.

    The view shows the phase and its message; the step list with a marker on the current step;
    the canary weight against the weight the steps ask for (blue-green: which slot is active
    and which is preview); each slot's revision, image and ready/desired pods; each analysis
    metric's estimate, interval and e-value (or statistic) against its threshold with a trend
    of its last measurements; why it is paused or aborted; and the last events.

    \b
    Examples:
      sluice get rollout web                # once
      sluice get rollout web -n shop -w     # live, until Ctrl-C
      sluice get rollout web | less         # plain text
    """
    plain = _plain(no_color)
    if not watch:
        view = gather(target, name)
        if plain:
            click.echo(render_text(view, _now(), unicode=_unicode()), nl=False)
        else:
            from rollouts.cli.render_rich import console, render_rich

            console().print(render_rich(view, _now()))
        return
    try:
        if plain:
            _watch_plain(target, name)
        else:
            _watch_live(target, name)
    except KeyboardInterrupt:
        # a person ending the watch is the normal way out, not an error
        click.echo("", err=True)
        sys.exit(0)


# ----------------------------------------------------------------------------------- watching


@dataclass(frozen=True)
class _Changed:
    rollout: dict[str, Any]


@dataclass(frozen=True)
class _Deleted:
    pass


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_Message = _Changed | _Deleted | _Failed


def _watch_rollout(
    target: Target, name: str, out: queue.Queue[_Message], stop: threading.Event
) -> None:
    """List, then watch from the list's resourceVersion; reopen the watch when it times out, and
    list again when the server says that version is gone (410). Everything goes to ``out``."""
    ns = target.namespace
    custom = target.custom
    version: str | None = None
    try:
        while not stop.is_set():
            if version is None:
                doc = cast(
                    dict[str, Any],
                    custom.list_namespaced_custom_object(
                        GROUP, VERSION, ns, ROLLOUTS, _request_timeout=REQUEST_TIMEOUT
                    ),
                )
                version = str((doc.get("metadata") or {}).get("resourceVersion") or "") or None
                mine = [i for i in doc.get("items") or [] if i["metadata"].get("name") == name]
                if not mine:
                    out.put(_Deleted())
                    return
                out.put(_Changed(mine[0]))
            w = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in w.stream(  # type: ignore[no-untyped-call]
                    custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    ns,
                    ROLLOUTS,
                    field_selector=f"metadata.name={name}",
                    resource_version=version,
                    timeout_seconds=WATCH_TIMEOUT_SECONDS,
                    _request_timeout=(REQUEST_TIMEOUT, WATCH_TIMEOUT_SECONDS + 30),
                ):
                    if stop.is_set():
                        return
                    obj = event.get("raw_object") or event.get("object") or {}
                    meta = obj.get("metadata") or {}
                    # the position moves on with every event, ours or not
                    version = str(meta.get("resourceVersion") or version)
                    if meta.get("name") != name:  # selectors are a hint (the emulator ignores them)
                        continue
                    if event.get("type") == "DELETED":
                        out.put(_Deleted())
                        return
                    out.put(_Changed(obj))
            except ApiException as e:
                if e.status != 410:
                    raise
                version = None  # too old: list again
            except urllib3.exceptions.ReadTimeoutError:
                pass  # an idle watch the server did not close: reopen it
            finally:
                w.stop()  # type: ignore[no-untyped-call]
    except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as e:
        out.put(_Failed(e))


def _fetch(target: Target, name: str) -> dict[str, Any] | None:
    """The Rollout, or None once it is gone: it existed when the watch began, so a 404 now
    means it was deleted (whatever the API server's 404 says)."""
    what = f"rollout {target.namespace}/{name}"
    try:
        doc = target.custom.get_namespaced_custom_object(
            GROUP, VERSION, target.namespace, ROLLOUTS, name, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as e:
        if e.status == 404:
            return None
        raise CliError(describe(e, what, target)) from None
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise CliError(describe(e, what, target)) from None
    return cast(dict[str, Any], doc)


def _changes(target: Target, name: str) -> Iterator[RolloutView]:
    """A view now, then one after every change of the Rollout and every ``REFRESH_SECONDS``.

    Ends with a :class:`CliError` when the Rollout is deleted or the cluster fails."""
    what = f"rollout {target.namespace}/{name}"
    view = gather(target, name)  # fails at once, as a one-shot get would, when it is not there
    yield view
    messages: queue.Queue[_Message] = queue.Queue()
    stop = threading.Event()
    thread = threading.Thread(
        target=_watch_rollout, args=(target, name, messages, stop), name="watch", daemon=True
    )
    thread.start()
    try:
        latest: dict[str, Any] | None = None
        while True:
            try:
                message: _Message | None = messages.get(timeout=REFRESH_SECONDS)
            except queue.Empty:
                message = None
            while message is not None:  # fold a burst of changes into one redraw
                if isinstance(message, _Deleted):
                    raise CliError(f"{what} was deleted")
                if isinstance(message, _Failed):
                    raise CliError(describe(message.error, f"watch {what}", target))
                latest = message.rollout
                try:
                    message = messages.get_nowait()
                except queue.Empty:
                    message = None
            doc = latest if latest is not None else _fetch(target, name)
            if doc is None:
                raise CliError(f"{what} was deleted")
            yield gather(target, name, doc)
            latest = None  # later redraws read it afresh (status may change with no event seen)
    finally:
        stop.set()


def _watch_plain(target: Target, name: str) -> None:
    """A new block each time the view changes (the view, not its ages: a log should not gain
    a block every refresh only because "12s ago" became "14s ago")."""
    last: RolloutView | None = None
    unicode = _unicode()
    for view in _changes(target, name):
        if view == last:
            continue
        if last is not None:
            click.echo("")
        click.echo(render_text(view, _now(), unicode=unicode), nl=False)
        sys.stdout.flush()
        last = view


def _watch_live(target: Target, name: str) -> None:
    from rich.live import Live

    from rollouts.cli.render_rich import console, render_rich

    views = _changes(target, name)
    first = next(views)
    with Live(
        render_rich(first, _now()),
        console=console(),
        auto_refresh=False,
        vertical_overflow="crop",
        redirect_stdout=False,
        redirect_stderr=False,
    ) as live:
        for view in views:
            live.update(render_rich(view, _now()), refresh=True)
