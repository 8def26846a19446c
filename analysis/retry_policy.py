"""One retry policy for every call Sluice makes over the network: Kubernetes, routers, Prometheus.

A transient failure (a connection refused, a timeout, 429, 5xx) says nothing about the request, so
a few quick retries are worth it; but every retry holds a worker thread, so they are bounded and
spaced by a jittered exponential delay (many Rollouts failing at once against a struggling server
must not retry in lock step). A server's ``Retry-After`` is honoured: never retry sooner; when it
asks for longer than the policy's cap the call gives up at once, and the Rollout's own backoff
(``rollouts.retry_backoff``) waits instead of a worker.

Pure (no IO library): the Kubernetes side (``analysis.store.retry``) and the Prometheus provider
each classify their own errors and ask this module how long to wait and whether to go on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` counts the first try; delays grow from ``first`` doubling up to ``cap``."""

    attempts: int = 3
    first: float = 0.2
    cap: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if not 0 <= self.first <= self.cap:
            raise ValueError(f"need 0 <= first <= cap, got first={self.first}, cap={self.cap}")

    def delay(
        self,
        failures: int,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """The wait before the next attempt after ``failures`` failed ones, or None to give up.

        "Equal jitter": half the exponential step fixed, half random, so a retry never comes much
        sooner than planned yet concurrent callers spread out.
        """
        if failures >= self.attempts:
            return None
        step = min(self.first * 2.0 ** min(failures - 1, 32), self.cap)
        wait = step / 2 + rand() * step / 2
        if retry_after is not None:
            if retry_after > self.cap:
                return None  # waiting that long belongs to the caller's own backoff, not a thread
            wait = max(wait, retry_after)
        return wait


DEFAULT_POLICY = RetryPolicy()


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
