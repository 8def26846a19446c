"""The Prometheus metric provider: instant queries per analysis window, via prometheus-api-client.

Each measurement evaluates the metric's queries as instant queries at the window's ``end``, with
``{{window}}`` replaced by the window length as a PromQL duration. Templates write
``increase(x[{{window}}])``, so every measurement is the increment over exactly one analysis
interval: consecutive windows tile time, each request is counted once, and the sequential tests
can add the counts up. Counter resets (a pod restart) are handled by ``increase()`` itself, which
treats any decrease of a counter as a reset to zero; the provider adds nothing of its own there.

Failures are sorted by whether trying again can help. Connection errors, timeouts and 5xx/429/408
answers are retried a bounded number of times with a short jittered doubling backoff (the policy
of every Sluice call, ``analysis.retry_policy``; an analysis interval
is tens of seconds; a long retry would just shift the window), then surface as
:class:`ProviderError`. A 4xx answer (bad PromQL, a query Prometheus cannot execute) is raised at
once: the same query will fail the same way. The library's own urllib3 retries are switched off,
so these are the only retries and their bound is the one configured here.
"""

from __future__ import annotations

import ast
import ipaddress
import json
import math
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from analysis.providers.port import (
    Arm,
    Measured,
    NoData,
    ProviderError,
    Queries,
    Value,
)
from analysis.providers.shapes import (
    to_buckets,
    to_counts,
    to_counts_by,
    to_number,
    to_numbers_by,
)
from analysis.retry_policy import RetryPolicy

__all__ = ["PrometheusProvider", "promql_duration"]

_T = TypeVar("_T")
_STATUS = re.compile(r"HTTP Status Code (\d{3})")
_BODY = re.compile(r"HTTP Status Code \d{3} \((b['\"].*['\"])\)\s*$", re.DOTALL)
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_WINDOW = "{{window}}"


