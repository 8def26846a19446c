"""Watch-stream ERROR events of any code, and lists or watches the API server keeps refusing with
a 5xx or 429, restart the watch instead of stopping the controller.

kopf 1.45 restarts a watch on an ERROR event with code 410 (resource version too old) and raises
``WatchingError`` on any other code; the error ends kopf's watcher task and with it the operator,
so an API server (or a proxy in front of it) that sends a 500 or 503 inside a watch stream made the
controller exit, and one that kept doing it made a crash loop. kopf has no setting for this.

The fix is confined here: ``kopf._cogs.clients.watching.continuous_watch`` (the one function that
raises it, looked up by name on every reconnect by ``infinite_watch``) is wrapped so a
``WatchingError`` ends that stream the way a 410 does: kopf lists again and watches from the new
list, so no event is lost (reconciles are level-triggered). Errors in a row wait longer before the
restart (doubling to ``MAX_DELAY``) so a server that keeps failing is not hammered; a real event
resets the wait. Each error is one warning line.

The same holds for the list and watch requests themselves: kopf retries a failed request nine
times over about a minute, then raises, and for a 5xx or a 429 on a list (the one after every
watch restart) that ended the watcher and the operator too. An API server brownout longer than
kopf's retries (the API-fault suite's 60 s one) did it; those errors restart the watch the same
way. A 4xx other than 429 (forbidden, not found) still stops the controller: no wait mends it,
and a pod that exits says so where a crash loop is seen. kopf is pinned (pyproject.toml) to the minor
version this was written against; ``restart_watches_on_errors`` refuses to start on a kopf whose
watcher no longer has the shape it wraps, so an upgrade cannot silently drop the fix.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from kopf._cogs.clients import errors, watching

log = logging.getLogger("sluice.watch")

FIRST_DELAY = 0.5
MAX_DELAY = 30.0
_WRAPPED = "_sluice_restarts_on_errors"


def restart_watches_on_errors(sleep: Callable[[float], Any] = asyncio.sleep) -> None:
    """Install the wrapper (idempotent: every operator started in the process shares it)."""
    original = watching.continuous_watch
    if getattr(original, _WRAPPED, False):
        return
    if not hasattr(watching, "WatchingError") or not hasattr(watching, "infinite_watch"):
        raise RuntimeError(
            "kopf's watcher changed (no WatchingError/infinite_watch): update rollouts/watch_errors.py"
        )
    failures: dict[tuple[str, str | None], int] = {}

    async def continuous_watch(**kwargs: Any) -> AsyncIterator[Any]:
        key = (str(kwargs.get("resource")), kwargs.get("namespace"))
        try:
            async for event in original(**kwargs):
                if isinstance(event, dict) and event.get("type") is not None:
                    failures.pop(key, None)  # the stream works again
                yield event
        except (watching.WatchingError, errors.APIServerError, errors.APITooManyRequestsError) as e:
            n = failures.get(key, 0) + 1
            failures[key] = n
            delay = min(FIRST_DELAY * 2 ** (n - 1), MAX_DELAY)
            where = "cluster-wide" if key[1] is None else f"in {key[1]!r}"
            log.warning("watch of %s %s: %s; restarting in %.1fs", key[0], where, _why(e), delay)
            await sleep(delay)
            # returning ends this stream as a 410 does: kopf lists again and watches anew

    setattr(continuous_watch, _WRAPPED, True)
    watching.continuous_watch = continuous_watch


def _why(e: Exception) -> str:
    """One line: kopf's API errors print their whole payload."""
    if isinstance(e, errors.APIError):
        return f"the API server answered {e.status}: {e.args[0] if e.args else ''}"[:300]
    return str(e)[:300]
