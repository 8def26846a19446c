"""A request annotation is acted on when it arrives, not at the Rollout's next timer reconcile.

kopf keeps its own state in annotations under ``sluice.dev/`` and leaves every annotation with that
prefix out of the diff its update handler sees, so ``sluice.dev/request`` never triggered a
reconcile: a request waited for the timer (up to ``max_requeue_seconds`` while paused, and
``idle_seconds`` when Healthy). Here both are ten minutes, so only the request's own watch event
can explain a reaction within seconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from rollouts.settings import Settings
from tests.support.kube import create_rollout

from .conftest import OperatorHarness, canary, fast_settings, healthy

pytestmark = pytest.mark.integration

SLOW_TIMER = 600.0


@pytest.fixture()
def operator_settings() -> Settings:
    return fast_settings(max_requeue_seconds=SLOW_TIMER, idle_seconds=SLOW_TIMER)


def slots_settled(h: OperatorHarness) -> bool:
    """At 50% of 4 replicas with no mesh, both slots end at 2 pods, ready, and the status says
    so: the last scale (the stable slot shrinking as the canary grew) is done and observed."""
    deps = [h.deployment("web-a"), h.deployment("web-b")]
    ready = all(
        d is not None
        and d["spec"]["replicas"] == 2
        and (d.get("status") or {}).get("readyReplicas") == 2
        and (d.get("status") or {}).get("observedGeneration") == d["metadata"].get("generation")
        for d in deps
    )
    slots = h.status().get("slots") or []
    return ready and [(s["replicas"], s["readyReplicas"]) for s in slots] == [(2, 2), (2, 2)]


def reconciles(h: OperatorHarness) -> float:
    return h.telemetry.registry.get_sample_value("sluice_reconcile_duration_seconds_count") or 0.0


async def quiet(h: OperatorHarness, seconds: float = 1.5, timeout: float = 30.0) -> None:
    """Wait until the operator has gone ``seconds`` without a reconcile.

    The watch delivers the last readiness events after the API already shows the slots settled,
    and each of them reconciles the Rollout; one landing just after the request would handle it
    and hide the bug this file is about. Under load this takes longer, never fails a correct
    controller: a quiet period that never comes only times out."""
    deadline = time.monotonic() + timeout
    last, since = reconciles(h), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now = reconciles(h)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
    raise AssertionError(f"the operator never went {seconds}s without a reconcile")


async def paused_for_a_person(h: OperatorHarness) -> dict[str, Any]:
    """Paused at 50% with the slots settled, and no more readiness changes to come: from here
    only the timer (ten minutes away) or a request's own event can start a reconcile."""
    create_rollout(h.api, canary(steps=[{"setWeight": 50}, {"pause": {}}]))
    await h.wait_status(healthy, what="first revision Healthy", timeout=30)
    h.set_image("web:2")
    st = await h.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("weights", {}).get("canary") == 50,
        what="paused for a person",
        timeout=30,
    )
    await h.wait_for(lambda: slots_settled(h), what="slots settled")
    h.auto_ready = False
    await quiet(h)
    return st


def annotations(h: OperatorHarness) -> dict[str, str]:
    return dict(h.rollout()["metadata"].get("annotations") or {})


async def test_promote_is_handled_on_arrival_while_the_timer_waits_ten_minutes(
    harness: OperatorHarness,
) -> None:
    h = harness
    paused = await paused_for_a_person(h)
    assert paused.get("lastRequest") is None
    h.request("promote", "on-arrival-1")
    st = await h.wait_status(
        lambda s: s.get("lastRequest") == "promote@on-arrival-1", what="promote handled"
    )
    assert st["phase"] != "Paused" or st.get("currentStepIndex") != paused.get("currentStepIndex")
    await h.wait_for(
        lambda: "sluice.dev/request" not in annotations(h), what="request annotation removed"
    )
    h.auto_ready = True  # the promotion scales the new slot up: play the Deployment controller
    final = await h.wait_status(healthy, what="promoted to Healthy")
    assert final["stableRevision"] == final["currentRevision"] != paused["stableRevision"]


async def test_abort_moves_traffic_to_stable_on_arrival(harness: OperatorHarness) -> None:
    h = harness
    await paused_for_a_person(h)
    h.request("abort", "on-arrival-2")
    st = await h.wait_status(
        lambda s: s.get("phase") == "Degraded" and s.get("lastRequest") == "abort@on-arrival-2",
        what="aborted",
    )
    assert st["abort"]["reason"] == "AbortedByUser"
    assert (st["weights"]["canary"], st["weights"]["stable"]) == (0, 100)


async def test_a_second_request_after_the_first_is_also_handled_on_arrival(
    harness: OperatorHarness,
) -> None:
    """The once-per-value guard must not swallow the next, different request."""
    h = harness
    await paused_for_a_person(h)
    h.request("pause", "on-arrival-3")
    await h.wait_status(lambda s: s.get("lastRequest") == "pause@on-arrival-3", what="pause")
    await h.wait_for(lambda: "sluice.dev/request" not in annotations(h), what="cleared")
    h.request("abort", "on-arrival-4")
    st = await h.wait_status(
        lambda s: s.get("lastRequest") == "abort@on-arrival-4", what="second request handled"
    )
    assert st["phase"] == "Degraded"
