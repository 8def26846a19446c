"""``sluice get rollout NAME [--watch]``: one Rollout, as a person follows it.

On a terminal the view is drawn with rich (colours, a weight bar, tables) and ``--watch`` redraws
it in place; anywhere else (a pipe, a CI log, ``TERM=dumb``, ``--no-color``) it is plain text and
``--watch`` appends a new block only when something changed, so a log stays readable.

The Rollout is followed (``kube.follow_rollout``: a watch, reopened and resynchronised as needed,
or polling where watching is not allowed) in a background thread that hands changes to the
drawing loop; the loop also redraws every few seconds on its own, because the slot
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
from typing import Any

import click

from rollouts.cli.connection import (
    CliError,
    Target,
    cluster_options,
    follow_rollout,
    get_existing_rollout,
)
from rollouts.cli.render_text import render_text
from rollouts.cli.rollout_view import RolloutView, gather

REFRESH_SECONDS = 2.0
"""Redraw at least this often while watching: readiness, events and ages change between
Rollout updates."""


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
class _Failed:
    error: CliError


_Message = _Changed | _Failed


def _follow(target: Target, name: str, out: queue.Queue[_Message], stop: threading.Event) -> None:
    """Hand every change of the Rollout to the drawing loop, and how the following ended."""
    try:
        for doc in follow_rollout(target, name, timeout=None):
            if stop.is_set():
                return
            out.put(_Changed(doc))
    except CliError as e:  # deleted, or the cluster failed in a way a retry would not mend
        out.put(_Failed(e))


def _changes(target: Target, name: str) -> Iterator[RolloutView]:
    """A view now, then one after every change of the Rollout and every ``REFRESH_SECONDS``.

    Ends with a :class:`CliError` when the Rollout is deleted or the cluster fails."""
    view = gather(target, name)  # fails at once, as a one-shot get would, when it is not there
    yield view
    messages: queue.Queue[_Message] = queue.Queue()
    stop = threading.Event()
    thread = threading.Thread(
        target=_follow, args=(target, name, messages, stop), name="watch", daemon=True
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
                if isinstance(message, _Failed):
                    raise message.error
                latest = message.rollout
                try:
                    message = messages.get_nowait()
                except queue.Empty:
                    message = None
            doc = latest or get_existing_rollout(target, name, target.namespace)
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
