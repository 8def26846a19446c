"""The operator end to end: a real kopf operator over the emulator drives Rollouts through the
engine, and the cluster shows each step (Deployments, Service selectors, weights, status)."""

from __future__ import annotations

import logging
from typing import Any

import kubernetes
import pytest
from prometheus_client import generate_latest

from tests.support.kube import create_rollout, get_rollout, patch_rollout

from .conftest import OperatorHarness, canary, healthy

pytestmark = pytest.mark.integration


async def test_canary_without_router_walks_every_step(harness: OperatorHarness) -> None:
    h = harness
    create_rollout(h.api, canary())
    st = await h.wait_status(healthy, what="first revision Healthy")
    stable_slot, rev1 = st["stableSlot"], st["stableRevision"]
    dep = h.deployment(f"web-{stable_slot}")
    assert dep is not None and dep["spec"]["replicas"] == 4
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "web:1"
    assert h.selector("web") == {"app": "web", "sluice.dev/slot": stable_slot}

    # kopf's own state is Sluice's: its finalizer under sluice.dev, and no annotation of its own
    # (no diff-base is kept: rollouts.operator.NoDiffBase; progress annotations exist only while
    # the deletion handler runs)
    meta = get_rollout(h.api, "ns", "web")["metadata"]
    kopf_keys = [k for k in meta.get("annotations", {}) if "kopf" in k or "last-handled" in k]
    assert kopf_keys == [], kopf_keys
    assert get_rollout(h.api, "ns", "web")["metadata"]["finalizers"] == ["sluice.dev/finalizer"]

    h.auto_ready = False  # from here the test plays the Deployment controller by hand
    h.set_image("web:2")
    canary_slot = "b" if stable_slot == "a" else "a"
    st = await h.wait_status(
        lambda s: s.get("currentRevision") not in (None, rev1), what="new revision seen"
    )
    rev2 = st["currentRevision"]
    dep = await h.wait_for(lambda: h.deployment(f"web-{canary_slot}"), what="canary slot")
    assert dep["metadata"]["labels"]["sluice.dev/revision"] == rev2
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
    # the canary is not ready: the rollout waits at step 1 with no weight yet
    st = h.status()
    assert st["phase"] == "Progressing" and st["weights"]["canary"] == 0

    # step 1: setWeight 25 -> one of four pods on the canary once it is ready
    h.auto_ready = True
    st = await h.wait_status(lambda s: s["weights"]["canary"] == 25, what="weight 25")
    slots = {s["name"]: s for s in st["slots"]}
    assert slots[canary_slot]["replicas"] == 1 and slots[canary_slot]["role"] == "canary"
    # no router: both Services select both slots (the replica ratio splits traffic)
    assert "sluice.dev/slot" not in h.selector("web")
    # step 2 pauses 1s, step 3 sets 75, step 4 waits for a person
    st = await h.wait_status(
        lambda s: s.get("currentStepIndex") == 3 and s["phase"] == "Paused", what="manual pause"
    )
    assert st["weights"]["canary"] == 75
    assert h.deployment(f"web-{canary_slot}")["spec"]["replicas"] == 3

    h.request("promote", "1")
    st = await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] == rev2, what="promoted", timeout=15
    )
    assert st["stableSlot"] == canary_slot and st["weights"]["canary"] == 0
    assert st["lastRequest"] == "promote@1"
    assert h.selector("web") == {"app": "web", "sluice.dev/slot": canary_slot}
    await h.wait_for(
        lambda: h.deployment(f"web-{stable_slot}")["spec"]["replicas"] == 0, what="old slot down"
    )
    # the request annotation is consumed
    await h.wait_for(
        lambda: "sluice.dev/request" not in (h.rollout()["metadata"].get("annotations") or {}),
        what="request annotation removed",
    )
    conditions = {c["type"]: c["status"] for c in st["conditions"]}
    assert conditions["Ready"] == "True" and conditions["Stalled"] == "False"
    reasons = h.reasons()
    assert reasons, "the operator posts Events"
    # the controller's own metrics, as /metrics serves them
    metrics = generate_latest(h.telemetry.registry).decode()
    assert (
        'sluice_rollout_info{namespace="ns",phase="Healthy",rollout="web",router="none",'
        'strategy="canary"} 1.0'
    ) in metrics
    assert 'sluice_rollout_weight{namespace="ns",rollout="web"} 0.0' in metrics
    assert "sluice_rollout_phase_transitions_total{" in metrics
    assert 'to_phase="Paused"' in metrics
    assert "sluice_reconcile_duration_seconds_count" in metrics
    assert "sluice_reconcile_errors_total 0.0" in metrics


