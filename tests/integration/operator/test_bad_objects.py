"""Every bad object gets a status (issue 13, item 5), under the real kopf operator.

Rollouts the fuzzing found never got any status: one naming a TrafficSplit that does not exist,
one whose ``spec.template.metadata`` is a string (the validator raised AttributeError), and pod
templates the ``kubernetes`` client's models refuse before sending (a container without a name,
now named by the validator; a port that is not a number, caught where the client refuses it). Beside them a healthy
Rollout must progress as if they were not there; each bad one ends Stalled naming the field or
object, and is retried with backoff, not every tick.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.kube import create_rollout, create_service

from .conftest import OperatorHarness, canary, healthy

pytestmark = pytest.mark.integration

STEPS: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]


def stalled(h: OperatorHarness, name: str) -> dict[str, Any] | None:
    st = h.status(name)
    cond = {c["type"]: c for c in st.get("conditions") or []}.get("Stalled")
    return cond if cond and cond["status"] == "True" else None


def bad_rollouts(h: OperatorHarness) -> dict[str, str]:
    """Creates the bad Rollouts; returns each one's name → what its Stalled message must name."""
    docs: dict[str, tuple[dict[str, Any], str]] = {}

    split = canary("split", STEPS, router={"smi": {"trafficSplitName": "absent"}})
    docs["split"] = (split, "TrafficSplit")

    meta = canary("meta", STEPS)
    meta["spec"]["template"]["metadata"] = "app=meta"
    docs["meta"] = (meta, "spec.template.metadata")

    noname = canary("noname", STEPS)
    del noname["spec"]["template"]["spec"]["containers"][0]["name"]
    docs["noname"] = (noname, "spec.template.spec.containers[0].name")

    port = canary("port", STEPS)
    port["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": "eighty"}]
    docs["port"] = (port, "spec.template.spec.containers[0].ports[0].containerPort")

    for name, (doc, _) in docs.items():
        create_service(h.api, h.namespace, name, {"app": name})
        create_service(h.api, h.namespace, f"{name}-canary", {"app": name})
        doc["metadata"]["namespace"] = h.namespace
        create_rollout(h.api, doc)
    return {name: field for name, (_, field) in docs.items()}


async def test_bad_rollouts_are_stalled_naming_the_field_and_neighbours_progress(
    harness: OperatorHarness,
) -> None:
    h = harness
    expected = bad_rollouts(h)
    doc = canary("web", STEPS)
    doc["metadata"]["namespace"] = h.namespace
    create_rollout(h.api, doc)

    st = await h.wait_status(healthy, timeout=15, what="web first revision Healthy")
    rev1 = st["stableRevision"]
    h.set_image("web:2")
    st = await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] != rev1, timeout=20, what="web promoted"
    )

    for name, field in expected.items():
        cond = await h.wait_for(
            lambda name=name: stalled(h, name), timeout=15, what=f"{name} Stalled"
        )
        assert field in cond["message"], (name, cond)
        assert h.status(name)["phase"] == "Degraded", name
    # retried (with backoff; each retry reads from the operator's watch cache), and a retry
    # that finds the same problems writes nothing: no status PATCH, no second Event
    calls = h.emulator.emulator.calls
    calls.clear()
    await asyncio.sleep(2.0)  # several retries' worth (0.2 s, then twice as long each time)
    writes = [str(c) for c in list(calls) if c.method != "GET" and c.name in expected]
    assert writes == [], writes
