"""Retrying the Kubernetes API's transient failures, shared by every Sluice writer.

A 409 conflict, 429 throttling, a 5xx or a timeout says nothing about the request itself, so it is
worth a few quick retries before the reconcile gives up (the operator's timer retries the whole
reconcile later anyway). Each attempt calls ``fn`` afresh, so it re-reads what it depends on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import kubernetes
import urllib3

log = logging.getLogger("sluice.cluster")

RETRYABLE = frozenset({409, 429, 500, 502, 503, 504})
T = TypeVar("T")


def retrying(what: str, fn: Callable[[], T], *, retries: int, backoff: float) -> T:
    """``fn()``, retried up to ``retries`` times on transient failures with a linear backoff."""
    attempt = 0
    while True:
        try:
            return fn()
        except kubernetes.client.ApiException as e:
            if e.status not in RETRYABLE or attempt >= retries:
                raise
            reason: object = e.status
        except (urllib3.exceptions.HTTPError, TimeoutError) as e:
            if attempt >= retries:
                raise
            reason = type(e).__name__
        attempt += 1
        log.info("%s: retrying after %s (attempt %d)", what, reason, attempt + 1)
        time.sleep(backoff * attempt)
