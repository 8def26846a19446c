"""router_for: the Rollout's trafficRouting stanza picks and configures the router."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from rollouts.api.validation import parse_rollout
from rollouts.routing import factory
from rollouts.routing.gateway_api import GatewayAPIRouter
from rollouts.routing.istio import IstioRouter
from rollouts.routing.nginx import NginxRouter
from rollouts.routing.smi import SMIRouter
from tests.support.rollouts import rollout_doc


@pytest.fixture()
def api() -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.client.ApiClient()  # never contacted: routers only keep it
    yield client
    client.close()


def rollout(router: dict[str, Any] | None = None, **kw: Any) -> Any:
    doc = rollout_doc(steps=[{"setWeight": 10}], router=router, **kw)
    doc["metadata"]["uid"] = "uid-1"
    return parse_rollout(doc)


def test_no_router_and_blue_green_get_none(api: kubernetes.client.ApiClient) -> None:
    assert factory.router_for(rollout(), api) is None
    assert factory.router_for(rollout(blue_green={}), api) is None


def test_istio(api: kubernetes.client.ApiClient) -> None:
    r = factory.router_for(
        rollout({"istio": {"virtualService": {"name": "web-vs", "routes": ["primary"]}}}), api
    )
    assert isinstance(r, IstioRouter)
    assert (r.namespace, r.name, r.routes) == ("ns", "web-vs", ["primary"])
    assert (r.stable_service, r.canary_service) == ("web", "web-canary")
    assert r.resource.version == "v1beta1"
    r = factory.router_for(
        rollout({"istio": {"virtualService": {"name": "web-vs"}}}), api, istio_version="v1"
    )
    assert isinstance(r, IstioRouter)
    assert (r.routes, r.resource.version) == (None, "v1")


def test_gateway_api(api: kubernetes.client.ApiClient) -> None:
    r = factory.router_for(rollout({"gatewayAPI": {"httpRoute": {"name": "web-route"}}}), api)
    assert isinstance(r, GatewayAPIRouter)
    assert (r.namespace, r.name, r.stable_service, r.canary_service) == (
        "ns",
        "web-route",
        "web",
        "web-canary",
    )


def test_smi(api: kubernetes.client.ApiClient) -> None:
    r = factory.router_for(
        rollout({"smi": {"trafficSplitName": "web-split"}}), api, smi_version="v1alpha4"
    )
    assert isinstance(r, SMIRouter)
    assert (r.name, r.resource.api_version) == ("web-split", "split.smi-spec.io/v1alpha4")


def test_nginx(api: kubernetes.client.ApiClient) -> None:
    r = factory.router_for(rollout({"nginx": {"stableIngress": "web-ingress"}}), api)
    assert isinstance(r, NginxRouter)
    assert r.canary_ingress == "web-ingress-web-canary"
    assert (r.owner.name, r.owner.uid) == ("web", "uid-1")


def test_permissions_cover_every_router_kind() -> None:
    plurals = {plural for _, plural, _ in factory.PERMISSIONS}
    assert plurals == {"virtualservices", "httproutes", "trafficsplits", "ingresses"}
    assert dict((p, v) for _, p, v in factory.PERMISSIONS)["ingresses"] == (
        "get",
        "list",
        "watch",
        "create",
        "patch",
        "delete",
    )
