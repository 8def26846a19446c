"""Blue-green transitions: preview, pre-promotion analysis, auto-promotion, switch, post-promotion."""

from __future__ import annotations

from typing import Any

from rollouts.engine.plan import AnalysisPhase
from tests.support.rollouts import Harness, rollout_doc

PRE = {"templates": [{"templateName": "smoke"}]}
POST = {"templates": [{"templateName": "slo"}]}


def started(outcomes: dict[str, AnalysisPhase] | None = None, **bg: Any) -> Harness:
    h = Harness(rollout_doc(blue_green=bg, replicas=3), outcomes=outcomes)
    h.stable()
    h.update("web:2")
    return h


def test_preview_comes_up_beside_active_and_switches() -> None:
    h = started(previewReplicaCount=1)
    h.reconcile()
    assert h.replicas("b") == 1 and h.services() == {"web": "a", "web-preview": "b"}
    h.until(lambda h: h.status.phase == "Healthy", limit=120)
    assert h.services() == {"web": "b", "web-preview": "b"}
    assert h.replicas("b") == 3  # scaled to full before the switch
    assert h.status.stable_slot == "b" and h.status.history[-1].outcome == "Promoted"
    h.run(31)
    assert h.replicas("a") == 0


def test_auto_promotion_waits_the_configured_seconds() -> None:
    h = started(autoPromotionSeconds=300)
    h.until(lambda h: h.status.phase == "Paused", limit=60)
    paused_at = h.t
    assert h.status.pause_conditions[0].reason == "BlueGreenPause"
    h.until(lambda h: h.services()["web"] == "b", limit=600)
    assert 300 <= h.t - paused_at <= 302


def test_manual_promotion_when_auto_promotion_is_off() -> None:
    h = started(autoPromotionEnabled=False)
    h.until(lambda h: h.status.phase == "Paused", limit=60)
    h.run(3600, every=60)
    assert h.services()["web"] == "a"
    h.reconcile("promote")
    h.until(lambda h: h.status.phase == "Healthy", limit=60)
    assert h.services()["web"] == "b"


def test_failed_pre_promotion_analysis_never_switches() -> None:
    h = started(outcomes={"smoke": "Failed"}, prePromotionAnalysis=PRE)
    h.until(lambda h: h.status.phase == "Degraded", limit=120)
    assert h.services()["web"] == "a"
    assert h.status.abort is not None and "smoke" in h.status.abort.message
    h.run(31)
    assert h.replicas("b") == 0


def test_failed_post_promotion_analysis_switches_back() -> None:
    h = started(outcomes={"slo": "Failed"}, postPromotionAnalysis=POST)
    h.until(lambda h: h.services()["web"] == "b", limit=60)
    assert h.status.phase == "Progressing"  # not Healthy until post-promotion analysis passes
    h.until(lambda h: h.status.phase == "Degraded", limit=120)
    assert h.services()["web"] == "a" and h.status.stable_slot == "a"
    assert h.replicas("a") == 3
    assert h.status.stable_revision != h.status.current_revision


def test_passing_post_promotion_analysis_completes() -> None:
    h = started(postPromotionAnalysis=POST)
    h.until(lambda h: h.services()["web"] == "b", limit=60)
    assert h.replicas("a") == 3  # old pods kept while post-promotion analysis runs
    h.until(lambda h: h.status.phase == "Healthy", limit=120)
    h.run(31)
    assert h.replicas("a") == 0


def test_abort_during_post_promotion_switches_back() -> None:
    h = started(postPromotionAnalysis=POST)
    h.until(lambda h: h.services()["web"] == "b", limit=60)
    h.reconcile("abort")
    h.reconcile()
    assert h.services()["web"] == "a" and h.status.phase == "Degraded"


def test_retry_after_failed_pre_promotion_runs_a_fresh_analysis() -> None:
    h = started(outcomes={"smoke": "Failed"}, prePromotionAnalysis=PRE)
    h.until(lambda h: h.status.phase == "Degraded", limit=120)
    failed = {r.name for r in h.status.analysis_runs}
    h.verdicts.outcomes["smoke"] = "Successful"
    h.reconcile("retry")
    assert h.status.attempt == 2 and h.status.abort is None
    h.until(lambda h: h.status.phase == "Healthy", limit=300)
    assert not failed & {r.name for r in h.status.analysis_runs}  # new runs, not the failed one
    assert h.services()["web"] == "b"


def test_new_revision_replaces_the_preview_without_touching_active() -> None:
    h = started(autoPromotionEnabled=False)
    h.until(lambda h: h.status.phase == "Paused", limit=60)
    first = h.status.current_revision
    h.update("web:3")
    h.reconcile()
    assert h.services()["web"] == "a"
    assert h.status.current_revision != first and h.status.history[-1].outcome == "Superseded"
    assert h.cluster.slots[("ns", "web")]["b"].revision == h.status.current_revision
    h.until(lambda h: h.status.phase == "Paused", limit=60)


def test_revert_to_active_drops_the_preview() -> None:
    h = started(autoPromotionEnabled=False)
    h.until(lambda h: h.status.phase == "Paused", limit=60)
    h.update("web:1")
    h.reconcile()
    assert h.status.phase == "Healthy" and h.services() == {"web": "a", "web-preview": "a"}
    h.run(31)
    assert h.replicas("b") == 0
