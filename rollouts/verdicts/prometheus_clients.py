"""The controller's Prometheus clients for AnalysisRuns, one per address and credentials.

Every tick of every run asks for a provider; building a new HTTP client each time would lose
keep-alive and pile up connection pools until garbage collection. Clients are therefore kept,
keyed by what makes them differ (address, timeout, credentials: a rotated Secret gets a new one),
and the least recently used are closed beyond a small bound.
"""

from __future__ import annotations

from collections import OrderedDict

from analysis.api import PrometheusSpec
from analysis.providers.port import MetricProvider, Unavailable
from analysis.providers.prometheus import PrometheusProvider
from analysis.store.port import AnalysisRunStore
from rollouts.api.base import parse_duration

Key = tuple[str, float, str | None, tuple[str, str] | None]


class PrometheusClients:
    """A ``ProviderFactory`` for ``AnalysisVerdicts``: the metric's address or the controller's
    default, its timeout (cut to ``max_timeout``: no query holds a worker longer), the controller's
    connect timeout, and credentials read from the Secret its ``auth`` names."""

    def __init__(
        self,
        default_address: str | None,
        *,
        keep: int = 32,
        connect_timeout: float | None = None,
        max_timeout: float | None = None,
    ) -> None:
        self.default_address = default_address
        self.keep = keep
        self.connect_timeout = connect_timeout
        self.max_timeout = max_timeout
        self._clients: OrderedDict[Key, PrometheusProvider] = OrderedDict()

    def __call__(
        self, spec: PrometheusSpec, namespace: str, store: AnalysisRunStore
    ) -> MetricProvider:
        address = spec.address or self.default_address
        if not address:
            return Unavailable(
                "no Prometheus address: set provider.prometheus.address in the template or "
                "start the controller with --prometheus-url"
            )
        bearer: str | None = None
        basic: tuple[str, str] | None = None
        if spec.auth is not None:
            secret = spec.auth.secret_ref.name
            if spec.auth.bearer_token_key:
                bearer = store.resolve_secret(namespace, secret, spec.auth.bearer_token_key)
            elif spec.auth.username_key and spec.auth.password_key:
                basic = (
                    store.resolve_secret(namespace, secret, spec.auth.username_key),
                    store.resolve_secret(namespace, secret, spec.auth.password_key),
                )
        timeout = float(parse_duration(spec.timeout))
        if self.max_timeout is not None:
            timeout = min(timeout, self.max_timeout)
        key: Key = (address, timeout, bearer, basic)
        client = self._clients.get(key)
        if client is None:
            client = PrometheusProvider(
                address,
                timeout=key[1],
                bearer_token=bearer,
                basic_auth=basic,
                connect_timeout=self.connect_timeout,
            )
            self._clients[key] = client
            while len(self._clients) > self.keep:
                _, old = self._clients.popitem(last=False)
                old.close()
        self._clients.move_to_end(key)
        return client

    def close(self) -> None:
        """Close every kept client (the controller is stopping)."""
        while self._clients:
            _, client = self._clients.popitem()
            client.close()
