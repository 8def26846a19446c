"""Retrying the Kubernetes API's transient failures, shared by every Sluice caller (the cluster
port, the routers, the AnalysisRun store).

A 409 conflict, 429 throttling, a 5xx, a connection error or a timeout says nothing about the
request itself, so it is worth a few quick retries before the reconcile gives up (the operator
retries the whole reconcile later, with a per-Rollout backoff). Each attempt calls ``fn`` afresh,
so it re-reads what it depends on (a 409 on a patch re-reads the object). Other 4xx answers are
never retried: the same request would fail the same way. How long to wait and when to stop is
``analysis.retry_policy``'s (jittered exponential, ``Retry-After`` honoured).

Calls also need a deadline: ``Timeout`` is the ``(connect, read)`` pair every call passes as
``_request_timeout``, so a server that accepts a connection and never answers costs at most the
read timeout per attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import kubernetes
import urllib3

from analysis.retry_policy import DEFAULT_POLICY, RetryPolicy, parse_retry_after

log = logging.getLogger("sluice.cluster")

RETRYABLE = frozenset({409, 429, 500, 502, 503, 504})
T = TypeVar("T")

Timeout = tuple[float, float]
"""(connect, read) seconds, as the ``kubernetes`` client's ``_request_timeout`` takes them."""
DEFAULT_TIMEOUT: Timeout = (5.0, 30.0)


def transient(error: BaseException) -> bool:
    """Whether ``error`` is the API server's trouble rather than the request's: an answer worth
    retrying (``RETRYABLE``), a connection error or a timeout. Such failures come in bursts that
    end (an outage, a brownout), so whoever judges a run by them waits longer than for others."""
    if isinstance(error, kubernetes.client.ApiException):
        return error.status in RETRYABLE
    return isinstance(error, (urllib3.exceptions.HTTPError, TimeoutError, ConnectionError))


def retry_after(error: kubernetes.client.ApiException) -> float | None:
    headers = error.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    return parse_retry_after(value)


def retrying(
    what: str,
    fn: Callable[[], T],
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    statuses: frozenset[int] = RETRYABLE,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``, retried on transient failures as ``policy`` says; the last failure is raised.

    ``statuses`` are the answers worth another try: a caller that handles 409 itself (by
    re-reading and rebuilding its patch) leaves it out."""
    failures = 0
    while True:
        try:
            return fn()
        except kubernetes.client.ApiException as e:
            if e.status not in statuses:
                raise
            failures += 1
            wait = policy.delay(failures, retry_after(e) if e.status == 429 else None)
            reason: object = e.status
            if wait is None:
                raise
        except (urllib3.exceptions.HTTPError, TimeoutError, ConnectionError) as e:
            failures += 1
            wait = policy.delay(failures)
            reason = type(e).__name__
            if wait is None:
                raise
        log.debug("%s: retrying in %.2fs after %s (attempt %d)", what, wait, reason, failures + 1)
        sleep(wait)