VIRTUAL_SERVICE: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1beta1",
    "kind": "VirtualService",
    "metadata": {"name": "web", "namespace": "ns"},
    "spec": {
        "hosts": ["web.example.com"],
        "http": [
            {
                "name": "api",
                "match": [{"uri": {"prefix": "/api"}}],
                "route": [{"destination": {"host": "api"}}],
            },
            {
                "name": "primary",
                "route": [
                    {"destination": {"host": "web"}, "weight": 100},
                    {"destination": {"host": "web-canary"}, "weight": 0},
                ],
            },
        ],
    },
}
ISTIO = {"istio": {"virtualService": {"name": "web", "routes": ["primary"]}}}


def create_virtual_service(h: OperatorHarness) -> None:
    custom = kubernetes.client.CustomObjectsApi(h.api)
    custom.create_namespaced_custom_object(
        "networking.istio.io", "v1beta1", "ns", "virtualservices", VIRTUAL_SERVICE
    )


def vs_weights(h: OperatorHarness) -> list[int]:
    custom = kubernetes.client.CustomObjectsApi(h.api)
    vs = custom.get_namespaced_custom_object(
        "networking.istio.io", "v1beta1", "ns", "virtualservices", "web"
    )
    assert vs["spec"]["http"][0] == VIRTUAL_SERVICE["spec"]["http"][0]  # the user's route stays
    return [r["weight"] for r in vs["spec"]["http"][1]["route"]]


AUTO_STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {"duration": "1s"}},
    {"setWeight": 75},
    {"pause": {"duration": "1s"}},
]


async def test_canary_with_istio_moves_weights_step_by_step(harness: OperatorHarness) -> None:
    h = harness
    create_virtual_service(h)
    create_rollout(h.api, canary(steps=AUTO_STEPS, router=ISTIO))
    st = await h.wait_status(healthy, what="first revision Healthy")
    stable_slot, rev1 = st["stableSlot"], st["stableRevision"]
    assert vs_weights(h) == [100, 0]
    h.set_image("web:2")
    canary_slot = "b" if stable_slot == "a" else "a"
    await h.wait_for(lambda: vs_weights(h) == [75, 25], what="weight 25 in the VirtualService")
    # status is written after the actions, once per reconcile
    st = await h.wait_status(lambda s: s["weights"]["canary"] == 25, what="status weight 25")
    assert st["currentStepIndex"] in (0, 1)
    assert h.selector("web") == {"app": "web", "sluice.dev/slot": stable_slot}
    assert h.selector("web-canary") == {"app": "web", "sluice.dev/slot": canary_slot}
    # with a router the canary slot runs what the weight needs, the stable keeps all replicas
    assert h.deployment(f"web-{stable_slot}")["spec"]["replicas"] == 4
    await h.wait_for(lambda: vs_weights(h) == [25, 75], what="weight 75 in the VirtualService")
    st = await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] not in (None, rev1), what="promoted"
    )
    assert st["stableSlot"] == canary_slot
    assert vs_weights(h) == [100, 0]  # all traffic on the stable Service, now the new slot
    assert h.selector("web") == {"app": "web", "sluice.dev/slot": canary_slot}


async def test_blue_green_switches_the_active_service(harness: OperatorHarness) -> None:
    h = harness
    doc = canary(blue_green={"scaleDownDelaySeconds": 0})
    create_rollout(h.api, doc)
    st = await h.wait_status(healthy, what="first revision Healthy")
    blue = st["stableSlot"]
    green = "b" if blue == "a" else "a"
    assert h.selector("web") == {"app": "web", "sluice.dev/slot": blue}
    h.auto_ready = False
    h.set_image("web:2")
    dep = await h.wait_for(lambda: h.deployment(f"web-{green}"), what="green slot")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
    await h.wait_for(
        lambda: h.selector("web-preview").get("sluice.dev/slot") == green, what="preview on green"
    )
    # not ready yet: production stays on blue
    assert h.selector("web") == {"app": "web", "sluice.dev/slot": blue}
    assert h.status()["phase"] == "Progressing"
    h.auto_ready = True
    st = await h.wait_status(
        lambda s: healthy(s) and s["stableSlot"] == green, what="active switched to green"
    )
    assert h.selector("web") == {"app": "web", "sluice.dev/slot": green}
    await h.wait_for(
        lambda: h.deployment(f"web-{blue}")["spec"]["replicas"] == 0, what="blue scaled down"
    )


