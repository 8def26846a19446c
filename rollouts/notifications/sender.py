"""Delivery off the reconcile path: a bounded queue, sender threads, a rate limit per receiver.

The reconcile only appends to the queue (:meth:`NotificationSender.submit` never blocks or
raises), so a receiver that is slow, hangs or fails delays messages, never a rollout. When the
queue is full the *oldest* notice is dropped: the newest describe the rollout as it is now (an
abort, a promotion) and the dropped one is already history in status and Events. Each outcome is
counted (``sluice_notifications_total{result}``): ``sent`` and ``failed`` per receiver,
``rate_limited`` per receiver skipped over its limit, ``dropped`` per notice lost to overflow.
Failures also post a Warning Event (``NotificationFailed``) on the Rollout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import kubernetes
import urllib3

from rollouts.api.rollout import Rollout
from rollouts.notifications.config import NotificationConfigError
from rollouts.notifications.delivery import DeliveryError
from rollouts.notifications.transitions import Notice

log = logging.getLogger("sluice.notifications")

TRANSIENT = (
    kubernetes.client.ApiException,
    urllib3.exceptions.HTTPError,
    TimeoutError,
    ConnectionError,
)
"""Failures reading a message's receivers that say nothing about Sluice: logged in one line."""


def _brief(e: BaseException) -> str:
    if isinstance(e, kubernetes.client.ApiException):
        return f"{e.status} {e.reason}"
    return f"{type(e).__name__}: {e}"[:200]


@dataclass(frozen=True)
class Target:
    receiver: str
    url: str | None
    problem: str | None = None
    """Why there is no URL (a receiver the Secret lacks): counted and reported as a failure."""


Resolve = Callable[[Rollout, Notice], list[Target]]
"""The receivers (with their URLs) subscribed to a notice; raises NotificationConfigError."""
Deliver = Callable[[str, Notice], None]
"""Send one notice to one URL; raises DeliveryError."""
Warn = Callable[[Rollout, str], None]
"""Post a Warning Event on the Rollout."""


#: The shortest time between two "queue full" log lines.
DROP_LOG_SECONDS = 10.0


class TokenBucket:
    """``burst`` messages at once, then one every ``refill_seconds``."""

    def __init__(self, burst: int, refill_seconds: float, now: float) -> None:
        self.burst, self.refill = burst, refill_seconds
        self.tokens, self.at = float(burst), now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) / self.refill)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class NotificationSender:
    def __init__(
        self,
        resolve: Resolve,
        deliver: Deliver,
        count: Callable[[str], None],
        warn: Warn,
        *,
        queue_size: int = 1000,
        workers: int = 2,
        burst: int = 10,
        refill_seconds: float = 6.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolve, self.deliver, self.count, self.warn = resolve, deliver, count, warn
        self.queue: deque[tuple[Rollout, Notice]] = deque()
        self.queue_size, self.workers = queue_size, workers
        self.burst, self.refill_seconds, self.clock = burst, refill_seconds, clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._busy = 0
        self._dropped_unlogged = 0
        self._drop_logged_at: float | None = None

    # --------------------------------------------------------------------- the reconcile's side
    def submit(self, rollout: Rollout, notices: Sequence[Notice]) -> None:
        """Queue the notices (dropping the oldest when full) and return at once."""
        dropped = 0
        with self._cond:
            self._start()
            for n in notices:
                if len(self.queue) >= self.queue_size:
                    self.queue.popleft()
                    dropped += 1
                self.queue.append((rollout, n))
            self._cond.notify_all()
        for _ in range(dropped):
            self.count("dropped")
        if dropped:
            self._log_dropped(dropped)

    def _log_dropped(self, dropped: int) -> None:
        """At most one line per ``DROP_LOG_SECONDS``: a full queue under a fleet-wide burst
        would otherwise log one line per notice (the counter has every one)."""
        now = self.clock()
        with self._cond:
            self._dropped_unlogged += dropped
            if self._drop_logged_at is not None and now - self._drop_logged_at < DROP_LOG_SECONDS:
                return
            n, self._dropped_unlogged, self._drop_logged_at = self._dropped_unlogged, 0, now
        log.warning(
            "notification queue full (%d): dropped the %d oldest since the last such line",
            self.queue_size,
            n,
        )

    # ------------------------------------------------------------------------- lifecycle
    def _start(self) -> None:
        """Threads start with the first notice (held: ``self._cond``)."""
        if self._threads or self._stopping:
            return
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"sluice-notify-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threads after the notice each is sending; what is still queued is lost."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    def idle(self) -> bool:
        """Nothing queued and nothing being sent (for tests and shutdown)."""
        with self._cond:
            return not self.queue and not self._busy

    # ------------------------------------------------------------------------- the senders
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self.queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                rollout, notice = self.queue.popleft()
                self._busy += 1
            try:
                self._send(rollout, notice)
            except TRANSIENT as e:  # the API server or the network, now and then: one line
                log.warning("sending notification %s failed: %s", notice.title, _brief(e))
                self.count("failed")
            except Exception:  # never lose the thread to a bug in one message
                log.exception("sending notification %s failed", notice.title)
                self.count("failed")
            finally:
                with self._cond:
                    self._busy -= 1

    def _send(self, rollout: Rollout, notice: Notice) -> None:
        try:
            targets = self.resolve(rollout, notice)
        except NotificationConfigError as e:
            self.count("failed")
            self._warn(rollout, f"{notice.event} not sent: {e}")
            return
        for target in targets:
            if not self._allowed(notice.namespace, target.receiver):
                self.count("rate_limited")
                log.warning(
                    "notification %s to %s/%s over the rate limit: skipped",
                    notice.event,
                    notice.namespace,
                    target.receiver,
                )
                continue
            if target.url is None:
                self.count("failed")
                self._warn(
                    rollout, f"{notice.event} to receiver {target.receiver}: {target.problem}"
                )
                continue
            try:
                self.deliver(target.url, notice)
            except DeliveryError as e:
                self.count("failed")
                self._warn(rollout, f"{notice.event} to receiver {target.receiver} failed: {e}")
            else:
                self.count("sent")

    def _allowed(self, namespace: str, receiver: str) -> bool:
        now = self.clock()
        with self._cond:
            bucket = self._buckets.get((namespace, receiver))
            if bucket is None:
                bucket = self._buckets[(namespace, receiver)] = TokenBucket(
                    self.burst, self.refill_seconds, now
                )
            return bucket.take(now)

    def _warn(self, rollout: Rollout, message: str) -> None:
        log.warning("%s/%s: %s", rollout.metadata.namespace, rollout.metadata.name, message)
        try:
            self.warn(rollout, message)
        except Exception:
            log.exception("posting the NotificationFailed Event failed")
