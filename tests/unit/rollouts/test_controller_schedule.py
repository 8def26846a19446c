"""When the controller schedules a Rollout's next reconcile (issue 13: a timer only where time
matters), and that a Rollout it has forgotten stays forgotten."""

from __future__ import annotations

import time
from typing import Any

import kubernetes
import pytest

from rollouts import operator
from rollouts.api.rollout import RolloutStatus
from rollouts.engine.plan import Plan
from rollouts.settings import Settings
from rollouts.telemetry import Telemetry
from rollouts.verdicts.scripted import ScriptedVerdicts
from tests.support.rollouts import rollout_doc


def new_controller(**settings: Any) -> operator.Controller:
    return operator.Controller(
        kubernetes.client.ApiClient(),
        Settings(standalone=True, metrics_port=None, liveness_port=None, **settings),
        Telemetry(),
        verdicts=ScriptedVerdicts(time.time),
    )


def test_a_rollout_deleted_during_its_reconcile_is_not_requeued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The DELETED event forgets the Rollout while a worker still reconciles it: the retry that
    reconcile would schedule must not put the Rollout back in the queue (it stayed there, and in
    the per-Rollout state, until the retry came due)."""
    controller = new_controller()
    monkeypatch.setattr(controller, "_get", lambda ns, name: rollout_doc())

    def deleted_meanwhile(*_: Any, **__: Any) -> Any:
        controller.rollout_event("ns", "web", "DELETED")
        raise kubernetes.client.ApiException(status=500, reason="injected")

    monkeypatch.setattr(operator, "cycle", deleted_meanwhile)
    controller.run("ns", "web")
    assert controller.queue.due_in(("ns", "web")) is None
    left = {k: v for k, v in controller.state_sizes().items() if v}
    assert not left, left


@pytest.mark.parametrize(
    ("phase", "runs", "expected"),
    [
        ("Paused", [], 60.0),  # waiting for a person: events only (a drift re-check a minute on)
        ("Degraded", [], 60.0),  # aborted, waiting for a new revision
        ("Healthy", [], 60.0),
        ("Paused", ["Running"], 10.0),  # a background analysis to measure: ticked by reconciles
        ("Paused", ["Pending"], 10.0),
        ("Paused", ["Successful"], 60.0),
        ("Progressing", [], 10.0),
    ],
)
def test_what_a_settled_rollout_is_requeued_after(
    phase: str, runs: list[str], expected: float
) -> None:
    """A fleet paused for people (3,000 canaries at `pause: {}`) was reconciled every 10 s each,
    300 reconciles a second; only what time can change is on a timer."""
    from rollouts.api.rollout import AnalysisRunRecord, RolloutStatus

    controller = new_controller(idle_seconds=60.0)
    key = ("ns", "web")
    controller._lock(key)  # a known Rollout (its reconcile holds this)
    status = RolloutStatus(
        phase=phase,  # type: ignore[arg-type]
        analysis_runs=[
            AnalysisRunRecord(name=f"r{i}", kind="background", phase=p) for i, p in enumerate(runs)
        ],  # type: ignore[arg-type]
    )
    plan = Plan(status=status)
    assert plan.waits_for_events == (expected == 60.0)  # the engine says so, the operator obeys
    controller._next(key, None, plan)
    due = controller.queue.due_in(key)
    assert due is not None and expected - 1.0 < due <= expected


def test_a_plan_with_a_due_time_never_waits_for_events_only() -> None:
    from rollouts.api.rollout import RolloutStatus

    assert Plan(status=RolloutStatus(phase="Paused")).waits_for_events
    assert not Plan(status=RolloutStatus(phase="Paused"), requeue_after=30.0).waits_for_events


def test_after_a_peering_resume_each_known_rollout_is_reconciled_once_from_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While kopf paused this replica, another one may have moved the Rollout on, and the watch
    copies are as old as the pause: the first reconcile after the resume reads by GET, and keeps
    what it read over the older watch copy; the next one is served from the cache again."""
    controller = new_controller()
    stale, fresh = rollout_doc(), rollout_doc()
    stale["metadata"]["resourceVersion"], fresh["metadata"]["resourceVersion"] = "5", "9"
    stale["metadata"]["annotations"] = {"copy": "5"}
    fresh["metadata"]["annotations"] = {"copy": "9"}
    controller.cache.attach("rollouts", {("ns", "web"): [stale]})
    fetched: list[str] = []

    def fetch(namespace: str, name: str) -> dict[str, Any]:
        fetched.append(name)
        return fresh

    seen: list[tuple[str, bool]] = []

    fail = [False]

    def cycle(rollout: Any, *_: Any, **__: Any) -> Any:
        copy = (rollout.metadata.annotations or {})["copy"]
        seen.append((copy, controller.cache._bypassing()))
        if fail[0]:
            raise kubernetes.client.ApiException(status=500, reason="injected")
        return Plan(status=RolloutStatus(phase="Healthy"))

    monkeypatch.setattr(controller, "_fetch", fetch)
    monkeypatch.setattr(operator, "cycle", cycle)
    controller.run("ns", "web")  # working: served from the watch
    assert seen == [("5", False)] and fetched == []

    controller.peering_paused(True)
    controller.peering_paused(False)
    fail[0] = True
    controller.run("ns", "web")  # fails (injected): the next one must read from the API again
    assert seen[1:] == [("9", True)] and fetched == ["web"]
    assert controller.state_sizes()["stale"] == 1

    fail[0] = False
    controller.run("ns", "web")
    controller.run("ns", "web")  # the GET's answer kept over the older watch copy, not re-read
    assert seen[2:] == [("9", True), ("9", False)] and fetched == ["web", "web"]
    assert controller.state_sizes()["stale"] == 0


def test_a_reconcile_that_spans_a_whole_pause_leaves_the_rollout_marked_for_a_cold_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Begun before the pause from the watches, it ends after the resume: the next reconcile
    must still read from the API, since the watches were stopped meanwhile."""
    controller = new_controller()
    monkeypatch.setattr(controller, "_get", lambda ns, name: rollout_doc())

    def pause_and_resume_meanwhile(*_: Any, **__: Any) -> Any:
        controller.peering_paused(True)
        controller.peering_paused(False)
        return Plan(status=RolloutStatus(phase="Healthy"))

    monkeypatch.setattr(operator, "cycle", pause_and_resume_meanwhile)
    controller.run("ns", "web")
    assert controller.state_sizes()["stale"] == 1
