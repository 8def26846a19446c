"""The four routers against kmock's Kubernetes emulator, over real HTTP and the real client.

What the unit tests cannot show: the patch types and field manager reach the server, guarded JSON
patches apply, a failed guard is retried on a fresh read, the NGINX canary Ingress is created,
patched and deleted, and ``router_for`` wires a parsed Rollout to the right objects.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import kubernetes
import pytest
import urllib3

from rollouts.api.validation import parse_rollout
from rollouts.cluster.kube import bound_api_client
from rollouts.routing.common import RoutingError
from rollouts.routing.factory import router_for
from rollouts.routing.gateway_api import GatewayAPIRouter
from rollouts.routing.istio import IstioRouter
from rollouts.routing.nginx import NginxRouter, Owner
from rollouts.routing.smi import SMIRouter
from tests.support.kube import RunningEmulator, get_json
from tests.support.rollouts import rollout_doc

pytestmark = pytest.mark.integration

NS = "ns"
SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")


def create(api: kubernetes.client.ApiClient, api_version: str, plural: str, doc: Any) -> None:
    group, version = api_version.split("/")
    kubernetes.client.CustomObjectsApi(api).create_namespaced_custom_object(
        group, version, NS, plural, doc
    )


def read(api: kubernetes.client.ApiClient, api_version: str, plural: str, name: str) -> Any:
    return get_json(api, f"/apis/{api_version}/namespaces/{NS}/{plural}/{name}")


def merge_patch(
    api: kubernetes.client.ApiClient, api_version: str, plural: str, name: str, patch: Any
) -> None:
    group, version = api_version.split("/")
    kubernetes.client.CustomObjectsApi(api).patch_namespaced_custom_object(
        group,
        version,
        NS,
        plural,
        name,
        patch,
        _content_type="application/merge-patch+json",
    )


def user_part(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what the server fills in: what the user wrote and owns."""
    out = copy.deepcopy(obj)
    for key in SERVER_FIELDS:
        out["metadata"].pop(key, None)
    return out


def patches(emulator: RunningEmulator, plural: str) -> list[Any]:
    return [
        r
        for r in emulator.emulator
        if r.method is not None
        and str(r.method.value).upper() == "PATCH"
        and r.resource is not None
        and r.resource.plural == plural
    ]


VIRTUAL_SERVICE: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1beta1",
    "kind": "VirtualService",
    "metadata": {"name": "web", "namespace": NS},
    "spec": {
        "hosts": ["web.example.com"],
        "gateways": ["web-gateway"],
        "http": [
            {
                "name": "api",
                "match": [{"uri": {"prefix": "/api"}}],
                "retries": {"attempts": 3, "perTryTimeout": "2s"},
                "route": [{"destination": {"host": "api.ns.svc.cluster.local"}}],
            },
            {
                "name": "primary",
                "route": [
                    {"destination": {"host": "web", "port": {"number": 80}}, "weight": 100},
                    {"destination": {"host": "web-canary", "port": {"number": 80}}, "weight": 0},
                ],
            },
        ],
    },
}


def weights(vs: dict[str, Any], index: int = 1) -> list[int]:
    return [d.get("weight") for d in vs["spec"]["http"][index]["route"]]


def istio_router(api: kubernetes.client.ApiClient) -> IstioRouter:
    return IstioRouter(
        api, NS, "web", stable_service="web", canary_service="web-canary", routes=["primary"]
    )


def test_istio_sets_weights_with_field_manager_and_leaves_the_rest(
    api_client: kubernetes.client.ApiClient, kube_emulator: RunningEmulator
) -> None:
    create(api_client, "networking.istio.io/v1beta1", "virtualservices", VIRTUAL_SERVICE)
    router = istio_router(api_client)
    assert router.get_weight() == 0
    router.set_weight(25)
    vs = read(api_client, "networking.istio.io/v1beta1", "virtualservices", "web")
    assert weights(vs) == [75, 25]
    expected = copy.deepcopy(VIRTUAL_SERVICE)
    expected["spec"]["http"][1]["route"][0]["weight"] = 75
    expected["spec"]["http"][1]["route"][1]["weight"] = 25
    assert user_part(vs) == expected
    assert router.get_weight() == 25
    sent = patches(kube_emulator, "virtualservices")
    assert len(sent) == 1
    assert sent[0].params.get("fieldManager") == "sluice"
    assert sent[0].headers.get("Content-Type") == "application/json-patch+json"
    router.set_weight(25)  # idempotent: nothing more is written
    assert len(patches(kube_emulator, "virtualservices")) == 1
    assert router.verify_weight() is None


