"""One reader per open Rollout page, however many browsers show it.

A Rollout's page shows more than the Rollout (its slot Deployments, Events and AnalysisRuns),
and those change without the Rollout changing. While at least one browser has the page open, one
task reads them all (the CLI's ``gather``) when the shared watch reports a change of the Rollout,
or every ``refresh`` seconds otherwise, and hands the result to each open page only if it changed.
With no page open nothing is read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rollouts.cli.connection import CliError
from rollouts.cli.dashboard.hub import RESET, Key, PathPoint, RolloutHub
from rollouts.cli.rollout_view import RolloutView

REFRESH_SECONDS = 3.0
"""How often an open page's Deployments, Events and AnalysisRuns are read when the Rollout itself
has not changed: readiness and events show within seconds, at one read per Rollout, not per tab."""


@dataclass(frozen=True)
class Page:
    """Everything a Rollout page shows; equal pages need no update."""

    view: RolloutView
    paths: tuple[tuple[tuple[str, str], tuple[PathPoint, ...]], ...]

    def path(self, run: str, metric: str) -> tuple[PathPoint, ...]:
        return dict(self.paths).get((run, metric), ())


Reader = Callable[[Key, dict[str, Any]], RolloutView]
"""Reads the rest of a Rollout's page (``gather`` for its namespace), given the Rollout."""


class PageFeeds:
    def __init__(self, hub: RolloutHub, read: Reader, refresh: float = REFRESH_SECONDS) -> None:
        self.hub = hub
        self._read = read
        self.refresh = refresh
        self._queues: dict[Key, set[asyncio.Queue[Page | None]]] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._latest: dict[Key, Page | None] = {}

    async def page(self, key: Key) -> Page | None:
        """The page now (read afresh unless a feed keeps it current); None when the Rollout is
        not there. A failure to read raises :class:`CliError`."""
        if key in self._tasks and self._latest.get(key) is not None:
            return self._latest[key]
        doc = self.hub.doc(key)
        if doc is None:
            return None
        return await self._build(key, doc)

    async def _build(self, key: Key, doc: dict[str, Any]) -> Page:
        view = await asyncio.to_thread(self._read, key, doc)
        return Page(view, tuple(sorted(self.hub.paths(key).items())))

    def subscribe(self, key: Key) -> asyncio.Queue[Page | None]:
        queue: asyncio.Queue[Page | None] = asyncio.Queue(maxsize=16)
        self._queues.setdefault(key, set()).add(queue)
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._follow(key), name=f"page {key}")
        return queue

    def unsubscribe(self, key: Key, queue: asyncio.Queue[Page | None]) -> None:
        queues = self._queues.get(key, set())
        queues.discard(queue)
        if not queues:
            self._queues.pop(key, None)
            self._latest.pop(key, None)
            task = self._tasks.pop(key, None)
            if task is not None:
                task.cancel()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _publish(self, key: Key, page: Page | None) -> None:
        if key in self._latest and self._latest[key] == page:
            return
        self._latest[key] = page
        for queue in list(self._queues.get(key, ())):
            if queue.full():  # a slow browser gets the newest page, not a backlog
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(page)

    async def _follow(self, key: Key) -> None:
        sub = self.hub.subscribe()
        loop = asyncio.get_running_loop()
        try:
            while True:
                doc = self.hub.doc(key)
                if doc is None:
                    self._publish(key, None)
                else:
                    with contextlib.suppress(CliError):  # shown again on the next good read
                        self._publish(key, await self._build(key, doc))
                deadline = loop.time() + self.refresh
                while (left := deadline - loop.time()) > 0:
                    if await sub.next(left) in (key, RESET):
                        break
        finally:
            self.hub.unsubscribe(sub)
