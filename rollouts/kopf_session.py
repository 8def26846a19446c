"""kopf's API session, with a bounded connection pool; its retried requests logged as warnings.

kopf builds its ``aiohttp`` session with no connection limit. At the first start over a fleet it
adds its finalizer to every Rollout at once: with 1,000 Rollouts (``benchmarks/scale.py``, 2 cores
shared with the emulator), 1,000 PATCHes opened 1,000 connections together, and 463 to 736 of
them were logged as ERROR ("Request attempt #1/9 failed; will retry ... ConnectionTimeoutError")
before kopf retried them. A bounded pool reuses connections instead: a request beyond the limit
waits for a free connection (inside its request timeout, not its 5 s connect timeout). With the
bound, 61 still timed out at that start, all of one batch: the connects were begun and the
controller's event loop then got no turn for over 5 s while its worker threads reconciled the
fleet, so the timeouts fired before the answers were read. kopf retries those; they are logged as
warnings (:class:`RetriedRequestsAreWarnings`), and only a request that finally fails as an error.

The limit must leave room beyond kopf's watch streams, each of which holds a connection for as
long as it runs (one per watched resource, per namespace when namespaced): a pool the watches
filled would starve every other request. :func:`connection_limit` counts them generously.
"""

from __future__ import annotations

import logging
import re
import warnings

import aiohttp
import kopf

WATCHED_RESOURCES = 12
"""Upper bound of the resources kopf watches for Sluice (Rollouts, AnalysisRuns, Deployments,
Services, four router kinds, peering, with room to spare)."""

REQUEST_CONNECTIONS = 64
"""Connections for requests beside the watches: kopf's patches, Events and peering."""


def connection_limit(namespaces: tuple[str, ...]) -> int:
    """Connections kopf may open: every watch stream (per namespace when namespaced) plus
    ``REQUEST_CONNECTIONS`` for everything else."""
    return WATCHED_RESOURCES * max(1, len(namespaces)) + REQUEST_CONNECTIONS


def bounded_session(info: kopf.ConnectionInfo, limit: int) -> kopf.AiohttpSession:
    """The session kopf would build from ``info`` (same TLS, headers, auth, proxy), with at most
    ``limit`` connections. Must run in the operator's event loop (an async login handler)."""
    with warnings.catch_warnings():  # as kopf does: its own deprecation of basic auth
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="kopf")
        auth = info.as_aiohttp_basic_auth()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        auth=auth,
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        aiohttp_session=session,
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
    )


class RetriedRequestsAreWarnings(logging.Filter):
    """kopf logs every failed attempt of a request it will retry at ERROR, the same level as a
    request that finally failed. A retried attempt is a warning: the controller recovers from it
    by itself. The last attempt ("escalating") stays an ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and _RETRIED.match(str(record.msg)):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_RETRIED = re.compile(r"Request attempt #\d+(/\d+)? failed; will retry")

KOPF_REQUEST_LOGGERS = ("kopf.objects", "kopf")
"""The loggers filtered: ``kopf.objects``, where kopf logs the requests it makes for an object
(its finalizer and annotation patches, the ones that time out at a large first start), and
``kopf`` itself. A filter does not reach a child logger's records: attempts kopf logs through a
module's own logger (its peering, for one) keep kopf's level."""


def quiet_retried_requests() -> None:
    """Install the filter (once) on the loggers kopf's request attempts are logged to."""
    for name in KOPF_REQUEST_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RetriedRequestsAreWarnings) for f in logger.filters):
            logger.addFilter(RetriedRequestsAreWarnings())
