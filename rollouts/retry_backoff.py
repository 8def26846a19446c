"""Growing delays between retries of a Rollout stuck on a problem only a person can fix.

A broken traffic router (``rollouts.engine.routing_hold``) fails the same way on every reconcile
until someone edits the routing object, which Sluice does not watch; retrying at the in-flight poll
rate would cost the API server a read per second per stuck Rollout for as long as nobody looks.
So each consecutive failure doubles the wait, from ``first`` up to ``cap``, and the first success
starts over. The count lives in the operator's memory: a restarted controller retries at once,
which is what a person who just fixed the object wants anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable


def backoff_delay(failures: int, first: float, cap: float) -> float:
    """The wait after ``failures`` consecutive failures (1: the first)."""
    if failures < 1:
        raise ValueError(f"failures must be >= 1, got {failures}")
    # capped exponent: 2**n overflows a float long before a Rollout stops failing
    return min(first * 2.0 ** min(failures - 1, 64), cap)


class RetryBackoff:
    """Consecutive failures per key; thread-safe (kopf runs handlers in threads)."""

    def __init__(self, first: float, cap: float) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"need 0 < first <= cap, got first={first}, cap={cap}")
        self.first = first
        self.cap = cap
        self._failures: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def next_delay(self, key: Hashable, failing: bool) -> float | None:
        """After a reconcile: the wait before the next try while ``failing``, else None (reset)."""
        with self._lock:
            if not failing:
                self._failures.pop(key, None)
                return None
            n = self._failures.get(key, 0) + 1
            self._failures[key] = n
        return backoff_delay(n, self.first, self.cap)

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._failures.pop(key, None)