def test_istio_reasserts_after_a_hand_edit(api_client: kubernetes.client.ApiClient) -> None:
    create(api_client, "networking.istio.io/v1beta1", "virtualservices", VIRTUAL_SERVICE)
    router = istio_router(api_client)
    router.set_weight(10)
    # someone (or a GitOps sync) puts back what Git holds: 100/0
    merge_patch(
        api_client,
        "networking.istio.io/v1beta1",
        "virtualservices",
        "web",
        {"spec": {"http": VIRTUAL_SERVICE["spec"]["http"]}},
    )
    assert router.get_weight() == 0
    router.set_weight(10)
    vs = read(api_client, "networking.istio.io/v1beta1", "virtualservices", "web")
    assert weights(vs) == [90, 10]
    assert vs["spec"]["http"][0] == VIRTUAL_SERVICE["spec"]["http"][0]


def test_istio_retries_when_a_guard_fails_and_gives_up_after_three(
    api_client: kubernetes.client.ApiClient, kube_emulator: RunningEmulator
) -> None:
    create(api_client, "networking.istio.io/v1beta1", "virtualservices", VIRTUAL_SERVICE)
    router = istio_router(api_client)
    fault = kube_emulator.inject(method="PATCH", plural="virtualservices", status=422, times=2)
    router.set_weight(40)
    assert fault.hits == 2
    assert router.get_weight() == 40
    kube_emulator.inject(method="PATCH", plural="virtualservices", status=422, times=None)
    with pytest.raises(kubernetes.client.ApiException) as e:
        router.set_weight(50)
    assert e.value.status == 422
    assert router.get_weight() == 40


def test_istio_server_errors_propagate_for_the_operator_to_retry(
    api_client: kubernetes.client.ApiClient, kube_emulator: RunningEmulator
) -> None:
    """A passing 5xx is retried in the call (bounded, analysis.retry_policy); one that persists
    past the attempts propagates, for the operator to retry the Rollout later."""
    create(api_client, "networking.istio.io/v1beta1", "virtualservices", VIRTUAL_SERVICE)
    once = kube_emulator.inject(method="PATCH", plural="virtualservices", status=500)
    istio_router(api_client).set_weight(40)
    assert once.hits == 1 and istio_router(api_client).get_weight() == 40
    fault = kube_emulator.inject(method="PATCH", plural="virtualservices", status=500, times=None)
    with pytest.raises(kubernetes.client.ApiException) as e:
        istio_router(api_client).set_weight(50)
    assert (e.value.status, fault.hits) == (500, 3)
    assert istio_router(api_client).get_weight() == 40


def test_router_reads_are_retried_and_a_hung_read_ends_at_its_timeout(
    api_client: kubernetes.client.ApiClient, kube_emulator: RunningEmulator
) -> None:
    """Router GETs are retried like writes (429 and 5xx), and each has a read timeout: a server
    that never answers costs the attempts' timeouts, not forever."""
    create(api_client, "networking.istio.io/v1beta1", "virtualservices", VIRTUAL_SERVICE)
    router = istio_router(bound_api_client(api_client, pool_size=4, timeout=(5.0, 5.0)))
    router.timeout = (5.0, 0.3)
    throttled = kube_emulator.inject(method="GET", plural="virtualservices", status=429)
    failing = kube_emulator.inject(method="GET", plural="virtualservices", status=503)
    assert router.get_weight() == 0
    assert (throttled.hits, failing.hits) == (1, 1)
    hung = kube_emulator.inject(
        method="GET", plural="virtualservices", status=None, delay=300, times=None
    )
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):  # the controller's client: no
        router.get_weight()  # urllib3 retries of its own (bound_api_client)
    assert hung.hits == 3 and time.monotonic() - started < 10
    kube_emulator.clear_faults()


def test_istio_missing_object_and_missing_route(api_client: kubernetes.client.ApiClient) -> None:
    router = istio_router(api_client)
    # reading fails as writing would, so the engine learns before deciding that it must hold
    with pytest.raises(RoutingError, match=r"VirtualService ns/web not found \(networking"):
        router.get_weight()
    with pytest.raises(RoutingError, match=r"VirtualService ns/web not found \(networking"):
        router.set_weight(10)
    vs = copy.deepcopy(VIRTUAL_SERVICE)
    vs["spec"]["http"][1]["name"] = "main"
    create(api_client, "networking.istio.io/v1beta1", "virtualservices", vs)
    with pytest.raises(RoutingError, match='no http route named "primary"'):
        router.get_weight()
    with pytest.raises(RoutingError, match='no http route named "primary"'):
        router.set_weight(10)


