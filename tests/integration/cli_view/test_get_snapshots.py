"""``sluice get rollout`` against the real operator: each scenario is driven to a resting point
(a pause, an abort) and the plain text the CLI prints is compared with a snapshot.

The CLI runs through click's ``CliRunner`` (stdout is not a terminal there, so the output is the
plain text). It blocks the test's event loop, and with it the operator, while it reads; every
scenario therefore waits first until the operator has nothing left to do (``settled``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result

from rollouts.cli.main import cli
from tests.integration.operator.conftest import OperatorHarness, canary, healthy
from tests.support.kube import create_rollout, list_json

pytestmark = pytest.mark.integration

Snapshot = Callable[[str, str], None]


def get(name: str = "web") -> Result:
    return CliRunner().invoke(cli, ["get", "rollout", name, "-n", "ns"])


async def settled(h: OperatorHarness, quiet: float = 0.6) -> None:
    """Wait until the slot Deployments are ready and nothing (status, Deployments, events)
    has changed for ``quiet`` seconds: the operator is resting, so the view is reproducible."""

    def fingerprint() -> tuple[Any, ...]:
        deps = [
            d
            for d in list_json(h.api, "/apis/apps/v1/namespaces/ns/deployments")
            if (d["metadata"].get("labels") or {}).get("sluice.dev/rollout") == "web"
        ]
        ready = all(
            (d.get("status") or {}).get("readyReplicas", 0) == d["spec"]["replicas"] for d in deps
        )
        return (
            ready,
            h.rollout()["metadata"]["resourceVersion"],
            tuple(sorted(d["metadata"]["resourceVersion"] for d in deps)),
            len(h.events()),
        )

    last, since = fingerprint(), asyncio.get_running_loop().time()
    deadline = since + 10
    while True:
        await asyncio.sleep(0.1)
        now = fingerprint()
        t = asyncio.get_running_loop().time()
        if now != last:
            last, since = now, t
        elif now[0] and t - since >= quiet:
            return
        assert t < deadline, f"the operator did not settle: {now}"


async def rolling_out(h: OperatorHarness, doc: dict[str, Any]) -> None:
    create_rollout(h.api, doc)
    await h.wait_status(healthy, what="first revision Healthy")
    h.set_image("web:2")


async def test_canary_paused_at_a_step(harness: OperatorHarness, snapshot: Snapshot) -> None:
    h = harness
    await rolling_out(h, canary())
    await h.wait_status(
        lambda s: s.get("currentStepIndex") == 3 and s["phase"] == "Paused", what="manual pause"
    )
    await settled(h)
    result = get()
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Paused: paused at a pause step" in out
    assert "▶  4.  pause" in out  # the marker sits on the current step
    assert "75% on the canary" in out
    snapshot("canary_paused_step", out)


async def test_blue_green_waits_in_preview(harness: OperatorHarness, snapshot: Snapshot) -> None:
    h = harness
    await rolling_out(h, canary(blue_green={"autoPromotionEnabled": False}))
    await h.wait_status(lambda s: s.get("phase") == "Paused", what="preview pause")
    await settled(h)
    result = get()
    assert result.exit_code == 0, result.output
    out = result.output
    assert "(blue-green)" in out and "Weight:" not in out
    assert "preview slot" in out and "BlueGreenPause" in out
    snapshot("blue_green_preview", out)


async def test_aborted_canary(harness: OperatorHarness, snapshot: Snapshot) -> None:
    h = harness
    await rolling_out(h, canary(steps=[{"setWeight": 25}, {"pause": {}}]))
    await h.wait_status(
        lambda s: s.get("currentStepIndex") == 1 and s["phase"] == "Paused", what="at the pause"
    )
    h.request("abort", "a1")
    await h.wait_status(
        lambda s: s.get("abort") is not None and s["weights"]["canary"] == 0, what="aborted"
    )
    await settled(h)
    result = get()
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Degraded" in out and "Aborted:" in out
    assert "✗  2.  pause" in out and "aborted here" in out
    snapshot("aborted_canary", out)


async def test_canary_paused_by_a_person(harness: OperatorHarness, snapshot: Snapshot) -> None:
    h = harness
    await rolling_out(h, canary(steps=[{"setWeight": 25}, {"pause": {"duration": "1h"}}]))
    await h.wait_status(
        lambda s: s.get("currentStepIndex") == 1 and s["phase"] == "Paused", what="timed pause"
    )
    h.request("pause", "p1")
    await h.wait_status(
        lambda s: any(p["reason"] == "PausedByUser" for p in s.get("pauseConditions") or []),
        what="paused by the user",
    )
    await settled(h)
    result = get()
    assert result.exit_code == 0, result.output
    out = result.output
    assert "PausedByUser" in out and "waits for a person" in out
    snapshot("canary_paused_by_user", out)
