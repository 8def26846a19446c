"""A run that never reports (its status never written, or unreadable) must not hold the canary's
traffic forever: the engine's progressDeadlineSeconds covers it (issue 13, item 4)."""

from __future__ import annotations

from collections.abc import Callable

from rollouts.api.rollout import Rollout
from rollouts.engine.plan import AnalysisObservation, StartAnalysis
from rollouts.verdicts.port import VerdictSource
from tests.support.rollouts import ISTIO, Harness, rollout_doc

STEPS = [{"setWeight": 25}, {"analysis": {"templates": [{"templateName": "error-rate"}]}}]


class Silent:
    """Starts analyses but never reports a verdict: what a run without status looks like."""

    def __init__(self, inner: VerdictSource) -> None:
        self.inner = inner

    @property
    def clock(self) -> Callable[[], float]:
        return self.inner.clock

    def tick(self, rollout: Rollout) -> None:
        self.inner.tick(rollout)

    def observe(self, rollout: Rollout) -> dict[str, AnalysisObservation]:
        return {}

    def start(self, rollout: Rollout, request: StartAnalysis) -> None:
        self.inner.start(rollout, request)

    def stop(self, rollout: Rollout, name: str) -> None:
        self.inner.stop(rollout, name)


def test_a_run_that_never_reports_aborts_at_the_progress_deadline() -> None:
    h = Harness(rollout_doc(steps=STEPS, router=ISTIO, deadline=60))
    h.stable()
    h.ports.verdicts = Silent(h.verdicts)
    h.update("web:2")
    h.until(lambda h: h.status.current_step_index == 1, limit=60)
    h.run(30, every=5)
    assert h.status.phase == "Progressing"  # within the deadline: still waiting on it
    assert h.status.weights.canary == 25
    h.until(lambda h: h.status.phase == "Degraded", limit=60)
    st = h.status
    assert st.abort is not None and st.abort.reason == "AnalysisFailed"
    assert "reported no verdict within progressDeadlineSeconds (60s)" in st.abort.message
    assert st.weights.canary == 0
    assert st.analysis_runs[0].phase == "Error"


def test_a_run_that_reports_running_is_not_cut_short_by_the_deadline() -> None:
    h = Harness(rollout_doc(steps=STEPS, router=ISTIO, deadline=60), analysis_seconds=200)
    h.stable()
    h.update("web:2")
    h.until(lambda h: h.status.current_step_index == 1, limit=60)
    h.run(150, every=5)
    assert h.status.phase == "Progressing" and h.status.abort is None
    h.until(lambda h: h.status.phase == "Healthy", limit=200)


def test_the_deadline_counts_from_the_promotion_not_from_a_long_wait_before_it() -> None:
    """Post-promotion analysis starts after autoPromotionSeconds (longer than the deadline here):
    an unreported run gets its full progressDeadlineSeconds from the switch."""
    post = {"templates": [{"templateName": "slo"}]}
    doc = rollout_doc(
        blue_green={"autoPromotionSeconds": 120, "postPromotionAnalysis": post},
        replicas=3,
        deadline=60,
    )
    h = Harness(doc)
    h.stable()
    h.ports.verdicts = Silent(h.verdicts)
    h.update("web:2")
    h.until(lambda h: h.services()["web"] == "b", limit=300)
    h.run(50, every=5)
    assert h.status.abort is None and h.status.analysis_runs[0].phase == "Pending"
    h.until(lambda h: h.status.phase == "Degraded", limit=30)
    assert h.services()["web"] == "a"  # switched back to the old pods
    assert "reported no verdict" in h.status.analysis_runs[0].message
