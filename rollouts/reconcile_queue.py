"""When Rollouts are reconciled: one scheduler thread, a heap of due times, a bounded worker pool.

Watch events submit a Rollout at once; the engine's ``requeue_after`` (a pause ending, an
analysis window, a progress deadline) and retry backoffs put it on the heap for when it is due.
Nothing ticks while nothing is due, so an idle fleet costs no CPU (one kopf timer per Rollout
used to wake every second each).

A Rollout is never reconciled twice at once: one submitted while queued merges into the queued
run, one submitted while running is run once more after it (a burst of events costs at most two
reconciles). ``timed`` says whether a run must happen (time passed) or may be skipped when the
Rollout's inputs are unchanged (an event that was the echo of its own write); merged runs keep
the stronger reason.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("sluice.queue")

Key = tuple[str, str]


class ReconcileQueue:
    """Runs ``work(key, timed)`` for submitted keys on ``workers`` threads, one run per key at a time."""

    def __init__(self, work: Callable[[Key, bool], None], workers: int = 20) -> None:
        self._work = work
        self._workers = workers
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}
        self._timed: dict[Key, bool] = {}  # key -> whether its due run must happen
        self._queued: dict[Key, bool] = {}  # key -> timed, waiting for a worker
        self._running: set[Key] = set()
        self._again: dict[Key, bool] = {}  # key -> timed, submitted while running
        self._held: dict[Key, bool] = {}  # key -> timed, came due or submitted while paused
        self._paused = False
        self._seq = itertools.count()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # ------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        with self._cv:
            if self._thread is not None:
                return
            self._stopped = False
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="sluice-reconcile")
            self._thread = threading.Thread(target=self._loop, name="sluice-scheduler", daemon=True)
            self._thread.start()

    def stop(self, wait: bool = True) -> None:
        """Stop scheduling; runs in progress finish (``wait``), queued ones are dropped."""
        with self._cv:
            self._stopped = True
            self._heap.clear()
            self._due.clear()
            self._timed.clear()
            self._queued.clear()
            self._again.clear()
            self._held.clear()
            self._cv.notify_all()
            thread, pool = self._thread, self._pool
            self._thread = self._pool = None
        if thread is not None:
            thread.join(timeout=5)
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

    def pause(self) -> None:
        """Run nothing more (runs in progress finish); hold what comes due or is submitted."""
        with self._cv:
            self._paused = True

    def resume(self) -> int:
        """Run again, starting with what was held; returns how many were held."""
        with self._cv:
            self._paused = False
            held, self._held = self._held, {}
            for key, timed in held.items():
                self._submit(key, timed)
            return len(held)

    @property
    def paused(self) -> bool:
        with self._cv:
            return self._paused

    @property
    def running(self) -> bool:
        with self._cv:
            return self._thread is not None and not self._stopped

    # ------------------------------------------------------------------------ scheduling
    def submit(self, key: Key, timed: bool = False) -> None:
        """Reconcile ``key`` as soon as a worker is free."""
        with self._cv:
            self._submit(key, timed)

    def at(self, key: Key, delay: float, timed: bool = True) -> None:
        """Reconcile ``key`` after ``delay`` seconds (``timed``: even if its inputs are
        unchanged); replaces its earlier due time."""
        due = time.monotonic() + max(delay, 0.0)
        with self._cv:
            if self._stopped:
                return
            self._due[key] = due
            self._timed[key] = timed
            heapq.heappush(self._heap, (due, next(self._seq), key))
            if self._heap[0][2] == key:
                self._cv.notify()

    def cancel(self, key: Key) -> None:
        """Forget ``key``: no due time, nothing queued or repeated (a run in progress finishes)."""
        with self._cv:
            self._due.pop(key, None)
            self._timed.pop(key, None)
            self._queued.pop(key, None)
            self._again.pop(key, None)
            self._held.pop(key, None)

    def due_in(self, key: Key) -> float | None:
        with self._cv:
            due = self._due.get(key)
        return None if due is None else due - time.monotonic()

    def sizes(self) -> dict[str, int]:
        """How much it holds (for tests and memory checks)."""
        with self._cv:
            return {
                "due": len(self._due),
                "heap": len(self._heap),
                "queued": len(self._queued),
                "running": len(self._running),
                "again": len(self._again),
                "held": len(self._held),
            }

    # ------------------------------------------------------------------------ internals
    def _submit(self, key: Key, timed: bool) -> None:
        if self._stopped or self._pool is None:
            return
        if self._paused:
            self._held[key] = self._held.get(key, False) or timed
            return
        if key in self._running:
            self._again[key] = self._again.get(key, False) or timed
            return
        if key in self._queued:
            self._queued[key] = self._queued[key] or timed
            return
        self._queued[key] = timed
        self._pool.submit(self._run, key)

    def _run(self, key: Key) -> None:
        with self._cv:
            if key not in self._queued:
                return  # cancelled meanwhile
            timed = self._queued.pop(key)
            if self._paused:  # queued before the pause, not started: held with the rest
                self._held[key] = self._held.get(key, False) or timed
                return
            self._running.add(key)
        try:
            self._work(key, timed)
        except Exception:  # the work logs its own failures; this keeps the worker alive
            log.exception("reconcile of %s/%s raised", *key)
        finally:
            with self._cv:
                self._running.discard(key)
                again = self._again.pop(key, None)
                if again is not None:
                    self._submit(key, again)

    def _loop(self) -> None:
        with self._cv:
            while not self._stopped:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due, _, key = heapq.heappop(self._heap)
                    if self._due.get(key) == due:  # else superseded or cancelled
                        del self._due[key]
                        self._submit(key, self._timed.pop(key, True))
                # drop superseded entries so the heap stays the size of the fleet
                if len(self._heap) > 2 * len(self._due) + 64:
                    self._heap = [e for e in self._heap if self._due.get(e[2]) == e[0]]
                    heapq.heapify(self._heap)
                timeout = self._heap[0][0] - now if self._heap else None
                self._cv.wait(timeout)
