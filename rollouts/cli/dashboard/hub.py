"""One watch of every Rollout, shared by every browser that has the dashboard open.

A page per browser tab that listed or watched Rollouts on its own would multiply the API server's
load by the number of tabs (and a forgotten tab would poll forever). Instead one thread lists the
Rollouts once, then follows a single watch (relisting after a broken stream or a 410 Gone, as
``follow_rollout`` does for one Rollout), keeps the latest copy of each, and hands the keys that
changed to every subscriber's queue in the server's event loop. Pages render from these copies.

It also keeps each analysis metric's e-value path as status reported it: status holds the
current e-value only, so the path is what this process has seen since it started (the
AnalysisRuns keep the per-window measurements, which the trend chart shows).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import kubernetes.watch
import urllib3
from kubernetes.client.exceptions import ApiException

from rollouts.cli.connection import GROUP, REQUEST_TIMEOUT, ROLLOUTS, VERSION, Target, describe
from rollouts.cli.dashboard.numbers import numbers
from rollouts.cli.rollout_view import RolloutView, build_view

Key = tuple[str, str]
"""(namespace, name) of a Rollout."""

MAX_PATH = 500
"""Points kept per metric path: far more than a run's windows, bounded for a long-lived server."""
RETRY_SECONDS = 2.0
"""Pause before relisting after the API server failed; short, since the user is looking."""
RESET = ("", "")
"""Sent instead of keys when a subscriber fell behind: it should reload everything."""


@dataclass(frozen=True)
class PathPoint:
    measurements: int
    """How many measurements the metric had when status reported ``e_value``."""
    e_value: float
    at: float
    """Wall-clock seconds when this process saw it."""


