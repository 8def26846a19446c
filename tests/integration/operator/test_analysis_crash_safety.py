"""Crash-safe analysis (issue 13, item 4), with the real operator over the emulator.

An AnalysisRun is written in two requests (the object, then its status: the status subresource
drops ``status`` on create). When the second never lands, the run used to be found by name,
never repaired and skipped, and a failing canary stayed at its weight forever. Events report
status transitions, so a reconcile that failed before writing its status must not have posted
the Event of a transition the next reconcile decides again.
"""

from __future__ import annotations

import pytest

from tests.support.kube import create_rollout

from .conftest import OperatorHarness
from .conftest_analysis import Arm, TrafficTimeline, operator_settings, prometheus, timeline
from .test_analysis_operator import (
    ISTIO,
    VIRTUAL_SERVICE,
    analysis_runs,
    analysis_step,
    create_template,
    custom,
    error_rate_metric,
    new_revision,
    rollout,
    template,
    vs_weights,
)

__all__ = ["operator_settings", "prometheus", "timeline"]  # fixtures, used by name

pytestmark = pytest.mark.integration


def failing_canary(h: OperatorHarness, timeline: TrafficTimeline) -> None:
    """A Rollout whose step-2 analysis fails: half the canary's requests are errors."""
    timeline.push([Arm("web-canary", 200, 0.5), Arm("web", 200, 0.01)])
    create_template(h, template("errors", [error_rate_metric()]))
    custom(h).create_namespaced_custom_object(
        "networking.istio.io", "v1beta1", "ns", "virtualservices", VIRTUAL_SERVICE
    )
    steps = [
        {"setWeight": 25},
        analysis_step("errors", args={"test-id": timeline.test_id}),
        {"setWeight": 75},
    ]
    create_rollout(h.api, rollout("web", steps, router=ISTIO))


async def test_run_whose_status_write_fails_is_repaired_and_the_canary_aborts(
    harness: OperatorHarness, timeline: TrafficTimeline
) -> None:
    h = harness
    # the store retries a status write 3 times: 4 failures lose the run's status for good
    fault = h.emulator.inject(
        method="PATCH", plural="analysisruns", subresource="status", status=500, times=4
    )
    failing_canary(h, timeline)
    rev1, _ = await new_revision(h)
    await h.wait_for(lambda: fault.hits == 4, what="the run's status write failed 4 times")

    st = await h.wait_status(
        lambda s: s.get("phase") == "Degraded", timeout=20, what="aborted on the analysis"
    )
    assert st["abort"]["reason"] == "AnalysisFailed" and "error-rate" in st["message"]
    assert st["weights"]["canary"] == 0 and vs_weights(h) == [100, 0]
    assert st["stableRevision"] == rev1
    [run] = analysis_runs(h)  # the same run, repaired: not a second one
    assert run["status"]["phase"] == "Failed" and run["status"]["startedAt"]
    assert h.reasons().count("RolloutAborted") == 1


async def test_abort_event_posted_once_across_failed_status_writes_and_a_restart(
    harness: OperatorHarness, timeline: TrafficTimeline
) -> None:
    h = harness
    failing_canary(h, timeline)
    await new_revision(h)
    await h.wait_status(lambda s: s["weights"]["canary"] == 25, what="weight 25")
    # from now on the Rollout's status cannot be written: the abort is decided, not recorded
    fault = h.emulator.inject(
        method="PATCH", plural="rollouts", name="web", subresource="status", times=None
    )

    def run_failed() -> bool:
        runs = analysis_runs(h)
        return bool(runs) and (runs[0].get("status") or {}).get("phase") == "Failed"

    await h.wait_for(run_failed, timeout=15, what="the analysis run Failed")
    seen = fault.hits
    # two more reconciles decided the abort and failed to record it
    await h.wait_for(lambda: fault.hits >= seen + 8, timeout=15, what="abort attempts")
    await h.restart()  # a new controller, with no memory of Events it posted
    h.emulator.clear_faults()

    st = await h.wait_status(lambda s: s.get("phase") == "Degraded", timeout=20, what="aborted")
    assert st["abort"]["reason"] == "AnalysisFailed"
    aborted = [e for e in h.events() if e["reason"] == "RolloutAborted"]
    assert len(aborted) == 1 and aborted[0].get("count", 1) == 1, aborted
