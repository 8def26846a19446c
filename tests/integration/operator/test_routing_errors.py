"""A VirtualService without the route the Rollout names, under the real kopf operator: the
Rollout reports it (Stalled, a Warning Event naming the object and the route), keeps traffic where
it was, and carries on by itself once the route exists."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import kubernetes
import pytest

from rollouts.settings import Settings
from tests.support.kube import create_rollout

from .conftest import OperatorHarness, canary, fast_settings, healthy

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "networking.istio.io", "v1beta1", "virtualservices"
PRIMARY: dict[str, Any] = {
    "name": "primary",
    "route": [
        {"destination": {"host": "web"}, "weight": 100},
        {"destination": {"host": "web-canary"}, "weight": 0},
    ],
}
API_ROUTE: dict[str, Any] = {
    "name": "api",
    "match": [{"uri": {"prefix": "/api"}}],
    "route": [{"destination": {"host": "api"}}],
}
ISTIO = {"istio": {"virtualService": {"name": "web", "routes": ["primary"]}}}
STEPS: list[dict[str, Any]] = [{"setWeight": 25}, {"pause": {}}]


@pytest.fixture()
def operator_settings() -> Settings:
    """As the shared fixture, with the router retries capped low so recovery is seen quickly."""
    return fast_settings(router_retry_max_seconds=1.0)


def custom(h: OperatorHarness) -> Any:
    return kubernetes.client.CustomObjectsApi(h.api)


def create_vs(h: OperatorHarness, http: list[dict[str, Any]]) -> None:
    doc = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": h.namespace},
        "spec": {"hosts": ["web.example.com"], "http": copy.deepcopy(http)},
    }
    custom(h).create_namespaced_custom_object(GROUP, VERSION, h.namespace, PLURAL, doc)


def set_routes(h: OperatorHarness, http: list[dict[str, Any]]) -> None:
    """What a person editing the VirtualService does (a merge patch replaces the list)."""
    custom(h).patch_namespaced_custom_object(
        GROUP, VERSION, h.namespace, PLURAL, "web", {"spec": {"http": copy.deepcopy(http)}}
    )


def vs_http(h: OperatorHarness) -> list[dict[str, Any]]:
    vs = custom(h).get_namespaced_custom_object(GROUP, VERSION, h.namespace, PLURAL, "web")
    return list(vs["spec"]["http"])


def stalled(st: dict[str, Any]) -> dict[str, Any] | None:
    cond = {c["type"]: c for c in st.get("conditions") or []}.get("Stalled")
    return cond if cond and cond["status"] == "True" and cond["reason"] == "RoutingError" else None


def routing_warnings(h: OperatorHarness) -> list[str]:
    return [
        e["message"]
        for e in h.events()
        if e["reason"] == "RoutingError" and e.get("type") == "Warning"
    ]


async def test_missing_route_stalls_the_rollout_until_the_route_is_added(
    harness: OperatorHarness,
) -> None:
    h = harness
    create_vs(h, [API_ROUTE])  # no route named "primary"
    create_rollout(h.api, canary(steps=STEPS, router=ISTIO))
    st = await h.wait_status(lambda s: stalled(s) is not None, what="Stalled/RoutingError")
    cond = stalled(st)
    assert cond is not None
    assert 'VirtualService ns/web: no http route named "primary"' in cond["message"]
    assert '(named routes: "api")' in cond["message"]
    assert st["phase"] == "Degraded" and st["observedGeneration"] == 1
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds["Ready"] == "False" and conds["Reconciling"] == "False"
    messages = await h.wait_for(lambda: routing_warnings(h), what="a RoutingError Event")
    assert 'VirtualService ns/web: no http route named "primary"' in messages[0]
    # nothing was deployed or written while the route is missing
    assert h.deployment("web-a") is None and h.deployment("web-b") is None
    assert vs_http(h) == [API_ROUTE]
    # retried meanwhile (with backoff) but announced once, not on every retry (the retries read
    # the VirtualService from the watch cache, so they are counted as reconciles, not as GETs)
    await h.reconciles(3)
    assert len(routing_warnings(h)) == 1

    set_routes(h, [API_ROUTE, PRIMARY])  # the person fixes the VirtualService
    st = await h.wait_status(healthy, timeout=15, what="Healthy once the route exists")
    assert stalled(st) is None
    assert {c["type"]: c["status"] for c in st["conditions"]}["Stalled"] == "False"
    assert "RoutingRecovered" in h.reasons()
    assert vs_http(h) == [API_ROUTE, PRIMARY]  # already 100/0: nothing to write


async def test_route_removed_mid_rollout_keeps_traffic_where_it_was(
    harness: OperatorHarness,
) -> None:
    h = harness
    create_vs(h, [API_ROUTE, PRIMARY])
    create_rollout(h.api, canary(steps=STEPS, router=ISTIO))
    await h.wait_status(healthy, what="first revision Healthy")
    h.set_image("web:2")
    await h.wait_status(lambda s: s.get("phase") == "Paused", what="paused at weight 25")
    routed = copy.deepcopy(vs_http(h))
    assert [r["weight"] for r in routed[1]["route"]] == [75, 25]
    renamed = copy.deepcopy(routed)
    renamed[1]["name"] = "main"
    set_routes(h, renamed)
    h.request("promote", "p1")  # cannot be carried out while the route is missing
    st = await h.wait_status(lambda s: stalled(s) is not None, what="Stalled/RoutingError")
    assert 'no http route named "primary" (named routes: "api", "main")' in st["message"]
    assert st["currentStepIndex"] == 1 and st["weights"]["canary"] == 25
    assert vs_http(h) == renamed  # the weights stay as they were: 75 / 25
    annotations = h.rollout()["metadata"].get("annotations") or {}
    assert annotations.get("sluice.dev/request") == "promote@p1"  # waits for the router

    set_routes(h, routed)
    st = await h.wait_status(healthy, timeout=15, what="promoted once the route is back")
    assert st["stableRevision"] == st["currentRevision"]
    assert [r["weight"] for r in vs_http(h)[1]["route"]] == [100, 0]
    assert "RoutingRecovered" in h.reasons()


async def test_deleting_while_the_route_is_missing_waits_for_the_fix(
    harness: OperatorHarness,
) -> None:
    """Deletion sends traffic back to stable before letting go; with the route missing it cannot,
    so the Rollout stays (Terminating) and the stable Deployment keeps its owner until the fix."""
    h = harness
    create_vs(h, [API_ROUTE, PRIMARY])
    create_rollout(h.api, canary(steps=STEPS, router=ISTIO))
    st = await h.wait_status(healthy, what="first revision Healthy")
    stable = f"web-{st['stableSlot']}"
    set_routes(h, [API_ROUTE])
    custom(h).delete_namespaced_custom_object(
        "sluice.dev", "v1alpha1", h.namespace, "rollouts", "web"
    )
    await h.wait_for(
        lambda: h.rollout()["metadata"].get("deletionTimestamp"), what="deletion requested"
    )
    await asyncio.sleep(1.5)  # the finalizer is retried meanwhile; it must not give up
    assert "web" in h.rollout_names()
    set_routes(h, [API_ROUTE, PRIMARY])
    await h.wait_for(lambda: "web" not in h.rollout_names(), timeout=15, what="Rollout gone")
    dep = h.deployment(stable)
    assert dep is not None and not dep["metadata"].get("ownerReferences")  # released, running