def test_istio_v1(api_client: kubernetes.client.ApiClient) -> None:
    vs = {**copy.deepcopy(VIRTUAL_SERVICE), "apiVersion": "networking.istio.io/v1"}
    create(api_client, "networking.istio.io/v1", "virtualservices", vs)
    router = IstioRouter(
        api_client, NS, "web", stable_service="web", canary_service="web-canary", version="v1"
    )
    router.set_weight(60)
    assert weights(read(api_client, "networking.istio.io/v1", "virtualservices", "web")) == [40, 60]


HTTP_ROUTE: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "web", "namespace": NS},
    "spec": {
        "parentRefs": [{"name": "gateway", "namespace": "infra"}],
        "hostnames": ["web.example.com"],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {"name": "web", "port": 80, "weight": 100},
                    {"name": "web-canary", "port": 80, "weight": 0},
                ],
            },
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
                "backendRefs": [{"name": "assets", "port": 80}],
            },
        ],
    },
}


def test_gateway_api(
    api_client: kubernetes.client.ApiClient, kube_emulator: RunningEmulator
) -> None:
    create(api_client, "gateway.networking.k8s.io/v1", "httproutes", HTTP_ROUTE)
    router = GatewayAPIRouter(
        api_client, NS, "web", stable_service="web", canary_service="web-canary"
    )
    router.set_weight(30)
    route = read(api_client, "gateway.networking.k8s.io/v1", "httproutes", "web")
    expected = copy.deepcopy(HTTP_ROUTE)
    expected["spec"]["rules"][0]["backendRefs"][0]["weight"] = 70
    expected["spec"]["rules"][0]["backendRefs"][1]["weight"] = 30
    assert user_part(route) == expected
    assert router.get_weight() == 30
    assert patches(kube_emulator, "httproutes")[0].params.get("fieldManager") == "sluice"
    merge_patch(
        api_client,
        "gateway.networking.k8s.io/v1",
        "httproutes",
        "web",
        {"spec": HTTP_ROUTE["spec"]},
    )
    assert router.get_weight() == 0
    router.set_weight(30)
    assert user_part(read(api_client, "gateway.networking.k8s.io/v1", "httproutes", "web")) == (
        expected
    )


TRAFFIC_SPLIT: dict[str, Any] = {
    "apiVersion": "split.smi-spec.io/v1alpha2",
    "kind": "TrafficSplit",
    "metadata": {"name": "web", "namespace": NS},
    "spec": {
        "service": "web-root",
        "backends": [{"service": "web", "weight": 100}, {"service": "web-canary", "weight": 0}],
    },
}


def test_smi(api_client: kubernetes.client.ApiClient) -> None:
    create(api_client, "split.smi-spec.io/v1alpha2", "trafficsplits", TRAFFIC_SPLIT)
    router = SMIRouter(api_client, NS, "web", stable_service="web", canary_service="web-canary")
    router.set_weight(5)
    split = read(api_client, "split.smi-spec.io/v1alpha2", "trafficsplits", "web")
    assert split["spec"] == {
        "service": "web-root",
        "backends": [{"service": "web", "weight": 95}, {"service": "web-canary", "weight": 5}],
    }
    assert router.get_weight() == 5
    router.remove_managed_routes()  # nothing Sluice created: the user's TrafficSplit stays
    assert read(api_client, "split.smi-spec.io/v1alpha2", "trafficsplits", "web") is not None


STABLE_INGRESS: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {
        "name": "web",
        "namespace": NS,
        "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"},
    },
    "spec": {
        "ingressClassName": "nginx",
        "rules": [
            {
                "host": "web.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "web", "port": {"number": 80}}},
                        }
                    ]
                },
            }
        ],
    },
}


def ingress(api: kubernetes.client.ApiClient, name: str) -> Any:
    return read(api, "networking.k8s.io/v1", "ingresses", name)


def nginx_router(api: kubernetes.client.ApiClient, owner: str = "web") -> NginxRouter:
    return NginxRouter(
        api,
        NS,
        stable_ingress="web",
        owner=Owner(owner, "rollout-uid"),
        stable_service="web",
        canary_service="web-canary",
    )


