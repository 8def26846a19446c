"""kopf's peering pause reaches the reconcile queue, so a paused replica writes nothing.

kopf pauses a replica when a peer with a higher priority (or the same one) is alive: it stops the
replica's watch streams and handlers. Sluice's reconciles do not run in kopf's handlers but on its
own queue (``rollouts.reconcile_queue``), whose due times (a pause ending, an analysis interval,
a retry) kept firing in a paused replica, each one deciding from a cache the stopped watches no
longer refreshed. The shipped Deployment draws each pod's priority at random, so any restart of
the standby pod (a rolling update, a drain) has an even chance to outrank the working replica;
that replica then went on stepping its in-flight Rollouts from a frozen view beside the new one,
for as long as it stayed paused.

kopf tells nothing of a pause to handlers. Its one task that follows the pause is the daemon
killer (``kopf._core.engines.daemons.daemon_killer``, started once per operator with the pause's
``ToggleSet`` and looked up by name at start): :func:`install` wraps it so it also runs
:func:`mirror`, which calls the listener set by :func:`listening` (a context variable, so two
operators in one process each reach their own controller) with ``True`` on a pause and ``False``
on the resume; and with ``True`` once more when the operator stops, before kopf's peering lets a
standby take over. kopf is pinned (pyproject.toml) to the minor version this was written against;
:func:`install` refuses a kopf without that task, so an upgrade cannot silently drop the hold.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from kopf._core.engines import daemons

Listener = Callable[[bool, tuple[str, ...]], None]
"""Called with ``True`` and kopf's reasons (the names of its pausing toggles) on a pause, with
``False`` and no reasons on the resume."""

_listener: ContextVar[Listener | None] = ContextVar("sluice_pause_listener", default=None)
_WRAPPED = "_sluice_mirrors_pause"


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Around ``kopf.operator(...)``: the operator started inside calls ``listener`` on each
    pause and resume."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def reason(name: str) -> str:
    """kopf's name of a pausing toggle in words: its peering toggles are named ``NAME@NAMESPACE``
    (``NAME@None`` cluster-wide), its others say what they are."""
    if "@" in name:
        return (
            f"peering {name}: a live peer of higher or equal priority, or, at start, "
            "the peers not read yet"
        )
    return name


async def mirror(paused: Any, listener: Listener) -> None:
    """Follow kopf's pause toggle set (``is_on``/``wait_for``) until cancelled."""
    while True:
        await paused.wait_for(True)
        listener(True, tuple(sorted(reason(t.name) for t in paused if t.is_on() and t.name)))
        await paused.wait_for(False)
        listener(False, ())


def install() -> None:
    """Wrap kopf's daemon killer (idempotent: every operator in the process shares it)."""
    original = getattr(daemons, "daemon_killer", None)
    if original is None:
        raise RuntimeError("kopf's daemon_killer is gone: update rollouts/kopf_pause.py")
    if getattr(original, _WRAPPED, False):
        return

    async def daemon_killer(**kwargs: Any) -> None:
        listener = _listener.get()
        follower = None
        if listener is not None and kwargs.get("operator_paused") is not None:
            follower = asyncio.create_task(
                mirror(kwargs["operator_paused"], listener), name="sluice pause mirror"
            )
        # kopf's killer runs as a task of its own, so a cancellation (the operator stopping)
        # reaches this wrapper at once, not after the killer's own clean-up has awaited
        killer = asyncio.create_task(original(**kwargs), name="kopf daemon killer")
        try:
            await asyncio.wait({killer})
            killer.result()  # its failure, if it failed, is the operator's
        finally:
            if listener is not None:
                # the operator is stopping: kopf cancels this task with its other root tasks.
                # Hold the queue now, before anything here awaits: kopf's peering removes this
                # replica's record with a PATCH sent only as its own task unwinds, and the
                # standby works only once it has seen that (kopf's cleanup handlers run later)
                listener(True, ("the operator is exiting",))
            for task in (killer, follower):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    setattr(daemon_killer, _WRAPPED, True)
    daemons.daemon_killer = daemon_killer
