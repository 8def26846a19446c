"""The web metric provider: one HTTP request per measurement, one number out of its JSON answer.

Smoke tests, conformance suites and SLO services often answer "how did the canary do" over HTTP
(Argo Rollouts' ``web`` metric). The answer is judged by the metric's threshold like any
measured value, so ``count``, ``interval``, ``failureLimit``, ``inconclusiveLimit`` and
``consecutiveErrorLimit`` mean what they mean for Prometheus thresholds.

Never a success on a broken answer: a timeout, a refused connection, a non-2xx status, a body
that is not JSON, a JSONPath matching nothing (or several things), or a match that is not a
number or boolean is a :class:`ProviderError`, i.e. an Error measurement, counted toward
``consecutiveErrorLimit`` and never toward a pass. There is no retry inside a measurement: the
next interval is the retry, and the run's error limit bounds how long a dead endpoint is
tolerated.

Arguments were rendered into the URL, header values and body when the run was created
(``analysis.templating``: percent-encoded, header-safe, JSON literals); header values read from
Secrets are resolved here, when the provider is built, so a missing Secret is an Error naming it.
"""

from __future__ import annotations

import ipaddress
import json
import math
from typing import Any, Protocol
from urllib.parse import urlsplit

import jsonpath_ng
import requests

from analysis.api import WebSpec
from analysis.providers.port import Arm, Measured, ProviderError, Queries, Unavailable, Value

__all__ = ["MAX_BODY", "Secrets", "WebProvider", "build", "number_at"]

MAX_BODY = 1 << 20
"""Bytes of an answer read at most: a metric is one number, not a download."""


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def number_at(document: Any, json_path: str | None) -> float:
    """The one number (or boolean: 1/0) at ``json_path`` in ``document``; ProviderError else."""
    if json_path is None:
        found = [document]
    else:
        found = [m.value for m in jsonpath_ng.parse(json_path).find(document)]
    where = json_path or "the answer"
    if not found:
        raise ProviderError(f"{where} matches nothing in the answer")
    if len(found) > 1:
        raise ProviderError(f"{where} matches {len(found)} values; a metric needs exactly one")
    value = found[0]
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ProviderError(f"{where} is {value[:80]!r}, not a number") from None
    else:
        raise ProviderError(f"{where} is a {type(value).__name__}, not a number or boolean")
    if not math.isfinite(number):
        raise ProviderError(f"{where} is {number}, not a finite number")
    return number


class WebProvider:
    """:class:`~analysis.providers.port.MetricProvider` for one ``provider.web`` spec."""

    def __init__(self, spec: WebSpec, headers: dict[str, str]) -> None:
        self.spec = spec
        self.headers = headers

    def measure(self, kind: str, arm: Arm, queries: Queries, start: float, end: float) -> Measured:
        return Value(self.fetch())

    def fetch(self) -> float:
        spec = self.spec
        # one session per request, closed with it: providers are rebuilt every tick, and a
        # session kept by each would hold its sockets until garbage collection
        try:
            with requests.Session() as session:
                session.trust_env = not _is_loopback(spec.url)  # no environment proxy for loopback
                with session.request(
                    spec.method,
                    spec.url,
                    headers=self.headers,
                    data=None if spec.body is None else spec.body.encode(),
                    timeout=float(spec.timeout_seconds),
                    allow_redirects=False,
                    stream=True,
                ) as answer:
                    raw = answer.raw.read(MAX_BODY + 1, decode_content=True)
                    status = answer.status_code
        except requests.Timeout:
            raise ProviderError(
                f"{spec.method} {spec.url}: no answer within {spec.timeout_seconds}s"
            ) from None
        except requests.RequestException as e:
            raise ProviderError(f"{spec.method} {spec.url}: {type(e).__name__}: {e}") from None
        except OSError as e:  # a read timeout while streaming the body surfaces from urllib3
            raise ProviderError(f"{spec.method} {spec.url}: {e}") from None
        if not 200 <= status < 300:
            excerpt = raw[:200].decode("utf-8", "replace")
            raise ProviderError(f"{spec.method} {spec.url}: HTTP {status}: {excerpt!r}")
        if len(raw) > MAX_BODY:
            raise ProviderError(f"{spec.method} {spec.url}: answer larger than {MAX_BODY} bytes")
        try:
            document = json.loads(raw)
        except ValueError as e:
            excerpt = raw[:80].decode("utf-8", "replace")
            raise ProviderError(f"{spec.method} {spec.url}: not JSON ({e}): {excerpt!r}") from None
        try:
            return number_at(document, spec.json_path)
        except ProviderError as e:
            raise ProviderError(f"{spec.method} {spec.url}: {e}") from None

    def close(self) -> None:
        """Nothing is kept open between requests (see ``fetch``)."""


class Secrets(Protocol):
    """What ``build`` needs of the AnalysisRun store (providers sit below the store layer)."""

    def resolve_secret(self, namespace: str, name: str, key: str) -> str: ...


def build(spec: WebSpec, namespace: str, store: Secrets) -> WebProvider | Unavailable:
    """The provider of one metric, its Secret-sourced headers read from ``namespace``.

    Raises the store's ``SecretNotFound`` naming the Secret and key (the lifecycle turns it into
    an Error measurement)."""
    headers: dict[str, str] = {}
    for header in spec.headers:
        if header.value is not None:
            headers[header.name] = header.value
        else:
            assert header.value_from is not None
            ref = header.value_from.secret_key_ref
            value = store.resolve_secret(namespace, ref.name, ref.key)
            if any(c in value for c in "\r\n\x00"):
                return Unavailable(
                    f"Secret {namespace}/{ref.name} key {ref.key!r} holds CR, LF or NUL, which "
                    f"no header {header.name} can carry"
                )
            headers[header.name] = value
    return WebProvider(spec, headers)
