"""``sluice promote | abort | retry | pause | resume`` land as the operator expects.

Each operation must reach the running operator through the annotation alone: the operator acts
(the rollout moves), records the exact value in ``status.lastRequest`` and removes the annotation,
while the spec (``generation``) and every other annotation stay as they were.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from click.testing import Result

from tests.integration.operator.conftest import OperatorHarness, canary, healthy
from tests.support.kube import create_rollout, patch_rollout

from .conftest import sluice, sluice_in_thread

pytestmark = pytest.mark.integration

ANNOTATION = "sluice.dev/request"
TWO_PAUSES: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {}},
    {"setWeight": 50},
    {"pause": {}},
]


async def at_first_pause(h: OperatorHarness, steps: list[dict[str, Any]] = TWO_PAUSES) -> int:
    """Roll out web:2 up to its first pause, with an annotation of the user's own on the Rollout;
    the Rollout's generation then."""
    create_rollout(h.api, canary(steps=steps))
    await h.wait_status(healthy, what="first revision Healthy")
    patch_rollout(h.api, "ns", "web", {"metadata": {"annotations": {"team": "payments"}}})
    h.set_image("web:2")
    await h.wait_status(lambda s: s.get("phase") == "Paused", what="first pause")
    return int(h.rollout()["metadata"]["generation"])


def sent(result: Result, kind: str) -> str:
    """The request value the command says it wrote."""
    m = re.search(
        rf"^{kind} requested for rollout ns/web \({ANNOTATION}=({kind}@cli-\d{{8}}T\d{{6}}Z-[0-9a-f]{{4}})\)$",
        result.output,
        re.MULTILINE,
    )
    assert m, result.output
    return m.group(1)


async def landed(h: OperatorHarness, value: str, generation: int) -> dict[str, Any]:
    """The operator acted on ``value`` and cleared it; nothing else of the Rollout was touched."""
    st = h.status()
    assert st.get("lastRequest") == value  # --wait returned only once it was so
    await h.wait_for(
        lambda: ANNOTATION not in (h.rollout()["metadata"].get("annotations") or {}),
        what="request annotation removed",
    )
    meta = h.rollout()["metadata"]
    assert meta["annotations"]["team"] == "payments"
    assert meta["generation"] == generation  # never the spec
    return st


async def test_promote_goes_on_to_the_next_pause(harness: OperatorHarness) -> None:
    h = harness
    generation = await at_first_pause(h)
    assert h.status()["currentStepIndex"] == 1

    result = await sluice_in_thread("promote", "web", "-n", "ns")
    assert result.exit_code == 0, result.output
    value = sent(result, "promote")
    await landed(h, value, generation)
    # --wait reported what the controller did with it
    assert result.output.splitlines()[-1].startswith("rollout ns/web is ")
    st = await h.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("currentStepIndex") == 3,
        what="at the second pause",
    )
    assert st["weights"]["canary"] == 50


async def test_promote_full_skips_the_remaining_steps(harness: OperatorHarness) -> None:
    h = harness
    generation = await at_first_pause(h)
    new = h.status()["currentRevision"]

    result = await sluice_in_thread("promote", "web", "--full", "-n", "ns")
    assert result.exit_code == 0, result.output
    await landed(h, sent(result, "promote-full"), generation)
    st = await h.wait_status(healthy, what="promoted")
    assert st["stableRevision"] == new


async def test_abort_then_retry(harness: OperatorHarness) -> None:
    h = harness
    generation = await at_first_pause(h)

    aborted = await sluice_in_thread("abort", "web", "-n", "ns")
    assert aborted.exit_code == 0, aborted.output
    st = await landed(h, sent(aborted, "abort"), generation)
    assert st["phase"] == "Degraded" and st["abort"]["reason"] == "AbortedByUser"
    assert aborted.output.splitlines()[-1].startswith("rollout ns/web is Degraded")

    retried = await sluice_in_thread("retry", "web", "-n", "ns")
    assert retried.exit_code == 0, retried.output
    await landed(h, sent(retried, "retry"), generation)
    st = await h.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("abort") is None, what="retried"
    )
    assert st["currentStepIndex"] == 1 and st["weights"]["canary"] == 25


async def test_pause_holds_a_timed_pause_and_resume_lets_it_end(harness: OperatorHarness) -> None:
    h = harness
    generation = await at_first_pause(h, [{"setWeight": 25}, {"pause": {"duration": "1h"}}])

    paused = await sluice_in_thread("pause", "web", "-n", "ns")
    assert paused.exit_code == 0, paused.output
    st = await landed(h, sent(paused, "pause"), generation)
    assert "PausedByUser" in [p["reason"] for p in st["pauseConditions"]]
    # now only a person can end it, and status says so
    assert (await sluice_in_thread("status", "web", "-n", "ns", "--timeout", "0")).exit_code == 2

    resumed = await sluice_in_thread("resume", "web", "-n", "ns")
    assert resumed.exit_code == 0, resumed.output
    st = await landed(h, sent(resumed, "resume"), generation)
    assert "PausedByUser" not in [p["reason"] for p in st["pauseConditions"]]
    assert (await sluice_in_thread("status", "web", "-n", "ns", "--timeout", "0")).exit_code == 3


async def test_no_wait_returns_at_once_and_the_request_is_handled_later(
    harness: OperatorHarness,
) -> None:
    h = harness
    generation = await at_first_pause(h)
    await h.stop()  # nobody to act yet: --no-wait must not care
    result = sluice("promote", "web", "-n", "ns", "--no-wait")
    assert result.exit_code == 0, result.output
    value = sent(result, "promote")
    assert len(result.output.splitlines()) == 1
    assert h.rollout()["metadata"]["annotations"][ANNOTATION] == value
    await h.start()
    await h.wait_status(lambda s: s.get("lastRequest") == value, what="handled after restart")
    await landed(h, value, generation)


async def test_wait_times_out_in_one_line_when_no_controller_acts(
    harness: OperatorHarness,
) -> None:
    h = harness
    await at_first_pause(h)
    await h.stop()
    first = sluice("pause", "web", "-n", "ns", "--no-wait")
    result = await sluice_in_thread("abort", "web", "-n", "ns", "--timeout", "1s")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    # the earlier request was still pending: the user hears it is replaced
    assert f"warning: replacing {ANNOTATION}={sent(first, 'pause')}" in lines[0]
    value = sent(result, "abort")
    assert lines[-1].startswith("Error: abort for rollout ns/web: the controller has not acted")
    assert "is sluice running?" in lines[-1]
    assert h.rollout()["metadata"]["annotations"][ANNOTATION] == value  # left for the controller


async def test_an_ignored_request_says_why(harness: OperatorHarness) -> None:
    h = harness
    create_rollout(h.api, canary(steps=TWO_PAUSES))
    await h.wait_status(healthy, what="Healthy")
    result = await sluice_in_thread("retry", "web", "-n", "ns")
    assert result.exit_code == 0, result.output
    value = sent(result, "retry")
    assert f"ignored by the controller: retry {value}: nothing aborted to retry" in result.output
    await asyncio.sleep(0)  # nothing else to wait for: the rollout stays as it was
    assert healthy(h.status())
