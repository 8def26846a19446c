"""Each traffic router end to end under the real kopf operator: a canary walks every step to
Healthy, and the routing object the user owns shows each step's weights and nothing else changed.

Istio and the no-router case are in test_lifecycle.py; this file covers the Gateway API HTTPRoute,
the SMI TrafficSplit and the NGINX canary Ingress with one scenario. The steps pause for a person
(``pause: {}``), so every weight is checked in a state that holds still, and the test moves on
with ``promote`` requests, as ``kubectl annotate`` would.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes
import pytest

from tests.support.kube import create_rollout, get_json

from .conftest import OperatorHarness, canary, healthy

pytestmark = pytest.mark.integration

NS = "ns"
STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {}},
    {"setWeight": 75},
    {"pause": {}},
]
SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")

HTTP_ROUTE: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "web", "namespace": NS, "labels": {"team": "shop"}},
    "spec": {
        "parentRefs": [{"name": "public", "namespace": "infra"}],
        "hostnames": ["web.example.com"],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
                "backendRefs": [{"name": "assets", "port": 80}],
            },
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "filters": [
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"add": [{"name": "x-app", "value": "web"}]},
                    }
                ],
                "backendRefs": [
                    {"name": "web", "port": 80, "weight": 100},
                    {"name": "web-canary", "port": 80, "weight": 0},
                ],
            },
        ],
    },
}

TRAFFIC_SPLIT: dict[str, Any] = {
    "apiVersion": "split.smi-spec.io/v1alpha2",
    "kind": "TrafficSplit",
    "metadata": {"name": "web", "namespace": NS},
    "spec": {
        "service": "web-root",
        "backends": [
            {"service": "web", "weight": 100},
            {"service": "web-legacy", "weight": 0},  # the user's: stays at 0, untouched
            {"service": "web-canary", "weight": 0},
        ],
    },
}

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
                            "path": "/docs",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "docs", "port": {"number": 80}}},
                        },
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "web", "port": {"number": 80}}},
                        },
                    ]
                },
            }
        ],
    },
}
CANARY_INGRESS = "web-web-canary"  # <stable ingress>-<rollout>-canary


def user_part(obj: dict[str, Any] | None) -> dict[str, Any]:
    """The object without what the server fills in: what the user wrote and owns."""
    assert obj is not None
    out = copy.deepcopy(obj)
    for key in SERVER_FIELDS:
        out["metadata"].pop(key, None)
    out.pop("status", None)
    return out


def replicas(h: OperatorHarness, deployment: str) -> int:
    dep = h.deployment(deployment)
    assert dep is not None, deployment
    return int(dep["spec"]["replicas"])


def sluice_writes(h: OperatorHarness, plural: str) -> int:
    """Writes (create or patch) to ``plural`` the emulator has seen with field manager sluice."""
    return sum(
        1
        for r in h.emulator.emulator
        if r.method is not None
        and str(r.method.value).upper() in ("POST", "PATCH")
        and r.resource is not None
        and r.resource.plural == plural
        and r.params.get("fieldManager") == "sluice"
    )


def read(h: OperatorHarness, api_version: str, plural: str, name: str) -> dict[str, Any] | None:
    return get_json(h.api, f"/apis/{api_version}/namespaces/{NS}/{plural}/{name}")


def create(h: OperatorHarness, doc: dict[str, Any]) -> None:
    group, version = doc["apiVersion"].split("/")
    plural = {"HTTPRoute": "httproutes", "TrafficSplit": "trafficsplits", "Ingress": "ingresses"}
    kubernetes.client.CustomObjectsApi(h.api).create_namespaced_custom_object(
        group, version, NS, plural[doc["kind"]], copy.deepcopy(doc)
    )


def merge_patch(h: OperatorHarness, doc: dict[str, Any], plural: str, patch: Any) -> None:
    group, version = doc["apiVersion"].split("/")
    kubernetes.client.CustomObjectsApi(h.api).patch_namespaced_custom_object(
        group,
        version,
        NS,
        plural,
        doc["metadata"]["name"],
        patch,
        _content_type="application/merge-patch+json",
    )


# ------------------------------------------------------------------------------------ routers


@dataclass(frozen=True)
class RouterCase:
    """How one router shows up in the cluster.

    ``weights`` reads (stable, canary) off the routing objects and asserts on the way that
    everything else in the user's object is as they wrote it; ``revert`` plays a GitOps sync
    or a person undoing Sluice's weights mid-rollout.
    """

    id: str
    plural: str
    stanza: dict[str, Any]
    setup: Callable[[OperatorHarness], None]
    weights: Callable[[OperatorHarness], tuple[int, int]]
    revert: Callable[[OperatorHarness], None]


def gateway_weights(h: OperatorHarness) -> tuple[int, int]:
    route = user_part(read(h, "gateway.networking.k8s.io/v1", "httproutes", "web"))
    refs = route["spec"]["rules"][1]["backendRefs"]
    expected = copy.deepcopy(HTTP_ROUTE)
    for have, want in zip(refs, expected["spec"]["rules"][1]["backendRefs"], strict=True):
        want["weight"] = have.get("weight")
    assert route == expected, "only the two weights of the managed rule may change"
    return refs[0]["weight"], refs[1]["weight"]


def gateway_revert(h: OperatorHarness) -> None:
    merge_patch(h, HTTP_ROUTE, "httproutes", {"spec": HTTP_ROUTE["spec"]})


def smi_weights(h: OperatorHarness) -> tuple[int, int]:
    split = user_part(read(h, "split.smi-spec.io/v1alpha2", "trafficsplits", "web"))
    backends = split["spec"]["backends"]
    expected = copy.deepcopy(TRAFFIC_SPLIT)
    expected["spec"]["backends"][0]["weight"] = backends[0]["weight"]
    expected["spec"]["backends"][2]["weight"] = backends[2]["weight"]
    assert split == expected, "only the stable and canary backends' weights may change"
    return backends[0]["weight"], backends[2]["weight"]


def smi_revert(h: OperatorHarness) -> None:
    merge_patch(h, TRAFFIC_SPLIT, "trafficsplits", {"spec": TRAFFIC_SPLIT["spec"]})


def nginx_weights(h: OperatorHarness) -> tuple[int, int]:
    stable = read(h, "networking.k8s.io/v1", "ingresses", "web")
    assert user_part(stable) == STABLE_INGRESS, "the user's stable Ingress is never written"
    managed = read(h, "networking.k8s.io/v1", "ingresses", CANARY_INGRESS)
    if managed is None:
        return 100, 0
    meta = managed["metadata"]
    assert meta["labels"] == {"sluice.dev/rollout": "web", "app.kubernetes.io/managed-by": "sluice"}
    assert [o["kind"] for o in meta["ownerReferences"]] == ["Rollout"]
    annotations = meta["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/canary"] == "true"
    # only the path that reaches the stable Service is copied, pointed at the canary Service
    paths = managed["spec"]["rules"][0]["http"]["paths"]
    assert [(p["path"], p["backend"]["service"]["name"]) for p in paths] == [("/", "web-canary")]
    assert managed["spec"]["rules"][0]["host"] == "web.example.com"
    assert managed["spec"]["ingressClassName"] == "nginx"
    weight = int(annotations["nginx.ingress.kubernetes.io/canary-weight"])
    return 100 - weight, weight


def nginx_revert(h: OperatorHarness) -> None:
    kubernetes.client.CustomObjectsApi(h.api).delete_namespaced_custom_object(
        "networking.k8s.io", "v1", NS, "ingresses", CANARY_INGRESS
    )


ROUTERS = [
    RouterCase(
        "gatewayAPI",
        "httproutes",
        {"gatewayAPI": {"httpRoute": {"name": "web"}}},
        lambda h: create(h, HTTP_ROUTE),
        gateway_weights,
        gateway_revert,
    ),
    RouterCase(
        "smi",
        "trafficsplits",
        {"smi": {"trafficSplitName": "web"}},
        lambda h: create(h, TRAFFIC_SPLIT),
        smi_weights,
        smi_revert,
    ),
    RouterCase(
        "nginx",
        "ingresses",
        {"nginx": {"stableIngress": "web"}},
        lambda h: create(h, STABLE_INGRESS),
        nginx_weights,
        nginx_revert,
    ),
]


def paused_at(index: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: s.get("currentStepIndex") == index and s.get("phase") == "Paused"


@pytest.mark.parametrize("case", ROUTERS, ids=[c.id for c in ROUTERS])
async def test_canary_walks_every_step_on_the_routing_object(
    harness: OperatorHarness, case: RouterCase
) -> None:
    h = harness
    case.setup(h)
    create_rollout(h.api, canary(steps=STEPS, router=case.stanza))
    st = await h.wait_status(healthy, what="first revision Healthy")
    stable, rev1 = st["stableSlot"], st["stableRevision"]
    new = "b" if stable == "a" else "a"
    assert case.weights(h) == (100, 0)
    assert h.selector("web") == {"app": "web", "sluice.dev/slot": stable}

    h.set_image("web:2")
    # step 1 (setWeight 25), then the manual pause of step 2 holds it there
    st = await h.wait_status(paused_at(1), what="paused at 25%")
    assert case.weights(h) == (75, 25)
    assert st["weights"]["canary"] == 25 and st["weights"]["stable"] == 75
    assert st["currentRevision"] not in (None, rev1)
    rev2 = st["currentRevision"]
    assert h.selector("web") == {"app": "web", "sluice.dev/slot": stable}
    assert h.selector("web-canary") == {"app": "web", "sluice.dev/slot": new}
    slots = {s["name"]: s for s in st["slots"]}
    assert slots[new]["role"] == "canary" and slots[new]["revision"] == rev2
    # a router carries the split: the stable keeps every replica, the canary runs a quarter
    assert replicas(h, f"web-{stable}") == 4
    assert replicas(h, f"web-{new}") == 1

    # someone reverts the weights mid-rollout: the operator writes them again
    writes = sluice_writes(h, case.plural)
    case.revert(h)
    await h.wait_for(lambda: case.weights(h) == (75, 25), what="weights re-asserted")
    assert sluice_writes(h, case.plural) > writes, "re-asserted by a new write, as field manager"

    h.request("promote", "step-2")
    st = await h.wait_status(paused_at(3), what="paused at 75%")
    assert case.weights(h) == (25, 75)
    assert st["weights"]["canary"] == 75 and st["lastRequest"] == "promote@step-2"
    assert h.selector("web") == {"app": "web", "sluice.dev/slot": stable}

    h.request("promote", "step-4")
    st = await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] == rev2, what="promoted", timeout=15
    )
    assert st["stableSlot"] == new and st["weights"]["canary"] == 0
    conditions = {c["type"]: c["status"] for c in st["conditions"]}
    assert conditions["Ready"] == "True" and conditions["Stalled"] == "False"
    # all traffic on the stable Service, which now selects the new slot
    assert case.weights(h) == (100, 0)
    assert h.selector("web") == {"app": "web", "sluice.dev/slot": new}
    await h.wait_for(lambda: replicas(h, f"web-{stable}") == 0, what="old slot down")
    if case.id == "nginx":
        assert read(h, "networking.k8s.io/v1", "ingresses", CANARY_INGRESS) is None
