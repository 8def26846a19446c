"""Header and mirror routes end to end: a running operator adds them at their steps, re-asserts
them after a hand edit, and removes them on abort (before the canary goes) and on promotion."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from tests.support.kube import create_rollout

from .conftest import OperatorHarness, canary, healthy
from .test_operations import create_virtual_service, replicas, sampling

pytestmark = pytest.mark.integration

ISTIO = ("networking.istio.io", "v1beta1", "virtualservices")
ROUTER = {"istio": {"virtualService": {"name": "web", "routes": ["primary"]}}}
STEPS: list[dict[str, Any]] = [
    {"setHeaderRoute": {"match": [{"headerName": "x-canary", "headerValue": {"exact": "always"}}]}},
    {"setMirrorRoute": {"percentage": 30}},
    {"pause": {}},
    {"setWeight": 50},
    {"pause": {}},
]


def routes(h: OperatorHarness) -> list[str]:
    vs = kubernetes.client.CustomObjectsApi(h.api).get_namespaced_custom_object(
        *ISTIO[:2], h.namespace, ISTIO[2], "web"
    )
    return [r.get("name") for r in vs["spec"]["http"]]


async def test_routes_are_added_kept_and_removed_on_abort_and_promotion(
    harness: OperatorHarness,
) -> None:
    h = harness
    create_virtual_service(h.api, h.namespace)
    create_rollout(h.api, canary(steps=STEPS, router=ROUTER))
    await h.wait_status(healthy, what="first revision Healthy")
    assert routes(h) == ["primary"]

    h.set_image("web:2")
    st = await h.wait_status(lambda s: s.get("phase") == "Paused", what="paused after the routes")
    assert routes(h) == ["sluice-web-header", "sluice-web-mirror", "primary"]
    canary_slot = "b" if st["stableSlot"] == "a" else "a"
    assert replicas(h, f"web-{canary_slot}") == 1  # requests reach the canary at weight 0

    # a hand edit (or a sync) takes the header route away: the next reconcile puts it back
    custom = kubernetes.client.CustomObjectsApi(h.api)
    vs = custom.get_namespaced_custom_object(*ISTIO[:2], h.namespace, ISTIO[2], "web")
    custom.patch_namespaced_custom_object(
        *ISTIO[:2],
        h.namespace,
        ISTIO[2],
        "web",
        {"spec": {"http": vs["spec"]["http"][1:]}},
        _content_type="application/merge-patch+json",
    )
    h.request("resume", "nudge")  # any change of the Rollout reconciles it at once
    await h.wait_for(lambda: routes(h)[0] == "sluice-web-header", what="header route restored")

    async with sampling(lambda: (routes(h), replicas(h, f"web-{canary_slot}"))) as samples:
        h.request("abort", "a1")
        await h.wait_status(lambda s: s.get("abort") is not None, what="aborted")
        await h.wait_for(lambda: replicas(h, f"web-{canary_slot}") == 0, what="canary down")
    for names, count in samples:
        if count == 0:
            assert names == ["primary"], samples  # routes went before the pods did
    assert routes(h) == ["primary"]

    h.request("retry", "r1")
    await h.wait_for(lambda: routes(h)[0] == "sluice-web-header", what="routes back on retry")
    h.request("promote-full", "p1")
    await h.wait_status(healthy, what="promoted")
    assert routes(h) == ["primary"]
