"""``sluice status`` against the real operator: each exit code from a rollout that really got there."""

from __future__ import annotations

from typing import Any

import pytest

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
