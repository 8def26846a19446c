"""Header and mirror routes against kmock's Kubernetes emulator, through the routers' real
client calls: guarded JSON patches with the ``sluice`` field manager, the ownership mark, drift
repaired, and the user's routes left exactly as they were."""

from __future__ import annotations

import copy
import json

import kubernetes
import pytest

from rollouts.engine.plan import HeaderMatch, ManagedRoutes
from rollouts.routing import managed, nginx
from rollouts.routing.common import RoutingError
from rollouts.routing.gateway_api import GatewayAPIRouter
from rollouts.routing.istio import IstioRouter
from tests.integration.routing.test_routers_emulator import (
    HTTP_ROUTE,
    NS,
    STABLE_INGRESS,
    VIRTUAL_SERVICE,
    create,
    ingress,
    merge_patch,
    nginx_router,
    patches,
    read,
    user_part,
)
from tests.support.kube import RunningEmulator

pytestmark = pytest.mark.integration

ISTIO = "networking.istio.io/v1beta1"
GATEWAY = "gateway.networking.k8s.io/v1"
HEADER = ManagedRoutes(headers=(HeaderMatch("x-canary", "always"),))
BOTH = ManagedRoutes(headers=HEADER.headers, mirror=25)


def istio_router(api: kubernetes.client.ApiClient) -> IstioRouter:
    return IstioRouter(
        api,
        NS,
        "web",
        stable_service="web",
        canary_service="web-canary",
        routes=["primary"],
        prefix="sluice-web",
    )


def test_istio_header_and_mirror_routes_come_and_go_leaving_the_users_routes(
    api_client: kubernetes.client.ApiClient, kube_emulator: RunningEmulator
) -> None:
    create(api_client, ISTIO, "virtualservices", VIRTUAL_SERVICE)
    router = istio_router(api_client)
    router.set_managed_routes(BOTH)
    vs = read(api_client, ISTIO, "virtualservices", "web")
    header, mirror, *user = vs["spec"]["http"]
    assert user == VIRTUAL_SERVICE["spec"]["http"]
    assert header["match"] == [{"headers": {"x-canary": {"exact": "always"}}}]
    assert header["route"] == [
        {"destination": {"host": "web-canary", "port": {"number": 80}}, "weight": 100}
    ]
    assert mirror["mirror"] == {"host": "web-canary", "port": {"number": 80}}
    assert mirror["mirrorPercentage"] == {"value": 25.0}
    assert (
        vs["metadata"]["annotations"][managed.ANNOTATION] == "sluice-web-header,sluice-web-mirror"
    )
    sent = patches(kube_emulator, "virtualservices")
    assert [r.params.get("fieldManager") for r in sent] == ["sluice"]
    assert sent[0].headers.get("Content-Type") == "application/json-patch+json"
    assert json.loads(sent[0].body)[0]["op"] == "test"  # guarded like the weights

    router.set_managed_routes(BOTH)  # idempotent: nothing more is written
    assert len(patches(kube_emulator, "virtualservices")) == 1

    # weights move on the user's route and on the mirror copy together
    router.set_weight(40)
    vs = read(api_client, ISTIO, "virtualservices", "web")
    assert [d["weight"] for d in vs["spec"]["http"][1]["route"]] == [60, 40]
    assert [d["weight"] for d in vs["spec"]["http"][3]["route"]] == [60, 40]
    assert vs["spec"]["http"][0]["route"][0]["weight"] == 100  # the header route has no split
    assert router.get_weight() == 40

    # a GitOps sync puts Git's routes back: the next assertion restores Sluice's
    merge_patch(api_client, ISTIO, "virtualservices", "web", {"spec": VIRTUAL_SERVICE["spec"]})
    router.set_managed_routes(BOTH)
    names = [r["name"] for r in read(api_client, ISTIO, "virtualservices", "web")["spec"]["http"]]
    assert names == ["sluice-web-header", "sluice-web-mirror", "api", "primary"]

    # promotion, abort or deletion: gone, and the object is the user's again
    router.set_weight(0)
    router.remove_managed_routes()
    vs = read(api_client, ISTIO, "virtualservices", "web")
    assert vs["spec"] == VIRTUAL_SERVICE["spec"]
    assert managed.ANNOTATION not in (vs["metadata"].get("annotations") or {})


def test_istio_refuses_to_take_over_a_user_route_with_its_name(
    api_client: kubernetes.client.ApiClient,
) -> None:
    doc = copy.deepcopy(VIRTUAL_SERVICE)
    doc["spec"]["http"].insert(
        0, {"name": "sluice-web-header", "route": [{"destination": {"host": "x"}}]}
    )
    create(api_client, ISTIO, "virtualservices", doc)
    with pytest.raises(RoutingError, match="sluice-web-header"):
        istio_router(api_client).set_managed_routes(HEADER)
    assert user_part(read(api_client, ISTIO, "virtualservices", "web")) == doc


def test_gateway_api_header_and_mirror_rules(
    api_client: kubernetes.client.ApiClient, kube_emulator: RunningEmulator
) -> None:
    create(api_client, GATEWAY, "httproutes", HTTP_ROUTE)
    router = GatewayAPIRouter(
        api_client,
        NS,
        "web",
        stable_service="web",
        canary_service="web-canary",
        prefix="sluice-web",
    )
    router.set_managed_routes(BOTH)
    route = read(api_client, GATEWAY, "httproutes", "web")
    header, mirror, *user = route["spec"]["rules"]
    assert user == HTTP_ROUTE["spec"]["rules"]
    assert [m["headers"] for m in header["matches"]] == [
        [{"type": "Exact", "name": "x-canary", "value": "always"}] for _ in header["matches"]
    ]
    assert [r["name"] for r in header["backendRefs"]] == ["web-canary"]
    assert mirror["filters"][-1]["requestMirror"]["percent"] == 25
    router.set_weight(30)
    assert router.get_weight() == 30
    assert patches(kube_emulator, "httproutes")[0].params.get("fieldManager") == "sluice"
    router.set_managed_routes(ManagedRoutes())
    route = read(api_client, GATEWAY, "httproutes", "web")
    assert len(route["spec"]["rules"]) == len(HTTP_ROUTE["spec"]["rules"])
    assert router.get_weight() == 30


def test_nginx_canary_by_header_keeps_the_canary_ingress_at_weight_zero(
    api_client: kubernetes.client.ApiClient,
) -> None:
    create(api_client, "networking.k8s.io/v1", "ingresses", STABLE_INGRESS)
    router = nginx_router(api_client)
    router.set_managed_routes(HEADER)
    canary = ingress(api_client, "web-web-canary")
    annotations = canary["metadata"]["annotations"]
    assert annotations[nginx.BY_HEADER] == "x-canary"
    assert annotations[nginx.BY_HEADER_VALUE] == "always"
    assert annotations[nginx.CANARY_WEIGHT] == "0"
    assert router.get_weight() == 0
    router.set_weight(30)  # weights change, the header route stays
    router.set_weight(0)  # and weight 0 keeps the Ingress while a header route needs it
    annotations = ingress(api_client, "web-web-canary")["metadata"]["annotations"]
    assert annotations[nginx.BY_HEADER] == "x-canary" and annotations[nginx.CANARY_WEIGHT] == "0"
    router.set_managed_routes(ManagedRoutes())  # nothing routes to the canary any more
    assert ingress(api_client, "web-web-canary") is None
    with pytest.raises(RoutingError, match="cannot mirror"):
        router.set_managed_routes(ManagedRoutes(mirror=10))
    assert ingress(api_client, "web") is not None
