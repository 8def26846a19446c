"""The controller's Prometheus clients: one per address and credentials, reused across ticks,
replaced when a Secret rotates, the least recently used closed beyond the bound; a missing address
or Secret becomes a measurement error naming the cause."""

from __future__ import annotations

from typing import Any

import pytest

from analysis.api import PrometheusSpec
from analysis.providers.port import ProviderError, Queries, Unavailable
from analysis.providers.prometheus import PrometheusProvider
from analysis.store.memory import MemoryAnalysisStore
from analysis.store.port import SecretNotFound
from rollouts.verdicts.prometheus_clients import PrometheusClients


def spec(**extra: Any) -> PrometheusSpec:
    return PrometheusSpec.model_validate({"query": "up", **extra})


def store_with_token(token: str) -> MemoryAnalysisStore:
    store = MemoryAnalysisStore()
    store.secrets[("ns", "prom")] = {"token": token}
    return store


AUTH = {"auth": {"secretRef": {"name": "prom"}, "bearerTokenKey": "token"}}


def test_one_client_per_address_reused_across_ticks() -> None:
    clients = PrometheusClients("http://prometheus:9090")
    store = MemoryAnalysisStore()
    first = clients(spec(), "ns", store)
    assert isinstance(first, PrometheusProvider) and first.address == "http://prometheus:9090"
    assert clients(spec(), "ns", store) is first
    other = clients(spec(address="http://other:9090"), "ns", store)
    assert other is not first and isinstance(other, PrometheusProvider)
    assert other.address == "http://other:9090"
    assert clients(spec(timeout="3s"), "ns", store) is not first  # timeout differs


def test_a_rotated_secret_gets_a_new_client() -> None:
    clients = PrometheusClients("http://prometheus:9090")
    old = clients(spec(**AUTH), "ns", store_with_token("one"))
    assert clients(spec(**AUTH), "ns", store_with_token("one")) is old
    assert clients(spec(**AUTH), "ns", store_with_token("two")) is not old


def test_least_recently_used_clients_are_closed_beyond_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[str] = []
    monkeypatch.setattr(PrometheusProvider, "close", lambda self: closed.append(self.address))
    clients = PrometheusClients(None, keep=2)
    store = MemoryAnalysisStore()
    a = clients(spec(address="http://a:9090"), "ns", store)
    clients(spec(address="http://b:9090"), "ns", store)
    assert clients(spec(address="http://a:9090"), "ns", store) is a  # a is now the most recent
    clients(spec(address="http://c:9090"), "ns", store)
    assert closed == ["http://b:9090"]
    clients.close()
    assert sorted(closed) == ["http://a:9090", "http://b:9090", "http://c:9090"]


def test_no_address_is_a_measurement_error_naming_both_fixes() -> None:
    provider = PrometheusClients(None)(spec(), "ns", MemoryAnalysisStore())
    assert isinstance(provider, Unavailable)
    with pytest.raises(ProviderError, match=r"provider\.prometheus\.address.*--prometheus-url"):
        provider.measure("value", "absolute", Queries(value="up"), 0.0, 30.0)


def test_a_missing_secret_raises_for_the_run_to_report() -> None:
    with pytest.raises(SecretNotFound, match="ns/prom"):
        PrometheusClients("http://prometheus:9090")(spec(**AUTH), "ns", MemoryAnalysisStore())
