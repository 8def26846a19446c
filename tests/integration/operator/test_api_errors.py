"""API errors on the way out (409 conflicts, 500s, timeouts) are retried and leave status whole.

The emulator injects the failures (``RunningEmulator.inject``: a status code, or a slow answer
that outlasts the client's timeout). The checks are on outcomes, not on retry counts: the rollout
still reaches the state it would have reached, every status ever observed parses as the
Rollout status model, and no progress is lost or repeated (the step index never goes back, the
weights only ever take values the steps name).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rollouts.api.rollout import RolloutStatus
from rollouts.settings import Settings
from tests.support.kube import create_rollout, list_json
from tests.support.rollouts import rollout_doc

from .conftest import OperatorHarness

pytestmark = pytest.mark.integration

STEPS: list[dict[str, Any]] = [{"setWeight": 25}, {"pause": {"duration": "1s"}}, {"setWeight": 50}]


@pytest.fixture()
def operator_settings(operator_settings: Settings) -> Settings:
    """A client timeout short enough that an injected slow answer becomes a timeout."""
    return dataclasses.replace(operator_settings, request_timeout=1.0)


def doc(steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    d = rollout_doc(steps=STEPS if steps is None else steps, replicas=4)
    c = d["spec"]["strategy"]["canary"]
    c["scaleDownDelaySeconds"] = 0
    c["abortScaleDownDelaySeconds"] = 0
    return d


def healthy(st: dict[str, Any]) -> bool:
    return st.get("phase") == "Healthy" and st.get("currentRevision") == st.get("stableRevision")


@contextlib.asynccontextmanager
async def watching(h: OperatorHarness) -> AsyncIterator[list[dict[str, Any]]]:
    """Every distinct status the Rollout shows while the block runs."""
    seen: list[dict[str, Any]] = []

    async def loop() -> None:
        while True:
            with contextlib.suppress(Exception):
                st = h.status()
                if st and (not seen or seen[-1] != st):
                    seen.append(st)
            await asyncio.sleep(0.01)

    task = asyncio.create_task(loop())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def assert_whole(statuses: list[dict[str, Any]], revision: str | None = None) -> None:
    """Every observed status is a valid one, and the rollout of ``revision`` only moved forward."""
    assert statuses
    last_step = -1
    for st in statuses:
        parsed = RolloutStatus.model_validate(st)  # nothing of the wrong shape...
        assert parsed.phase is not None and parsed.observed_generation is not None, st
        types = [c.type for c in parsed.conditions]  # ...or half-written
        assert {"Ready", "Reconciling", "Stalled"} <= set(types), st
        assert len(types) == len(set(types)), st
        assert parsed.weights.canary in (0, 25, 50, 100), st
        assert parsed.weights.canary + parsed.weights.stable == 100, st
        if revision is not None and st.get("currentRevision") == revision:
            step = st.get("currentStepIndex")
            if step is not None and st.get("stableRevision") != revision:
                assert step >= last_step, statuses
                last_step = step


async def rollout_of_web2(h: OperatorHarness) -> tuple[str, dict[str, Any]]:
    create_rollout(h.api, doc())
    st = await h.wait_status(healthy, what="first revision Healthy", timeout=15)
    h.set_image("web:2")
    return st["stableRevision"], st


async def test_status_write_conflicts_are_retried(harness: OperatorHarness) -> None:
    h = harness
    rev1, _ = await rollout_of_web2(h)
    fault = h.emulator.inject(
        method="PATCH", plural="rollouts", subresource="status", status=409, times=4
    )
    async with watching(h) as seen:
        st = await h.wait_status(
            lambda s: healthy(s) and s["stableRevision"] != rev1, what="web:2 promoted", timeout=20
        )
    assert fault.hits == 4, "the injected conflicts were never met"
    assert_whole(seen, st["stableRevision"])
    assert st["observedGeneration"] == h.rollout()["metadata"]["generation"]
    assert h.selector("web")["sluice.dev/slot"] == st["stableSlot"]


async def test_server_errors_on_slot_writes_are_retried(harness: OperatorHarness) -> None:
    h = harness
    rev1, first = await rollout_of_web2(h)
    created = h.emulator.inject(method="POST", plural="deployments", status=500, times=2)
    scaled = h.emulator.inject(method="PATCH", plural="deployments", status=500, times=3)
    async with watching(h) as seen:
        st = await h.wait_status(
            lambda s: healthy(s) and s["stableRevision"] != rev1, what="web:2 promoted", timeout=20
        )
    assert created.hits == 2 and scaled.hits == 3
    assert_whole(seen, st["stableRevision"])
    # one Deployment per slot, no duplicates from a retried create
    deployments = list_json(h.api, f"/apis/apps/v1/namespaces/{h.namespace}/deployments")
    names = [
        d["metadata"]["name"]
        for d in deployments
        if (d["metadata"].get("labels") or {}).get("sluice.dev/rollout") == "web"
    ]
    assert sorted(names) == ["web-a", "web-b"]
    new = h.deployment(f"web-{st['stableSlot']}")
    assert new is not None and new["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
    assert new["spec"]["replicas"] == 4
    assert st["stableSlot"] != first["stableSlot"]


async def test_timeouts_on_service_and_status_writes_are_retried(harness: OperatorHarness) -> None:
    h = harness
    rev1, _ = await rollout_of_web2(h)
    # slower than the operator's 1 s client timeout; each request is then served late, so a
    # retried write lands twice: the writes must be idempotent
    slow_status = h.emulator.inject(
        method="PATCH", plural="rollouts", subresource="status", status=None, delay=1.5, times=2
    )
    slow_service = h.emulator.inject(
        method="PATCH", plural="services", status=None, delay=1.5, times=1
    )
    async with watching(h) as seen:
        st = await h.wait_status(
            lambda s: healthy(s) and s["stableRevision"] != rev1, what="web:2 promoted", timeout=30
        )
    assert slow_status.hits == 2 and slow_service.hits == 1
    assert_whole(seen, st["stableRevision"])
    assert h.selector("web") == {"app": "web", "sluice.dev/slot": st["stableSlot"]}
    await asyncio.sleep(1.0)  # the late writes have landed by now; the outcome still stands
    after = h.status()
    assert healthy(after) and after["stableRevision"] == st["stableRevision"]


async def test_errors_while_consuming_a_request_do_not_lose_or_repeat_it(
    harness: OperatorHarness,
) -> None:
    h = harness
    create_rollout(h.api, doc([{"setWeight": 25}, {"pause": {}}]))
    await h.wait_status(healthy, what="first revision Healthy", timeout=15)
    h.set_image("web:2")
    await h.wait_status(lambda s: s.get("phase") == "Paused", what="paused at 25%")
    h.request("promote", "once")
    # the operator's next writes of the main resource (kopf's bookkeeping, the annotation's
    # removal) fail twice: the request must still be acted on exactly once
    removal = h.emulator.inject(
        method="PATCH", plural="rollouts", subresource="", status=500, times=2
    )
    st = await h.wait_status(healthy, what="promoted", timeout=20)
    await h.wait_for(
        lambda: "sluice.dev/request" not in (h.rollout()["metadata"].get("annotations") or {}),
        what="request annotation removed",
        timeout=15,
    )
    assert removal.hits == 2
    assert st["lastRequest"] == "promote@once"
    promotions = [e for e in st.get("history", []) if e["outcome"] == "Promoted"]
    assert [e["revision"] for e in promotions].count(st["stableRevision"]) == 1, st["history"]