def test_nginx_canary_ingress_lifecycle(
    api_client: kubernetes.client.ApiClient, kube_emulator: RunningEmulator
) -> None:
    create(api_client, "networking.k8s.io/v1", "ingresses", STABLE_INGRESS)
    stable_before = ingress(api_client, "web")
    router = nginx_router(api_client)
    assert router.get_weight() == 0  # no canary Ingress yet
    router.set_weight(10)
    canary = ingress(api_client, "web-web-canary")
    assert canary["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/canary": "true",
        "nginx.ingress.kubernetes.io/canary-weight": "10",
    }
    assert canary["metadata"]["labels"]["sluice.dev/rollout"] == "web"
    assert canary["metadata"]["ownerReferences"][0]["uid"] == "rollout-uid"
    backend = canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend == {"service": {"name": "web-canary", "port": {"number": 80}}}
    assert canary["spec"]["ingressClassName"] == "nginx"
    assert router.get_weight() == 10

    router.set_weight(50)
    assert (
        ingress(api_client, "web-web-canary")["metadata"]["annotations"][
            "nginx.ingress.kubernetes.io/canary-weight"
        ]
        == "50"
    )
    sent = patches(kube_emulator, "ingresses")
    assert [(r.name, r.params.get("fieldManager")) for r in sent] == [("web-web-canary", "sluice")]
    assert json.loads(sent[0].body) == {
        "metadata": {"annotations": {"nginx.ingress.kubernetes.io/canary-weight": "50"}}
    }
    router.set_weight(50)
    assert len(patches(kube_emulator, "ingresses")) == 1  # idempotent

    # a hand edit of the weight is seen and undone
    merge_patch(
        api_client,
        "networking.k8s.io/v1",
        "ingresses",
        "web-web-canary",
        {"metadata": {"annotations": {"nginx.ingress.kubernetes.io/canary-weight": "100"}}},
    )
    assert router.get_weight() == 100
    router.set_weight(50)
    assert router.get_weight() == 50

    # a deleted canary Ingress reads as 0 and is recreated
    kubernetes.client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        "networking.k8s.io", "v1", NS, "ingresses", "web-web-canary"
    )
    assert router.get_weight() == 0
    router.set_weight(50)
    assert router.get_weight() == 50

    # weight 0 (promotion or abort) removes it; the stable Ingress was never written
    router.set_weight(0)
    assert ingress(api_client, "web-web-canary") is None
    assert router.get_weight() == 0
    assert ingress(api_client, "web") == stable_before


def test_nginx_remove_managed_routes(api_client: kubernetes.client.ApiClient) -> None:
    create(api_client, "networking.k8s.io/v1", "ingresses", STABLE_INGRESS)
    router = nginx_router(api_client)
    router.set_weight(20)
    router.remove_managed_routes()
    assert ingress(api_client, "web-web-canary") is None
    router.remove_managed_routes()  # already gone: fine
    assert ingress(api_client, "web") is not None


def test_nginx_never_touches_an_ingress_it_does_not_own(
    api_client: kubernetes.client.ApiClient,
) -> None:
    create(api_client, "networking.k8s.io/v1", "ingresses", STABLE_INGRESS)
    nginx_router(api_client, owner="api").set_weight(20)  # another Rollout's canary Ingress...
    foreign = copy.deepcopy(STABLE_INGRESS)
    foreign["metadata"]["name"] = "web-web-canary"  # ...and a same-named Ingress a person made
    create(api_client, "networking.k8s.io/v1", "ingresses", foreign)
    router = nginx_router(api_client)
    with pytest.raises(RoutingError, match="ns/web-web-canary exists and is not managed by"):
        router.get_weight()
    with pytest.raises(RoutingError, match="ns/web-web-canary exists and is not managed by"):
        router.set_weight(20)
    with pytest.raises(RoutingError, match="not managed by"):
        router.set_weight(0)
    router.remove_managed_routes()
    assert ingress(api_client, "web-web-canary") is not None
    assert ingress(api_client, "web-api-canary") is not None


def test_nginx_missing_stable_ingress(api_client: kubernetes.client.ApiClient) -> None:
    with pytest.raises(RoutingError, match="Ingress ns/web not found"):
        nginx_router(api_client).set_weight(20)


@pytest.mark.parametrize(
    ("routing", "plural", "doc"),
    [
        ({"istio": {"virtualService": {"name": "web"}}}, "virtualservices", VIRTUAL_SERVICE),
        ({"gatewayAPI": {"httpRoute": {"name": "web"}}}, "httproutes", HTTP_ROUTE),
        ({"smi": {"trafficSplitName": "web"}}, "trafficsplits", TRAFFIC_SPLIT),
        ({"nginx": {"stableIngress": "web"}}, "ingresses", STABLE_INGRESS),
    ],
)
def test_router_for_drives_each_kind_from_a_rollout(
    api_client: kubernetes.client.ApiClient, routing: dict[str, Any], plural: str, doc: Any
) -> None:
    create(api_client, doc["apiVersion"], plural, doc)
    rollout_spec = rollout_doc(steps=[{"setWeight": 20}], router=routing)
    rollout_spec["metadata"]["uid"] = "rollout-uid"
    router = router_for(parse_rollout(rollout_spec), api_client)
    assert router is not None
    router.set_weight(20)
    assert router.get_weight() == 20
    router.set_weight(0)
    assert router.get_weight() == 0
