"""``sluice status`` against the real operator: each exit code from a rollout that really got there."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from rollouts.cli import kube
from tests.integration.operator.conftest import OperatorHarness, canary, healthy
from tests.support.kube import create_rollout

from .conftest import sluice_in_thread

pytestmark = pytest.mark.integration

TO_THE_END: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {"duration": "1s"}},
    {"setWeight": 75},
]


async def first_revision(h: OperatorHarness, steps: list[dict[str, Any]]) -> str:
    create_rollout(h.api, canary(steps=steps))
    st = await h.wait_status(healthy, what="first revision Healthy")
    return str(st["stableRevision"])


@pytest.mark.parametrize(
    "how", ["watch", "poll", "watch forbidden"], ids=["watch", "poll", "watch-forbidden"]
)
async def test_exit_0_once_the_new_revision_is_stable_not_on_the_old_healthy(
    harness: OperatorHarness, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    rev1 = await first_revision(h, TO_THE_END)
    # another Rollout of the namespace, Healthy at once: the watch sees it too (the emulator
    # ignores field selectors); status must not take its Healthy for web's
    create_rollout(h.api, canary("shop", steps=TO_THE_END))
    options = {"watch": [], "poll": ["--poll", "--interval", "0.1"]}.get(how, ["--interval", "0.1"])
    if how == "watch forbidden":  # RBAC grants get but not watch: status falls back to polling

        def forbidden(*_: Any, **__: Any) -> Any:
            raise ApiException(status=403, reason="Forbidden")

        monkeypatch.setattr(kube, "_watch", forbidden)
    # the controller is down when the new spec lands: the status still says Healthy, about rev1
    await h.stop()
    h.set_image("web:2")
    waiting = asyncio.create_task(
        sluice_in_thread("status", "web", "-n", "ns", "--timeout", "20s", *options)
    )
    await asyncio.sleep(0.5)  # it has looked by now, and seen only the stale status
    await h.start()
    result = await waiting

    assert result.exit_code == 0, result.output
    st = h.status()
    assert healthy(st) and st["stableRevision"] != rev1  # it waited for the new revision
    lines = result.output.splitlines()
    # the stale Healthy is not shown as if it were progress; what status waits for is
    assert lines[0].endswith("rollout ns/web: waiting for the controller to observe generation 2")
    assert lines[-1] == f"rollout ns/web is Healthy: revision {st['stableRevision']} is stable"
    # one line per change, the rollout's way through its steps visible in the log
    assert any("Progressing" in line and "canary  25%" in line for line in lines), lines
    assert any("canary  75%" in line for line in lines), lines
    assert len(lines) == len(set(line[8:] for line in lines)), "a line repeated unchanged"


async def test_exit_1_for_an_aborted_rollout_with_the_abort_message(
    harness: OperatorHarness,
) -> None:
    h = harness
    await first_revision(h, [{"setWeight": 25}, {"pause": {}}])
    h.set_image("web:2")
    await h.wait_status(lambda s: s.get("phase") == "Paused", what="paused")
    h.request("abort", "t1")
    result = await sluice_in_thread("status", "web", "-n", "ns", "--timeout", "10s")
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1].startswith("rollout ns/web is Degraded: aborted: ")


async def test_exit_1_for_a_spec_that_no_longer_validates(harness: OperatorHarness) -> None:
    h = harness
    await first_revision(h, TO_THE_END)
    h.set_image("web:2")  # a new generation ...
    from tests.support.kube import patch_rollout

    patch_rollout(h.api, "ns", "web", {"spec": {"strategy": {"canary": {"steps": [{}]}}}})
    result = await sluice_in_thread("status", "web", "-n", "ns", "--timeout", "10s")
    assert result.exit_code == 1, result.output
    assert "is Degraded: invalid spec: spec.strategy.canary.steps[0]" in result.output


async def test_exit_2_at_a_pause_only_a_person_ends(harness: OperatorHarness) -> None:
    h = harness
    await first_revision(h, [{"setWeight": 25}, {"pause": {"duration": "1s"}}, {"pause": {}}])
    h.set_image("web:2")
    result = await sluice_in_thread("status", "web", "-n", "ns", "--timeout", "10s")
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (
        "rollout ns/web is paused, waiting for a person: promote, resume or abort "
        "(paused at a pause step)"
    )
    st = h.status()
    assert st["currentStepIndex"] == 2  # it went past the timed pause, stopped at the open one


async def test_exit_3_on_timeout_saying_where_it_stood(harness: OperatorHarness) -> None:
    h = harness
    await first_revision(h, [{"setWeight": 25}, {"pause": {"duration": "1h"}}])
    h.set_image("web:2")
    await h.wait_status(lambda s: s.get("phase") == "Paused", what="at the timed pause")

    result = await sluice_in_thread("status", "web", "-n", "ns", "--timeout", "1s")
    assert result.exit_code == 3, result.output
    assert result.output.splitlines()[-1] == (
        "timed out after 1s: rollout ns/web is Paused: paused at a pause step"
    )

    once = await sluice_in_thread("status", "web", "-n", "ns", "--timeout", "0")
    assert once.exit_code == 3
    assert once.output.splitlines()[-1] == (
        "not settled yet: rollout ns/web is Paused: paused at a pause step"
    )


async def test_a_rollout_that_is_already_healthy_exits_0_at_once(harness: OperatorHarness) -> None:
    h = harness
    await first_revision(h, TO_THE_END)
    result = await sluice_in_thread("status", "web", "-n", "ns", "--timeout", "0")
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 2  # the state, then the verdict
