"""Canary transitions, driven through the real reconcile loop on the in-memory cluster."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.api.validation import parse_rollout
from rollouts.engine import DeploySlot, ScaleSlot, SetServiceSelector, SetWeight, StartAnalysis
from tests.support.rollouts import ISTIO, Harness, rollout_doc

STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {}},
    {"analysis": {"templates": [{"templateName": "error-rate"}]}},
    {"setWeight": 50},
    {"pause": {"duration": "30s"}},
]


def started(
    steps: list[dict[str, Any]] = STEPS, router: dict[str, Any] | None = ISTIO, **kw: Any
) -> Harness:
    h = Harness(rollout_doc(steps=steps, router=router, **kw))
    h.stable()
    h.update("web:2")
    return h


def test_first_revision_becomes_stable_without_steps() -> None:
    h = Harness(rollout_doc(steps=STEPS, router=ISTIO))
    plan = h.reconcile()
    deploys = [a for a in plan.actions if isinstance(a, DeploySlot)]
    assert [(d.slot, d.replicas) for d in deploys] == [("a", 4)]
    assert h.status.stable_revision == h.status.current_revision
    assert h.status.phase == "Progressing"  # pods not ready yet
    assert {c.type: c.status for c in h.status.conditions}["Ready"] == "False"
    h.until(lambda h: h.status.phase == "Healthy")
    conds = {c.type: c.status for c in h.status.conditions}
    assert conds == {
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
        "Progressing": "True",
        "Paused": "False",
    }
    assert h.services() == {"web": "a", "web-canary": "a"}


def test_canary_scales_before_shifting_weight_then_pauses() -> None:
    h = started()
    plan = h.reconcile()
    assert (
        DeploySlot("b", h.status.current_revision or "", h.rollout.spec.template, 1) in plan.actions
    )
    assert not any(isinstance(a, SetWeight) and a.canary > 0 for a in plan.actions)
    assert h.router.weight == 0  # no traffic before the canary pod is ready
    h.until(lambda h: h.router.weight == 25)
    assert h.status.phase == "Paused"
    assert [p.reason for p in h.status.pause_conditions] == ["CanaryPauseStep"]
    assert h.status.current_step_index == 1
    assert h.services() == {"web": "a", "web-canary": "b"}
    assert h.status.weights.canary == 25 and h.status.weights.stable == 75


def test_indefinite_pause_waits_for_promote() -> None:
    h = started()
    h.until(lambda h: h.status.phase == "Paused")
    h.run(3600, every=60)
    assert h.status.current_step_index == 1
    plan = h.reconcile("promote")
    assert any(isinstance(a, StartAnalysis) for a in plan.actions)
    assert h.status.current_step_index == 2


def test_full_canary_reaches_healthy_and_flips_roles() -> None:
    h = started()
    h.until(lambda h: h.status.phase == "Paused")
    h.reconcile("promote")
    h.until(lambda h: h.status.phase == "Healthy", limit=600)
    st = h.status
    assert st.stable_slot == "b" and st.stable_revision == st.current_revision
    assert h.router.weight == 0  # route handed back to the stable Service, which now holds b
    assert 100 in h.router.history  # all traffic went to the new pods before the flip
    assert h.services() == {"web": "b", "web-canary": "b"}
    assert [e.outcome for e in st.history] == ["Promoted"]
    assert h.replicas("a") == 4  # old slot kept for scaleDownDelaySeconds
    h.run(31)
    assert h.replicas("a") == 0


def test_promotion_emits_weight_before_selectors() -> None:
    h = started(steps=[{"setWeight": 50}])
    h.until(lambda h: h.router.weight == 50)
    plans = []
    while h.status.phase != "Healthy":
        h.t += 1
        plans.append(h.reconcile())
    promo = next(
        p for p in plans if any(isinstance(a, SetWeight) and a.canary == 100 for a in p.actions)
    )
    kinds = [
        (type(a).__name__, getattr(a, "canary", getattr(a, "service", None)))
        for a in promo.actions
        if isinstance(a, SetWeight | SetServiceSelector)
    ]
    # the canary Service already selects b, so only the stable Service moves
    assert kinds == [("SetWeight", 100), ("SetServiceSelector", "web"), ("SetWeight", 0)]


def test_timed_pause_requeues_for_the_remaining_time() -> None:
    h = started(steps=[{"setWeight": 10}, {"pause": {"duration": "5m"}}])
    h.until(lambda h: h.status.phase == "Paused")
    h.t += 100
    plan = h.reconcile()
    assert plan.requeue_after == pytest.approx(200, abs=2)
    h.t += 200
    h.reconcile()
    assert h.status.current_step_index == 2


def test_failed_analysis_aborts_and_names_the_metric() -> None:
    h = Harness(rollout_doc(steps=STEPS[2:], router=ISTIO), outcomes={"error-rate": "Failed"})
    h.stable()
    h.update("web:2")
    h.until(lambda h: h.status.phase == "Degraded", limit=300)
    st = h.status
    assert st.abort is not None and st.abort.reason == "AnalysisFailed"
    assert "error-rate" in st.message
    conds = {c.type: c for c in st.conditions}
    assert conds["Stalled"].status == "True" and conds["Stalled"].reason == "AnalysisFailed"
    assert conds["Ready"].status == "False" and conds["Reconciling"].status == "False"
    assert st.stable_revision != st.current_revision  # never promoted
    assert "RolloutAborted" in h.events()


def test_inconclusive_analysis_pauses_until_promoted() -> None:
    h = Harness(rollout_doc(steps=STEPS[2:3], router=ISTIO), outcomes={"*": "Inconclusive"})
    h.stable()
    h.update("web:2")
    h.until(lambda h: h.status.phase == "Paused", limit=300)
    assert [p.reason for p in h.status.pause_conditions] == ["InconclusiveAnalysis"]
    h.run(600, every=30)
    assert h.status.phase == "Paused"
    h.reconcile("promote")
    h.until(lambda h: h.status.phase == "Healthy", limit=120)


def test_abort_sends_traffic_to_stable_before_scaling_canary_down() -> None:
    h = started()
    h.until(lambda h: h.router.weight == 25)
    plan = h.reconcile("abort")
    weights = [a.canary for a in plan.actions if isinstance(a, SetWeight)]
    assert weights == [0]
    assert not any(isinstance(a, ScaleSlot) and a.slot == "b" for a in plan.actions)
    assert h.status.phase == "Degraded" and h.status.abort is not None
    assert h.status.abort.reason == "AbortedByUser"
    assert h.replicas("b") == 1  # kept for abortScaleDownDelaySeconds
    h.run(31)
    assert h.replicas("b") == 0
    assert h.router.weight == 0 and h.services()["web"] == "a"


def test_retry_restarts_from_the_first_step() -> None:
    h = started()
    h.until(lambda h: h.router.weight == 25)
    h.reconcile("abort")
    h.run(40)
    h.reconcile("retry")
    assert h.status.abort is None and h.status.current_step_index == 0
    h.until(lambda h: h.router.weight == 25)
    assert h.status.phase == "Paused"


def test_promote_full_skips_remaining_steps() -> None:
    h = started()
    h.until(lambda h: h.status.phase == "Paused")
    h.reconcile("promote-full")
    h.until(lambda h: h.status.phase == "Healthy", limit=60)
    assert not any(e == "AnalysisStarted" for e in h.events())


def test_user_pause_holds_a_timed_pause_and_resume_continues() -> None:
    h = started(steps=[{"setWeight": 10}, {"pause": {"duration": "1m"}}, {"setWeight": 20}])
    h.until(lambda h: h.status.phase == "Paused")
    h.reconcile("pause")
    h.run(600, every=10)
    assert h.status.current_step_index == 1
    assert "PausedByUser" in [p.reason for p in h.status.pause_conditions]
    h.reconcile("resume")
    h.until(lambda h: h.status.current_step_index == 3, limit=120)


def test_requests_are_idempotent_by_id() -> None:
    h = started()
    h.until(lambda h: h.status.phase == "Paused")
    from rollouts.engine import Request
    from rollouts.reconcile import cycle

    req = Request("promote", "promote@same")
    for _ in range(3):
        plan = cycle(h.rollout, h.ports, h.now, req)
        h.rollout = h.rollout.model_copy(update={"status": plan.status})
    assert h.status.current_step_index == 2  # one promote, not three
    assert h.status.last_request == "promote@same"


def test_new_revision_mid_rollout_abandons_the_canary() -> None:
    h = started()
    h.until(lambda h: h.router.weight == 25)
    first = h.status.current_revision
    h.update("web:3")
    plan = h.reconcile()
    assert plan.actions[0] == SetWeight(0) or SetWeight(0) in plan.actions
    assert any(
        isinstance(a, DeploySlot) and a.slot == "b" and a.revision != first for a in plan.actions
    )
    assert h.status.history[-1].outcome == "Superseded" and h.status.history[-1].revision == first
    assert h.status.stable_slot == "a" and h.status.current_step_index == 0
    h.until(lambda h: h.router.weight == 25)


def test_revert_to_stable_is_instant() -> None:
    h = started()
    h.until(lambda h: h.router.weight == 25)
    h.update("web:1")
    h.reconcile()
    assert h.status.phase == "Healthy"
    assert h.router.weight == 0 and h.status.current_revision == h.status.stable_revision
    h.run(31)
    assert h.replicas("b") == 0


def test_progress_deadline_aborts_a_canary_that_never_becomes_ready() -> None:
    h = started(deadline=60)
    h.cluster.never_ready.add(h.rollout.status.current_revision if h.rollout.status else "")
    h.reconcile()
    assert h.status.current_revision is not None
    h.cluster.never_ready = {h.status.current_revision}
    h.until(lambda h: h.status.phase == "Degraded", limit=120)
    assert h.status.abort is not None and h.status.abort.reason == "ProgressDeadlineExceeded"


def test_pauses_do_not_count_toward_the_progress_deadline() -> None:
    h = started(steps=[{"setWeight": 10}, {"pause": {}}, {"setWeight": 20}], deadline=60)
    h.until(lambda h: h.status.phase == "Paused")
    h.run(600, every=30)
    h.reconcile("promote")
    h.until(lambda h: h.status.current_step_index == 3, limit=30)
    assert h.status.abort is None


def test_no_router_splits_by_replica_ratio() -> None:
    h = started(steps=[{"setWeight": 25}, {"pause": {}}], router=None)
    h.until(lambda h: h.status.phase == "Paused")
    assert h.replicas("b") == 1 and h.replicas("a") == 3
    assert h.services() == {"web": None, "web-canary": "b"}  # stable Service spans both slots
    assert h.router.history == []  # no router calls at all
    h.reconcile("abort")
    assert h.services()["web"] == "a"  # traffic pinned to stable at once
    assert h.replicas("a") == 4


def test_background_analysis_failure_aborts_mid_pause() -> None:
    bg = {"templates": [{"templateName": "slo"}], "startingStep": 1}
    h = Harness(
        rollout_doc(
            steps=[{"setWeight": 10}, {"pause": {"duration": "1h"}}], router=ISTIO, background=bg
        ),
        outcomes={"slo": "Failed"},
        analysis_seconds=120,
    )
    h.stable()
    h.update("web:2")
    h.until(lambda h: h.status.phase == "Degraded", limit=600)
    assert h.status.abort is not None and "background analysis" in h.status.abort.message
    assert h.router.weight == 0


def test_manual_weight_change_is_reasserted() -> None:
    h = started()
    h.until(lambda h: h.router.weight == 25)
    h.router.weight = 80  # someone edits the VirtualService by hand
    plan = h.reconcile()
    assert SetWeight(25) in plan.actions and h.router.weight == 25


def test_unverified_weight_holds_the_step() -> None:
    h = started(steps=[{"setWeight": 10}, {"setWeight": 20}])
    h.router.verified = False
    h.run(60)
    assert h.status.current_step_index == 0 and h.status.weights.verified is False
    h.router.verified = True
    h.until(lambda h: h.status.phase == "Healthy", limit=60)


def test_reconcile_is_idempotent_when_nothing_changes() -> None:
    h = started()
    h.until(lambda h: h.status.phase == "Paused")
    plan = h.reconcile()
    assert plan.actions == ()


def test_abort_stops_running_analyses_and_says_why() -> None:
    bg = {"templates": [{"templateName": "slo"}]}
    h = Harness(
        rollout_doc(steps=[{"setWeight": 10}, {"pause": {}}], router=ISTIO, background=bg),
        analysis_seconds=3600,
    )
    h.stable()
    h.update("web:2")
    h.until(lambda h: h.status.phase == "Paused")
    (run,) = h.status.analysis_runs
    assert run.kind == "background" and run.phase == "Running"
    h.reconcile("abort")
    (run,) = h.status.analysis_runs
    assert run.phase == "Stopped" and run.message == "rollout aborted: AbortedByUser"
    assert h.verdicts.runs[run.name].stopped


# Requests in each state: (state reached, request) -> (phase after, step index after, event)
REQUEST_TABLE = [
    ("paused", "promote", "Progressing", 2, "StepSkipped"),
    ("paused", "promote-full", "Progressing", 3, "StepSkipped"),  # scaling the canary to full
    ("paused", "abort", "Degraded", 1, "RolloutAborted"),
    ("paused", "retry", "Paused", 1, "RequestIgnored"),
    ("paused", "pause", "Paused", 1, "Paused"),
    ("paused", "resume", "Paused", 1, "Resumed"),
    ("healthy", "promote", "Healthy", None, "RequestIgnored"),
    ("healthy", "abort", "Healthy", None, "RequestIgnored"),
    ("healthy", "retry", "Healthy", None, "RequestIgnored"),
    ("aborted", "retry", "Paused", 1, "Retrying"),  # canary pods still up: step 1 is instant
    ("aborted", "promote", "Degraded", 1, "RequestIgnored"),
    ("aborted", "abort", "Degraded", 1, "RequestIgnored"),
]


@pytest.mark.parametrize(("state", "request_kind", "phase", "step", "event"), REQUEST_TABLE)
def test_request_table(
    state: str, request_kind: str, phase: str, step: int | None, event: str
) -> None:
    h = Harness(
        rollout_doc(steps=[{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}], router=ISTIO),
        ready_delay=0,
    )
    h.stable()
    if state != "healthy":
        h.update("web:2")
        h.until(lambda h: h.status.phase == "Paused")
    if state == "aborted":
        h.reconcile("abort")
    n = len(h.events())
    h.reconcile(request_kind)
    assert h.status.phase == phase
    if step is not None:
        assert h.status.current_step_index == step
    assert event in h.events()[n:]
    # the status says why a request was ignored (and only then), as the RequestIgnored Event does
    ignored = h.status.last_request_ignored
    if event == "RequestIgnored":
        assert ignored is not None and ignored.startswith(f"{request_kind} ")
        assert h.status.last_request is not None and h.status.last_request in ignored
    else:
        assert ignored is None


def test_a_request_acted_on_clears_the_reason_an_earlier_one_was_ignored() -> None:
    h = Harness(rollout_doc(steps=[{"setWeight": 10}, {"pause": {}}], router=ISTIO), ready_delay=0)
    h.stable()
    h.reconcile("promote")
    assert h.status.last_request_ignored is not None
    assert "no rollout in progress" in h.status.last_request_ignored
    h.update("web:2")
    h.until(lambda h: h.status.phase == "Paused")
    h.reconcile("promote")
    assert h.status.last_request_ignored is None


def test_new_revision_after_an_abort_starts_cleanly_without_a_second_history_entry() -> None:
    h = started()
    h.until(lambda h: h.router.weight == 25)
    h.reconcile("abort")
    aborted = h.status.current_revision
    h.update("web:3")
    h.reconcile()
    assert h.status.abort is None and h.status.phase == "Progressing"
    assert [(e.revision, e.outcome) for e in h.status.history] == [(aborted, "Aborted")]
    h.until(lambda h: h.router.weight == 25)


def test_history_keeps_revision_history_limit_entries() -> None:
    doc = rollout_doc(steps=[{"setWeight": 50}], router=ISTIO)
    doc["spec"]["revisionHistoryLimit"] = 2
    h = Harness(doc, ready_delay=0)
    h.stable()
    for image in ("web:2", "web:3", "web:4"):
        h.update(image)
        h.until(lambda h: h.status.phase == "Healthy")
    assert [e.outcome for e in h.status.history] == ["Promoted", "Promoted"]
    assert h.status.history[-1].revision == h.status.stable_revision


def test_manual_selector_change_is_reasserted() -> None:
    h = started()
    h.until(lambda h: h.router.weight == 25)
    # someone points the stable Service at the canary slot by hand
    h.cluster.services[("ns", "web")]["web"] = "b"
    plan = h.reconcile()
    assert SetServiceSelector("web", "a") in plan.actions and h.services()["web"] == "a"


def test_replica_change_scales_stable_without_a_new_revision() -> None:
    h = Harness(rollout_doc(steps=STEPS, router=ISTIO))
    h.stable()
    revision = h.status.stable_revision
    doc = h.rollout.model_dump(mode="json", by_alias=True, exclude={"status"})
    doc["spec"]["replicas"] = 6
    h.rollout = parse_rollout(doc).model_copy(update={"status": h.rollout.status})
    plan = h.reconcile()
    assert ScaleSlot("a", 6) in plan.actions
    assert not any(isinstance(a, DeploySlot) for a in plan.actions)
    assert h.status.current_revision == revision and h.status.phase == "Progressing"
    h.until(lambda h: h.status.phase == "Healthy", limit=30)
    assert "RolloutStarted" not in h.events()


def test_step_runs_are_numbered_from_one_and_old_names_are_still_found() -> None:
    """Step 2's run ends in -step2, as people count steps. Before, it was -step1: a rollout in
    flight across the upgrade keeps its run (no second run is started for the same step)."""
    steps = [{"setWeight": 25}, {"analysis": {"templates": [{"templateName": "error-rate"}]}}]
    h = Harness(rollout_doc(steps=steps, router=ISTIO), analysis_seconds=3600)
    h.stable()
    h.update("web:2")
    h.until(lambda h: bool(h.status.analysis_runs), limit=300)
    (run,) = h.status.analysis_runs
    assert run.name.endswith("-step2") and run.step_index == 1
    assert h.status.step == "2/2"
    legacy = run.name.removesuffix("-step2") + "-step1"
    runs = [run.model_copy(update={"name": legacy})]
    h.rollout = h.rollout.model_copy(
        update={"status": h.status.model_copy(update={"analysis_runs": runs})}
    )
    plan = h.reconcile()
    assert not [a for a in plan.actions if isinstance(a, StartAnalysis)]
    assert [r.name for r in h.status.analysis_runs] == [legacy]


def test_status_records_when_the_canary_weight_changed() -> None:
    # analysis cuts its measurement windows there (issue 12, part 3)
    h = started()
    assert h.status.weight_changed_at is None
    h.until(lambda h: h.router.weight == 25)
    first = h.status.weight_changed_at
    assert first is not None and first <= h.now
    h.reconcile()
    assert h.status.weight_changed_at == first  # unchanged weight: unchanged time
