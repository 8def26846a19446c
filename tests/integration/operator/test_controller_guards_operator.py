"""The controller's guards in production (issue 12, items 1 and 2): the real operator over the
emulator, judging from a real Prometheus, gives its AnalysisRuns the canary's pod count (pods as
the sampling unit) and the asked canary weight, and the run loop feeds every window's request
totals to the sample-ratio guard.

Gross loss (the canary reports 1% of the requests at 25% weight: a crash-looping pod or a broken
scrape would look like this) pauses the rollout with the guard's threshold in the message. Mesh
imprecision (the canary gets 20% of the requests at 25% weight, with the same error rate as the
baseline) promotes. Traffic is far from any decision boundary (tens of thousands of requests a
1 s window), so both outcomes are certain, not lucky.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.kube import create_rollout

from .conftest import OperatorHarness
from .conftest_analysis import (
    Arm,
    TrafficTimeline,
    operator_settings,
    prometheus,
    timeline,
)
from .test_analysis_operator import (
    ISTIO,
    VIRTUAL_SERVICE,
    analysis_runs,
    analysis_step,
    create_template,
    custom,
    error_rate_metric,
    healthy,
    new_revision,
    rollout,
    template,
    vs_weights,
)

__all__ = ["operator_settings", "prometheus", "timeline"]  # fixtures, used by name

pytestmark = pytest.mark.integration

TOTAL = 40_000.0  # requests per second over both arms


def start(
    h: OperatorHarness, timeline: TrafficTimeline, canary_share: float, *, routed: bool = True
) -> None:
    """A Rollout at 25% weight with a step analysis on errors (1% on both arms), the canary
    taking ``canary_share`` of the requests whatever its weight; ``routed``: through Istio, else
    by the replica ratio (3 replicas: at 25% one canary pod beside two stable ones)."""
    timeline.push(
        [
            Arm("web-canary", TOTAL * canary_share, 0.01),
            Arm("web", TOTAL * (1 - canary_share), 0.01),
        ]
    )
    create_template(h, template("errors", [error_rate_metric(count=60)]))
    if routed:
        custom(h).create_namespaced_custom_object(
            "networking.istio.io", "v1beta1", "ns", "virtualservices", VIRTUAL_SERVICE
        )
    steps = [
        {"setWeight": 25},
        analysis_step("errors", args={"test-id": timeline.test_id}),
        {"setWeight": 75},
    ]
    doc = rollout("web", steps, router=ISTIO if routed else None)
    if not routed:
        doc["spec"]["replicas"] = 3
    create_rollout(h.api, doc)


def guard_state(h: OperatorHarness) -> dict[str, Any]:
    [run] = analysis_runs(h)
    state: dict[str, Any] = run["status"]["state"]["sampleRatio"]
    return state


async def test_gross_loss_pauses_the_rollout_with_the_guards_message(
    harness: OperatorHarness, timeline: TrafficTimeline
) -> None:
    h = harness
    start(h, timeline, 0.01)
    rev1, rev2 = await new_revision(h)
    st = await h.wait_status(
        lambda s: any(p["reason"] == "InconclusiveAnalysis" for p in s["pauseConditions"]),
        timeout=20,
        what="paused by the inconclusive analysis",
    )
    assert st["phase"] == "Paused" and st["stableRevision"] == rev1, st
    assert st["currentRevision"] == rev2 and st["weights"]["canary"] == 25
    assert vs_weights(h) == [75, 25]  # paused where it was: nothing promoted, nothing aborted
    [record] = st["analysisRuns"]
    assert record["phase"] == "Inconclusive" and record["kind"] == "step", record
    message = record["message"]
    # the policy's words: what was asked, what came, the threshold, and the guard's evidence
    assert message.startswith("sample-ratio mismatch: the canary received 1.00% of requests")
    assert "against 25.00% configured" in message and "below 0.5 of its share" in message
    assert "e-value" in message and ">= 1e+03" in message, message
    [run] = analysis_runs(h)
    assert run["status"]["phase"] == "Inconclusive" and run["status"]["message"] == message
    guard = guard_state(h)
    assert guard["mismatch"] is True and guard["alpha"] == 0.001
    assert guard["canary"] / guard["total"] == pytest.approx(0.01, rel=0.05)
    assert guard["expected"] / guard["total"] == pytest.approx(0.25)
    # the count test conditions on the requests each arm reported: it saw nothing wrong
    [summary] = record["metrics"]
    assert summary["evidence"]["outcome"] != "reject", summary
    # and the pause holds: later reconciles do not promote a run the guard stopped
    await h.reconciles(3)
    st = h.status()
    assert st["phase"] == "Paused" and st["stableRevision"] == rev1


async def test_a_canary_twenty_percent_below_its_weight_promotes(
    harness: OperatorHarness, timeline: TrafficTimeline
) -> None:
    h = harness
    start(h, timeline, 0.20)
    _, rev2 = await new_revision(h)

    def live_guard() -> bool:
        runs = analysis_runs(h)
        state = ((runs[0].get("status") or {}).get("state") or {}) if runs else {}
        return bool(state.get("sampleRatio", {}).get("total"))

    # the guard is fed (the controller passes the weight), and does not fire
    await h.wait_for(live_guard, timeout=20, what="the guard fed with the window's requests")
    st = await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] == rev2, timeout=20, what="promoted"
    )
    [record] = st["analysisRuns"]
    assert record["phase"] == "Successful", record
    assert "sample-ratio" not in record["message"]
    guard = guard_state(h)
    assert guard["mismatch"] is False
    assert guard["canary"] / guard["total"] == pytest.approx(0.20, rel=0.05)
    assert guard["expected"] / guard["total"] == pytest.approx(0.25)


async def test_without_a_mesh_the_share_comes_from_the_replica_ratio(
    harness: OperatorHarness, timeline: TrafficTimeline
) -> None:
    """No router: 25% of 3 replicas is one canary pod beside two stable ones, so the canary is
    asked a third of the requests (not the 25% weight); reporting 1% of them is gross loss and
    pauses."""
    h = harness
    start(h, timeline, 0.01, routed=False)
    rev1, _ = await new_revision(h)
    st = await h.wait_status(
        lambda s: any(p["reason"] == "InconclusiveAnalysis" for p in s["pauseConditions"]),
        timeout=20,
        what="paused by the inconclusive analysis",
    )
    assert st["phase"] == "Paused" and st["stableRevision"] == rev1, st
    roles = {s["role"]: s["replicas"] for s in st["slots"]}
    assert roles == {"canary": 1, "stable": 2}, st["slots"]
    assert st["weights"]["canary"] == 25  # the weight reported is the one asked
    [record] = st["analysisRuns"]
    assert record["phase"] == "Inconclusive", record
    assert "against 33.33% configured" in record["message"], record["message"]
    guard = guard_state(h)
    assert guard["mismatch"] is True
    assert guard["expected"] / guard["total"] == pytest.approx(1 / 3)


async def test_the_run_judges_with_the_canary_pod_count_of_the_rollout(
    harness: OperatorHarness, timeline: TrafficTimeline
) -> None:
    """Item 1 in production: a template with ``podModel: true`` and no ``canaryPods`` gets the
    canary's pod count from the Rollout (25% of 4 replicas: one pod), recorded in the run and
    shown in the evidence; the healthy canary still promotes."""
    h = harness
    timeline.push([Arm("web-canary", 50_000, 0.01), Arm("web", 50_000, 0.01)])
    metric = error_rate_metric(compare={"tolerance": 1.25, "podModel": True})
    create_template(h, template("errors", [metric]))
    steps = [
        {"setWeight": 25},
        analysis_step("errors", args={"test-id": timeline.test_id}),
        {"setWeight": 75},
    ]
    create_rollout(h.api, rollout("web", steps))
    _, rev2 = await new_revision(h)
    st = await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] == rev2, timeout=20, what="promoted"
    )
    [record] = st["analysisRuns"]
    assert record["phase"] == "Successful", record
    details = record["metrics"][0]["evidence"]["details"]
    assert details["canaryPods"] == 1 and details["widenedTolerance"] > 1.25, details
    [run] = analysis_runs(h)
    assert run["spec"]["metrics"][0]["compare"]["canaryPods"] == 1
