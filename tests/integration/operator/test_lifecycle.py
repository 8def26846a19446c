"""The operator end to end: a real kopf operator over the emulator drives Rollouts through the
engine, and the cluster shows each step (Deployments, Service selectors, weights, status)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.kube import create_rollout
from tests.support.rollouts import rollout_doc

from .conftest import OperatorHarness

pytestmark = pytest.mark.integration

CANARY_STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {"duration": "1s"}},
    {"setWeight": 75},
    {"pause": {}},  # waits for a person
]


def canary(
    name: str = "web", steps: list[dict[str, Any]] | None = None, **kw: Any
) -> dict[str, Any]:
    doc = rollout_doc(steps=CANARY_STEPS if steps is None else steps, replicas=4, **kw)
    doc["metadata"]["name"] = name
    strategy = doc["spec"]["strategy"]
    if "canary" in strategy:
        c = strategy["canary"]
        c["stableService"], c["canaryService"] = name, f"{name}-canary"
        c["scaleDownDelaySeconds"] = 0
        c["abortScaleDownDelaySeconds"] = 0
    for key in ("selector",):
        doc["spec"][key] = {"matchLabels": {"app": name}}
    doc["spec"]["template"]["metadata"]["labels"] = {"app": name}
    return doc


def healthy(st: dict[str, Any]) -> bool:
    return st.get("phase") == "Healthy" and st.get("currentRevision") == st.get("stableRevision")


async def test_canary_without_router_walks_every_step(harness: OperatorHarness) -> None:
    h = harness
    create_rollout(h.api, canary())
    st = await h.wait_status(healthy, what="first revision Healthy")
    stable_slot, rev1 = st["stableSlot"], st["stableRevision"]
    dep = h.deployment(f"web-{stable_slot}")
    assert dep is not None and dep["spec"]["replicas"] == 4
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "web:1"
    assert h.selector("web") == {"app": "web", "sluice.dev/slot": stable_slot}

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