def promql_duration(seconds: float) -> str:
    """A window length as a PromQL duration: whole seconds as ``30s``, otherwise milliseconds.

    PromQL durations take no fractions (``1.5s`` is a parse error), so a fractional window is
    written in milliseconds rather than rounded, keeping windows that tile time exact.
    """
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"window must be a positive number of seconds, got {seconds}")
    millis = round(seconds * 1000)
    if millis == 0:
        raise ValueError(f"window {seconds}s is shorter than PromQL's 1ms resolution")
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def _is_loopback(address: str) -> bool:
    host = urlparse(address).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PrometheusProvider:
    """:class:`~analysis.providers.port.MetricProvider` backed by a Prometheus HTTP API.

    ``retries`` is the number of *extra* attempts after the first for transient failures;
    ``backoff`` is the first pause in seconds, doubled each time. Auth is either a bearer token or
    HTTP basic auth (``(user, password)``), sent on every request. For a loopback address the
    environment's proxy settings are ignored: a CI runner's ``HTTP_PROXY`` must not route a local
    test Prometheus through a proxy that cannot reach it.
    """

    def __init__(
        self,
        address: str,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        connect_timeout: float | None = None,
    ) -> None:
        if bearer_token is not None and basic_auth is not None:
            raise ValueError("give either bearer_token or basic_auth, not both")
        if timeout <= 0:
            raise ValueError("timeout must be positive: a query without one can hang an analysis")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.address = address.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        # the policy every Sluice call follows (jittered doubling, bounded; analysis.retry_policy)
        self._policy = RetryPolicy(attempts=retries + 1, first=backoff, cap=max(backoff, 5.0))
        # (connect, read): an unreachable address fails fast, a slow query still gets ``timeout``
        self._timeouts: float | tuple[float, float] = (
            timeout if connect_timeout is None else (min(connect_timeout, timeout), timeout)
        )
        headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else None
        session = requests.Session()
        if _is_loopback(self.address):
            session.trust_env = False
        # requests encodes str credentials as Latin-1: a password with "ä" would be sent wrong
        # and one with "€" would not encode at all; bytes are sent as given (RFC 7617: UTF-8)
        auth = None if basic_auth is None else tuple(part.encode() for part in basic_auth)
        self._client = PrometheusConnect(
            url=self.address,
            headers=headers,
            auth=auth,
            session=session,
            timeout=self._timeouts,
            retry=Retry(total=0, raise_on_status=False),
        )

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._client.close()

    def __repr__(self) -> str:  # never shows credentials
        return (
            f"PrometheusProvider({self.address!r}, timeout={self.timeout}, retries={self.retries})"
        )

    # -- the port ---------------------------------------------------------------------------------

    def measure(self, kind: str, arm: Arm, queries: Queries, start: float, end: float) -> Measured:
        """Evaluate ``queries`` for ``kind`` over ``[start, end]``; see the port for the contract."""
        try:
            window = promql_duration(end - start)
        except ValueError as e:
            raise ProviderError(f"{arm}: bad measurement window [{start}, {end}]: {e}") from None
        if kind == "counts":
            events_q = self._need(queries.events, kind, arm, "events")
            total_q = self._need(queries.total, kind, arm, "total")
            # The total first: if the arm has no traffic series at all, that is the message to show.
            what_t = f"{arm} total query {total_q!r}"
            what_e = f"{arm} events query {events_q!r}"
            if queries.pod_label:
                by = queries.pod_label
                totals = to_numbers_by(self._query(total_q, window, end, what_t), by, what_t)
                events_by = to_numbers_by(self._query(events_q, window, end, what_e), by, what_e)
                return to_counts_by(events_by, totals, f"{arm} counts")
            total = to_number(self._query(total_q, window, end, what_t), what_t)
            events = to_number(self._query(events_q, window, end, what_e), what_e)
            return to_counts(events, total, f"{arm} counts")
        if kind == "histogram":
            q = self._need(queries.buckets, kind, arm, "buckets")
            what = f"{arm} buckets query {q!r}"
            return to_buckets(self._query(q, window, end, what), what)
        if kind in ("gauge", "value"):
            q = self._need(queries.value, kind, arm, "value")
            what = f"{arm} value query {q!r}"
            return Value(to_number(self._query(q, window, end, what), what))
        raise ProviderError(f"unknown metric kind {kind!r} (counts, histogram, gauge, value)")

    # -- extras -----------------------------------------------------------------------------------

    def number(self, query: str, at: float, *, window: float) -> float:
        """One instant number at ``at``; raises :class:`NoData` or :class:`ProviderError`."""
        what = f"query {query!r}"
        return to_number(self._query(query, promql_duration(window), at, what), what)

    def values(
        self, query: str, start: float, end: float, step: float
    ) -> list[tuple[float, float]]:
        """A range query's ``(timestamp, value)`` points, for methods that judge series (Mann-Whitney).

        ``{{window}}`` becomes ``step``, so each point covers its own step and points do not
        overlap. The query must return one series; ``NaN`` points (steps without requests) are
        dropped rather than zeroed, and a series with no points left is :class:`NoData`.
        ``start``/``end`` are sent as given (prometheus-api-client's range helper rounds them to
        whole seconds, which would shift the windows).
        """
        what = f"range query {query!r}"
        rendered = query.replace(_WINDOW, promql_duration(step))
        params = {"start": repr(float(start)), "end": repr(float(end)), "step": repr(float(step))}

        def call() -> Any:
            response = self._client._session.request(  # the library's range call rounds times
                method="GET",
                url=f"{self.address}/api/v1/query_range",
                params={"query": rendered, **params},
                headers=self._client.headers,
                auth=self._client.auth,
                timeout=self._timeouts,
            )
            if response.status_code != 200:
                raise PrometheusApiClientException(
                    f"HTTP Status Code {response.status_code} ({response.content!r})"
                )
            return response.json()["data"]["result"]

        result = self._retrying(call, what)
        if not isinstance(result, list) or not result:
            raise NoData(f"{what}: empty result (no matching series in [{start}, {end}])")
        if len(result) > 1:
            labels = ", ".join(str(s.get("metric")) for s in result[:5])
            raise ProviderError(f"{what}: expected one series, got {len(result)}: {labels}")
        points = [(float(t), float(v)) for t, v in result[0].get("values", [])]
        points = [(t, v) for t, v in points if math.isfinite(v)]
        if not points:
            raise NoData(f"{what}: only NaN points (no requests in [{start}, {end}]?)")
        return points

    # -- internals --------------------------------------------------------------------------------

    @staticmethod
    def _need(query: str | None, kind: str, arm: Arm, field: str) -> str:
        if not query:
            raise ProviderError(f"{arm}: a {kind} metric needs a {field} query")
        return query

    def _query(self, query: str, window: str, at: float, what: str) -> Any:
        rendered = query.replace(_WINDOW, window)
        return self._retrying(
            lambda: self._client.custom_query(rendered, params={"time": repr(float(at))}), what
        )

    def _retrying(self, call: Callable[[], _T], what: str) -> _T:
        attempts = self.retries + 1
        last = ""
        for attempt in range(attempts):
            if attempt:
                wait = self._policy.delay(attempt)
                assert wait is not None  # attempt < attempts
                self._sleep(wait)
            try:
                return call()
            except requests.Timeout:
                last = f"timed out after {self.timeout}s"
            except requests.ConnectionError as e:
                reason = getattr(e.args[0], "reason", None) if e.args else None
                if isinstance(reason, ReadTimeoutError):  # urllib3 wraps it even with retries off
                    last = f"timed out after {self.timeout}s"
                else:
                    last = f"cannot connect to {self.address}: {_root_cause(e)}"
            except PrometheusApiClientException as e:
                status, text = _status_and_error(str(e))
                if status not in _TRANSIENT_STATUS:
                    raise ProviderError(f"{what}: Prometheus answered {status}: {text}") from None
                last = f"Prometheus answered {status}: {text}"
            except requests.RequestException as e:
                raise ProviderError(f"{what}: request failed: {e}") from None
            except (ValueError, KeyError) as e:  # a 200 whose body is not Prometheus's JSON
                raise ProviderError(f"{what}: unreadable answer from {self.address}: {e}") from None
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        raise ProviderError(f"{what}: {last} ({tries})")


def _status_and_error(message: str) -> tuple[int | None, str]:
    """Status code and Prometheus's own error text from prometheus-api-client's exception.

    The library raises one exception type for every non-200 answer and puts the code and the body
    in its message (``HTTP Status Code 400 (b'{"status":"error",...}')``); the code decides whether
    to retry, the error text is what the user needs to fix a query.
    """
    found = _STATUS.search(message)
    status = int(found.group(1)) if found else None
    text = message[:300]
    body = _BODY.search(message)
    if body:
        try:
            raw = ast.literal_eval(body.group(1))
            text = str(json.loads(raw)["error"]) if isinstance(raw, bytes) else text
        except (ValueError, SyntaxError, KeyError, TypeError):
            text = body.group(1)[:300]
    return status, text


def _root_cause(error: BaseException) -> str:
    """The OS reason buried in a requests/urllib3 error (``Connection refused``), else the text."""
    reason = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(error))
    return reason.group(1) if reason else str(error)[:200]
