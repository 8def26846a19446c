"""The Argo CD resource actions (``deploy/argocd/actions/``) against a running operator.

Argo CD runs an action on the live object and patches the difference back (a JSON merge patch of
what the Lua changed). This does the same: the Lua runs under lua5.4 on the Rollout read from the
emulator, the difference goes back as a merge patch, and the operator must act on it. Discovery
runs on the same live object, so the actions it offers are the ones the operator then honours.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.kube import create_rollout, patch_rollout
from tests.unit.deploy.test_argocd_actions import DISCOVERY, action, run_lua

from .conftest import OperatorHarness, canary, healthy

pytestmark = pytest.mark.integration


def same(v: Any) -> Any:
    """A value as a Lua table holds it: no null fields, and an empty list is an empty table."""
    if isinstance(v, dict):
        return {k: same(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [same(x) for x in v] or {}
    return v


def merge_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386: the merge patch turning ``before`` into ``after``, up to what a Lua table cannot
    tell apart (see ``same``)."""
    patch: dict[str, Any] = {}
    for key in before.keys() - after.keys():
        if before[key] is not None:
            patch[key] = None
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            sub = merge_diff(old, value)
            if sub:
                patch[key] = sub
        elif same(value) != same(old):
            patch[key] = value
    return patch


def offered(h: OperatorHarness) -> set[str]:
    found = run_lua(DISCOVERY, h.rollout())
    return {name for name, flags in found.items() if not flags["disabled"]}


def run_action(h: OperatorHarness, kind: str) -> str:
    """What Argo CD's "Run action" does; the request value written."""
    live = h.rollout()
    patch = merge_diff(live, run_lua(action(kind), live))
    assert list(patch) == ["metadata"] and list(patch["metadata"]) == ["annotations"], patch
    patch_rollout(h.api, h.namespace, "web", patch)
    return str(patch["metadata"]["annotations"]["sluice.dev/request"])


async def handled(h: OperatorHarness, value: str) -> dict[str, Any]:
    st = await h.wait_status(lambda s: s.get("lastRequest") == value, what=f"{value} handled")
    await h.wait_for(
        lambda: "sluice.dev/request" not in (h.rollout()["metadata"].get("annotations") or {}),
        what="request annotation removed",
    )
    return st


async def test_actions_drive_a_rollout_through_pause_resume_abort_retry_and_promote(
    harness: OperatorHarness,
) -> None:
    h = harness
    create_rollout(h.api, canary(steps=[{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}]))
    await h.wait_status(healthy, what="first revision Healthy")
    assert offered(h) == {"pause"}
    generation = h.rollout()["metadata"]["generation"]

    h.set_image("web:2")
    await h.wait_status(lambda s: s.get("phase") == "Paused", what="paused at the pause step")
    assert offered(h) == {"promote", "promote-full", "abort", "pause"}

    st = await handled(h, run_action(h, "pause"))
    assert any(p["reason"] == "PausedByUser" for p in st["pauseConditions"])
    assert offered(h) == {"promote", "promote-full", "abort", "resume"}
    st = await handled(h, run_action(h, "resume"))
    assert not any(p["reason"] == "PausedByUser" for p in st.get("pauseConditions", []))

    await handled(h, run_action(h, "abort"))
    st = await h.wait_status(lambda s: s.get("abort") is not None, what="aborted")
    assert st["abort"]["reason"] == "AbortedByUser"
    assert offered(h) == {"retry", "pause"}

    await handled(h, run_action(h, "retry"))
    st = await h.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("abort") is None, what="retried"
    )
    assert st["currentStepIndex"] == 1

    await handled(h, run_action(h, "promote"))
    await h.wait_status(healthy, what="promoted to Healthy")
    assert offered(h) == {"pause"}
    # only annotations were written: the spec Argo CD compares never changed but for the image
    assert h.rollout()["metadata"]["generation"] == generation + 1
