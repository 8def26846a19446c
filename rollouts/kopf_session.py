"""kopf's API session, with a bounded connection pool.

kopf builds its ``aiohttp`` session with no connection limit. At the first start over a fleet it
adds its finalizer to every Rollout at once: with 1,000 Rollouts, 1,000 PATCHes opened 1,000
connections together, the API server (the test emulator in ``benchmarks/scale.py``) could not
accept them within kopf's 5 s connect timeout, and 463 to 736 of them were logged as ERROR with
the request before kopf retried them. A bounded pool reuses connections instead: a request beyond
the limit waits for a free connection (inside its request timeout, not its connect timeout).

The limit must leave room beyond kopf's watch streams, each of which holds a connection for as
long as it runs (one per watched resource, per namespace when namespaced): a pool the watches
filled would starve every other request. :func:`connection_limit` counts them generously.
"""

from __future__ import annotations

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