async def test_invalid_rollout_stalls_and_others_still_progress(
    harness: OperatorHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    caplog.set_level(logging.WARNING, logger="sluice.operator")
    bad = canary(name="shop", steps=[{"setWeight": 150}])
    create_rollout(h.api, bad)
    create_rollout(h.api, canary(steps=AUTO_STEPS))
    st = await h.wait_status(
        lambda s: s.get("phase") == "Degraded", name="shop", what="shop stalled"
    )
    stalled = {c["type"]: c for c in st["conditions"]}["Stalled"]
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    assert "spec.strategy.canary.steps[0].setWeight" in stalled["message"]
    assert h.deployment("shop-a") is None and h.deployment("shop-b") is None
    assert "InvalidSpec" in h.reasons("shop")
    # the valid one is served all along
    st = await h.wait_status(healthy, what="web Healthy")
    rev1 = st["stableRevision"]
    h.set_image("web:2")
    await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] not in (None, rev1), what="web promoted"
    )
    # reconciled many times meanwhile, but the same problem is logged once, not on every tick
    invalid_logs = [r for r in caplog.records if "ns/shop is invalid" in r.getMessage()]
    assert len(invalid_logs) == 1, [r.getMessage() for r in invalid_logs]
    # fixing the spec un-stalls it
    patch_rollout(
        h.api, "ns", "shop", {"spec": {"strategy": {"canary": {"steps": [{"setWeight": 50}]}}}}
    )
    await h.wait_status(healthy, name="shop", what="shop Healthy after the fix")


async def test_restart_mid_rollout_resumes_from_status(harness: OperatorHarness) -> None:
    h = harness
    create_rollout(h.api, canary())
    st = await h.wait_status(healthy, what="first revision Healthy")
    rev1, stable_slot = st["stableRevision"], st["stableSlot"]
    h.set_image("web:2")
    st = await h.wait_status(
        lambda s: s.get("currentStepIndex") == 3 and s["phase"] == "Paused", what="manual pause"
    )
    before = (st["currentRevision"], st["weights"]["canary"], st["rolloutStartedAt"])
    await h.restart()
    await h.reconciles(3)  # the new operator reconciles several times, from status
    st = h.status()
    assert (st["currentRevision"], st["weights"]["canary"], st["rolloutStartedAt"]) == before
    assert st["currentStepIndex"] == 3 and st["phase"] == "Paused"
    h.request("promote", "after-restart")
    st = await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] == before[0], what="promoted after restart"
    )
    assert st["stableRevision"] != rev1 and st["stableSlot"] != stable_slot
    assert [e["outcome"] for e in st["history"]][-1:] == ["Promoted"]


async def test_delete_restores_routing_and_keeps_the_stable_deployment(
    harness: OperatorHarness,
) -> None:
    h = harness
    create_virtual_service(h)
    create_rollout(h.api, canary(router=ISTIO))
    st = await h.wait_status(healthy, what="first revision Healthy")
    stable_slot = st["stableSlot"]
    canary_slot = "b" if stable_slot == "a" else "a"
    h.set_image("web:2")
    await h.wait_status(
        lambda s: s.get("currentStepIndex") == 3 and s["phase"] == "Paused", what="manual pause"
    )
    assert vs_weights(h) == [25, 75]
    custom = kubernetes.client.CustomObjectsApi(h.api)
    custom.delete_namespaced_custom_object("sluice.dev", "v1alpha1", "ns", "rollouts", "web")
    await h.wait_for(lambda: "web" not in h.rollout_names(), what="Rollout gone")
    assert vs_weights(h) == [100, 0]
    stable = h.deployment(f"web-{stable_slot}")
    assert stable is not None and stable["spec"]["replicas"] == 4
    assert not stable["metadata"].get("ownerReferences")  # garbage collection spares it
    assert h.deployment(f"web-{canary_slot}") is None
    assert h.selector("web") == {"app": "web", "sluice.dev/slot": stable_slot}
    assert h.selector("web-canary") == {"app": "web", "sluice.dev/slot": stable_slot}