@dataclass(eq=False)  # subscribers are kept in a set, by identity
class Subscription:
    """A subscriber's queue of changed keys; ``RESET`` when it overflowed."""

    queue: asyncio.Queue[Key] = field(default_factory=lambda: asyncio.Queue(maxsize=4096))

    async def next(self, timeout: float | None = None) -> Key | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class RolloutHub:
    """The latest copy of every Rollout in ``namespace`` (None: all namespaces)."""

    def __init__(self, target: Target, namespace: str | None = None) -> None:
        self.target = target
        self.namespace = namespace
        self.synced = threading.Event()
        self.error: str | None = None
        """The last failure of the list or watch, shown on the pages until a list succeeds."""
        self._lock = threading.Lock()
        self._docs: dict[Key, dict[str, Any]] = {}
        self._views: dict[Key, RolloutView] = {}
        self._paths: dict[tuple[str, str, str, str], list[PathPoint]] = {}
        self._subscribers: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: kubernetes.watch.Watch | None = None

    # ------------------------------------------------------------------------------ reading
    def keys(self) -> list[Key]:
        with self._lock:
            return sorted(self._docs)

    def doc(self, key: Key) -> dict[str, Any] | None:
        with self._lock:
            return self._docs.get(key)

    def view(self, key: Key) -> RolloutView | None:
        """The Rollout folded by the CLI's view builder from the Rollout alone (the list's row)."""
        with self._lock:
            return self._views.get(key)

    def views(self) -> list[RolloutView]:
        with self._lock:
            return [self._views[k] for k in sorted(self._views)]

    def paths(self, key: Key) -> dict[tuple[str, str], tuple[PathPoint, ...]]:
        """(run, metric) → the e-value path seen for this Rollout's metrics."""
        with self._lock:
            return {
                (run, metric): tuple(points)
                for (ns, name, run, metric), points in self._paths.items()
                if (ns, name) == key
            }

    # ---------------------------------------------------------------------------- subscribing
    def subscribe(self) -> Subscription:
        sub = Subscription()
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def _fan_out(self, keys: list[Key]) -> None:
        for sub in list(self._subscribers):
            for key in keys:
                try:
                    sub.queue.put_nowait(key)
                except asyncio.QueueFull:
                    while not sub.queue.empty():
                        sub.queue.get_nowait()
                    sub.queue.put_nowait(RESET)
                    break

    def _notify(self, keys: list[Key]) -> None:
        if keys and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._fan_out, keys)

    # ---------------------------------------------------------------------------- following
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="rollout-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following: the open watch stream is closed now, not at its read timeout."""
        self._stop.set()
        watcher = self._watcher
        if watcher is not None:
            watcher.stop()  # type: ignore[no-untyped-call]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                since = self._relist()
                for event in self._watch(since):
                    self._apply(event)
                    if self._stop.is_set():
                        return
            except ApiException as e:
                if e.status != 410:  # 410 Gone: the watch is too old; relist at once
                    self.error = describe(e, "watch rollouts", self.target)
                    self._stop.wait(RETRY_SECONDS)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as e:
                self.error = describe(e, "watch rollouts", self.target)
                self._stop.wait(RETRY_SECONDS)

    def _relist(self) -> str:
        custom = self.target.custom
        if self.namespace is None:
            doc: Any = custom.list_cluster_custom_object(
                GROUP, VERSION, ROLLOUTS, _request_timeout=REQUEST_TIMEOUT
            )
        else:
            doc = custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, ROLLOUTS, _request_timeout=REQUEST_TIMEOUT
            )
        items = [i for i in (doc or {}).get("items") or [] if isinstance(i, dict)]
        fresh = {k: i for i in items if (k := _key(i)) is not None and self._wanted(k)}
        with self._lock:
            changed = [k for k, d in fresh.items() if _rv(self._docs.get(k)) != _rv(d)]
            gone = [k for k in self._docs if k not in fresh]
            for k in gone:
                self._forget(k)
        for k in changed:
            self._store(k, fresh[k])
        self.error = None
        self.synced.set()
        self._notify(changed + gone)
        return str(((doc or {}).get("metadata") or {}).get("resourceVersion") or "")

    def _wanted(self, key: Key) -> bool:
        return self.namespace is None or key[0] == self.namespace

    def _watch(self, since: str) -> Iterator[dict[str, Any]]:
        custom = self.target.custom
        if self.namespace is None:
            call: Any = custom.list_cluster_custom_object
            args: tuple[str, ...] = (GROUP, VERSION, ROLLOUTS)
        else:
            call, args = (
                custom.list_namespaced_custom_object,
                (GROUP, VERSION, self.namespace, ROLLOUTS),
            )
        self._watcher = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
        stream = self._watcher.stream(  # type: ignore[no-untyped-call]
            call,
            *args,
            resource_version=since or None,
            timeout_seconds=290,
            # a silent stream ends within a minute and is relisted: nothing is missed for long
            _request_timeout=(REQUEST_TIMEOUT, 60.0),
        )
        yield from stream

    def _apply(self, event: dict[str, Any]) -> None:
        obj = event.get("object")
        kind = event.get("type")
        if not isinstance(obj, dict) or kind not in ("ADDED", "MODIFIED", "DELETED"):
            return
        key = _key(obj)
        if key is None or not self._wanted(key):
            return
        if kind == "DELETED":
            with self._lock:
                self._forget(key)
        else:
            with self._lock:
                if _rv(self._docs.get(key)) == _rv(obj):
                    return  # a replay of what the list already gave
            self._store(key, obj)
        self._notify([key])

    def _store(self, key: Key, doc: dict[str, Any]) -> None:
        view = build_view(doc)
        now = time.time()
        with self._lock:
            self._docs[key] = doc
            self._views[key] = view
            for run in view.runs:
                for m in run.metrics:
                    e_value = numbers(m).e_value
                    if e_value is None:
                        continue
                    path = self._paths.setdefault((*key, run.name, m.name), [])
                    point = PathPoint(m.measurements, e_value, now)
                    if not path or (path[-1].measurements, path[-1].e_value) != (
                        point.measurements,
                        point.e_value,
                    ):
                        path.append(point)
                        del path[:-MAX_PATH]

    def _forget(self, key: Key) -> None:
        """Drop a Rollout and its paths (the caller holds the lock)."""
        self._docs.pop(key, None)
        self._views.pop(key, None)
        for k in [k for k in self._paths if k[:2] == key]:
            del self._paths[k]


def _key(doc: dict[str, Any]) -> Key | None:
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    return (str(meta.get("namespace") or ""), str(name)) if name else None


def _rv(doc: dict[str, Any] | None) -> str:
    return str(((doc or {}).get("metadata") or {}).get("resourceVersion") or "")
