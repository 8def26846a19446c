"""``decide`` as a table: (spec, status, observed) -> (actions, status), one row per behaviour.

Each row calls the pure engine once, with a status and observations written out by hand, and
checks the whole list of planned actions (rendered short: ``weight 25``, ``select web->a``,
``normal StepCompleted``) and the status fields that say what happened. The sequences that lead to
these states are exercised end to end in test_canary.py and test_bluegreen.py; here each state is
one line to read and one assertion to break.

Canary rows use four steps, ``setWeight 25``, ``pause {}``, an analysis, ``pause 30s``, with the
Istio router; slot ``a`` runs revision r1 (web:1) as stable, and the canary runs in slot ``b``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from rollouts.api.rollout import RolloutStatus, SlotName
from rollouts.api.validation import parse_rollout
from rollouts.engine import (
    Action,
    AnalysisObservation,
    DeploySlot,
    EmitEvent,
    Observed,
    Request,
    ScaleSlot,
    SetServiceSelector,
    SetWeight,
    SlotObservation,
    StartAnalysis,
    StopAnalysis,
    decide,
    template_hash,
)
from rollouts.engine.decide import POLL_SECONDS
from rollouts.engine.plan import AnalysisPhase, RequestKind
from tests.support.rollouts import ISTIO, rollout_doc

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ANALYSIS = {"templates": [{"templateName": "error-rate"}]}
STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {}},
    {"analysis": ANALYSIS},
    {"pause": {"duration": "30s"}},
]
BROKEN = 'VirtualService ns/web: no http route named "primary" (named routes: "api")'


def revision(image: str) -> str:
    return template_hash(parse_rollout(rollout_doc(image=image)).spec.template)


R1, R2, R3 = revision("web:1"), revision("web:2"), revision("web:3")
NAMES = {R1: "r1", R2: "r2", R3: "r3"}


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).isoformat()


# ---------------------------------------------------------------------------------- statuses

HEALTHY: dict[str, Any] = {
    "stableSlot": "a",
    "stableRevision": R1,
    "currentRevision": R1,
    "currentStepIndex": len(STEPS),
    "weights": {"canary": 0, "stable": 100},
}


def canary_at(step: int, weight: int = 0, *pauses: str, **more: Any) -> dict[str, Any]:
    """Revision r2 in flight at ``step`` (0-based), last progress 5 s ago."""
    return {
        "stableSlot": "a",
        "stableRevision": R1,
        "currentRevision": R2,
        "attempt": 1,
        "currentStepIndex": step,
        "stepStartedAt": ago(5),
        "rolloutStartedAt": ago(60),
        "lastProgressAt": ago(5),
        "weights": {"canary": weight, "stable": 100 - weight},
        "pauseConditions": [{"reason": r, "startTime": ago(5)} for r in pauses],
        **more,
    }


def run(suffix: str, kind: str, phase: str = "Running", step: int | None = None) -> dict[str, Any]:
    return {"name": f"web-{R2}-{suffix}", "kind": kind, "stepIndex": step, "phase": phase}


def aborted(reason: str) -> dict[str, Any]:
    return {"reason": reason, "message": "by hand", "time": ago(10), "revision": R2}


ROUTING_STALLED = [
    {
        "type": "Stalled",
        "status": "True",
        "reason": "RoutingError",
        "message": f"traffic router failed: {BROKEN}; traffic left as it was, retrying",
        "lastTransitionTime": ago(30),
    }
]

# ---------------------------------------------------------------------------------- observations


def seen(
    b: tuple[str, int, int] | None = None,
    *,
    services: tuple[SlotName | None, SlotName | None] = ("a", "b"),
    weight: int | None = 0,
    analysis: dict[str, AnalysisPhase] | None = None,
    request: str | None = None,
    routing_error: str | None = None,
    a: tuple[str, int, int] | None = (R1, 4, 4),
    preview: bool = False,
) -> Observed:
    """Slot ``a`` (stable r1, 4/4 ready), slot ``b`` as (revision, replicas, ready), the two
    Services' slots (stable/active first), the router's weight, verdicts by run suffix, a request
    as ``kind@id``."""
    slots: dict[SlotName, SlotObservation] = {}
    if a is not None:
        slots["a"] = SlotObservation(*a)
    if b is not None:
        slots["b"] = SlotObservation(*b)
    second = "web-preview" if preview else "web-canary"
    verdicts = {
        f"web-{R2}-{suffix}": AnalysisObservation(phase, message=f"error-rate {phase.lower()}")
        for suffix, phase in (analysis or {}).items()
    }
    return Observed(
        slots=slots,
        services={"web": services[0], second: services[1]},
        weight=weight,
        analysis=verdicts,
        request=Request(cast(RequestKind, request.split("@")[0]), request) if request else None,
        routing_error=routing_error,
    )


# ---------------------------------------------------------------------------------- rendering


def render(action: Action) -> str:
    match action:
        case DeploySlot(slot, rev, _, replicas):
            return f"deploy {slot} {NAMES[rev]} x{replicas}"
        case ScaleSlot(slot, replicas):
            return f"scale {slot} x{replicas}"
        case SetServiceSelector(service, slot):
            return f"select {service}->{slot or 'both'}"
        case SetWeight(canary):
            return f"weight {canary}"
        case StartAnalysis(_, kind):
            return f"start {kind}"
        case StopAnalysis(name):
            return f"stop {name.rsplit('-', 1)[-1]}"
        case EmitEvent(type_, reason, _):
            return f"{type_.lower()} {reason}"
    return type(action).__name__


def facts(st: RolloutStatus) -> dict[str, Any]:
    """The status fields a row may check, under short names."""
    stalled = next((c for c in st.conditions if c.type == "Stalled"), None)
    return {
        "phase": st.phase,
        "step": st.current_step_index,
        "weight": st.weights.canary,
        "current": NAMES.get(st.current_revision or ""),
        "stable": NAMES.get(st.stable_revision or ""),
        "stableSlot": st.stable_slot,
        "attempt": st.attempt,
        "abort": st.abort.reason if st.abort else None,
        "abortMessage": st.abort.message if st.abort else None,
        "pauses": [p.reason for p in st.pause_conditions],
        "lastRequest": st.last_request,
        "stalled": stalled.reason if stalled is not None and stalled.status == "True" else None,
        "history": [h.outcome for h in st.history],
        "scaleDowns": [s.slot for s in st.scale_downs],
        "runs": {r.name.rsplit("-", 1)[-1]: r.phase for r in st.analysis_runs},
    }


# ---------------------------------------------------------------------------------- the table

ANY = object()


@dataclass(frozen=True)
class Case:
    id: str
    status: dict[str, Any] | None
    observed: Observed
    actions: list[str]
    expect: dict[str, Any]
    image: str = "web:2"
    requeue: Any = ANY
    spec: dict[str, Any] = field(default_factory=lambda: {"steps": STEPS, "router": ISTIO})


def bg(**strategy: Any) -> dict[str, Any]:
    return {"blue_green": strategy}


BG_PREVIEW: dict[str, Any] = {
    "stableSlot": "a",
    "stableRevision": R1,
    "currentRevision": R2,
    "attempt": 1,
    "lastProgressAt": ago(5),
}
READY_PREVIEW = seen((R2, 4, 4), services=("a", "b"), preview=True)

CASES = [
    # ------------------------------------------------------------------ canary: steps
    Case(
        "first revision becomes stable at once",
        None,
        seen(a=None, services=(None, None)),
        ["deploy a r1 x4", "select web->a", "select web-canary->a", "normal RolloutCreated"],
        {"phase": "Progressing", "stable": "r1", "current": "r1", "step": 4, "weight": 0},
        image="web:1",
        requeue=None,  # the Deployment's readiness triggers the next reconcile
    ),
    Case(
        "healthy and unchanged: nothing to do",
        HEALTHY,
        seen(services=("a", "a")),
        [],
        {"phase": "Healthy", "stable": "r1", "stalled": None},
        image="web:1",
        requeue=None,
    ),
    Case(
        "new revision: canary slot scaled for the first step, no traffic yet",
        HEALTHY,
        seen(services=("a", "a")),
        ["normal RolloutStarted", "deploy b r2 x1", "select web-canary->b"],
        {"phase": "Progressing", "current": "r2", "step": 0, "weight": 0, "attempt": 1},
        requeue=POLL_SECONDS,
    ),
    Case(
        "setWeight waits for the canary pods before moving traffic",
        canary_at(0),
        seen((R2, 1, 0)),
        [],
        {"phase": "Progressing", "step": 0, "weight": 0},
        requeue=POLL_SECONDS,
    ),
    Case(
        "setWeight with ready pods: weight set, step done, then a pause for a person",
        canary_at(0),
        seen((R2, 1, 1)),
        ["weight 25", "normal StepCompleted"],
        {"phase": "Paused", "step": 1, "weight": 25, "pauses": ["CanaryPauseStep"]},
        requeue=None,
    ),
    Case(
        "a hand-edited weight is written back",
        canary_at(1, 25, "CanaryPauseStep"),
        seen((R2, 1, 1), weight=60),
        ["weight 25"],
        {"phase": "Paused", "step": 1, "weight": 25},
    ),
    Case(
        "pause for a person holds however long it takes",
        canary_at(1, 25, "CanaryPauseStep"),
        seen((R2, 1, 1), weight=25),
        [],
        {"phase": "Paused", "step": 1, "pauses": ["CanaryPauseStep"]},
        requeue=None,
    ),
    Case(
        "step analysis starts once the step is reached",
        canary_at(2, 25),
        seen((R2, 1, 1), weight=25),
        ["start step", "normal AnalysisStarted"],
        {"phase": "Progressing", "step": 2, "runs": {"step3": "Pending"}},
    ),
    Case(
        "step analysis passed: step done, timed pause begins",
        canary_at(2, 25, analysisRuns=[run("step3", "step", step=2)]),
        seen((R2, 1, 1), weight=25, analysis={"step3": "Successful"}),
        ["normal StepCompleted"],
        {"phase": "Paused", "step": 3, "runs": {"step3": "Successful"}},
        requeue=30.0,
    ),
    Case(
        "timed pause not over: requeued for the time left",
        canary_at(3, 25, "CanaryPauseStep", stepStartedAt=ago(10)),
        seen((R2, 1, 1), weight=25),
        [],
        {"phase": "Paused", "step": 3},
        requeue=20.0,
    ),
    Case(
        "timed pause over: last step done, canary scaled to full before promotion",
        canary_at(3, 25, "CanaryPauseStep", stepStartedAt=ago(31)),
        seen((R2, 1, 1), weight=25),
        ["normal StepCompleted", "scale b x4"],
        {"phase": "Progressing", "step": 4, "pauses": [], "stable": "r1"},
    ),
    Case(
        "promotion: all traffic to the new pods, stable Service flipped, old slot later",
        canary_at(4, 25),
        seen((R2, 4, 4), weight=25),
        ["weight 100", "select web->b", "weight 0", "normal RolloutPromoted"],
        {
            "phase": "Healthy",
            "stable": "r2",
            "stableSlot": "b",
            "weight": 0,
            "history": ["Promoted"],
            "scaleDowns": ["a"],
        },
        requeue=30.0,  # scaleDownDelaySeconds
    ),
    # ------------------------------------------------------------------ canary: failures
    Case(
        "step analysis failed: abort, traffic to stable, canary kept for the drain delay",
        canary_at(2, 25, analysisRuns=[run("step3", "step", step=2)]),
        seen((R2, 1, 1), weight=25, analysis={"step3": "Failed"}),
        ["warning RolloutAborted", "weight 0", "select web-canary->a"],
        {
            "phase": "Degraded",
            "abort": "AnalysisFailed",
            "stalled": "AnalysisFailed",
            "weight": 0,
            "history": ["Aborted"],
            "scaleDowns": ["b"],
            "runs": {"step3": "Failed"},
        },
    ),
    Case(
        "step analysis inconclusive: paused for a person",
        canary_at(2, 25, analysisRuns=[run("step3", "step", step=2)]),
        seen((R2, 1, 1), weight=25, analysis={"step3": "Inconclusive"}),
        [],
        {"phase": "Paused", "step": 2, "pauses": ["InconclusiveAnalysis"], "abort": None},
    ),
    Case(
        "background analysis failed during a pause: abort at once",
        canary_at(1, 25, "CanaryPauseStep", analysisRuns=[run("bg", "background")]),
        seen((R2, 1, 1), weight=25, analysis={"bg": "Failed"}),
        ["warning RolloutAborted", "weight 0", "select web-canary->a"],
        {"phase": "Degraded", "abort": "AnalysisFailed", "pauses": [], "runs": {"bg": "Failed"}},
        spec={"steps": STEPS, "router": ISTIO, "background": ANALYSIS},
    ),
    Case(
        "progress deadline passed waiting for canary pods: abort",
        canary_at(0, lastProgressAt=ago(601)),
        seen((R2, 1, 0)),
        ["warning RolloutAborted", "select web-canary->a"],
        {"phase": "Degraded", "abort": "ProgressDeadlineExceeded", "scaleDowns": ["b"]},
    ),
    # ------------------------------------------------------------------ canary: requests
    Case(
        "promote at a pause: the pause is done, the analysis step starts",
        canary_at(1, 25, "CanaryPauseStep"),
        seen((R2, 1, 1), weight=25, request="promote@1"),
        ["normal StepSkipped", "start step", "normal AnalysisStarted"],
        {"phase": "Progressing", "step": 2, "pauses": [], "lastRequest": "promote@1"},
    ),
    Case(
        "promote waives a running analysis",
        canary_at(2, 25, analysisRuns=[run("step3", "step", step=2)]),
        seen((R2, 1, 1), weight=25, request="promote@2"),
        ["stop step3", "normal StepSkipped"],
        {"phase": "Paused", "step": 3, "runs": {"step3": "Successful"}},
    ),
    Case(
        "promote-full skips every remaining step",
        canary_at(1, 25, "CanaryPauseStep"),
        seen((R2, 1, 1), weight=25, request="promote-full@1"),
        ["normal StepSkipped"] * 3 + ["scale b x4"],
        {"phase": "Progressing", "step": 4, "runs": {}, "lastRequest": "promote-full@1"},
    ),
    Case(
        "promote with nothing in flight is ignored",
        HEALTHY,
        seen(services=("a", "a"), request="promote@3"),
        ["normal RequestIgnored"],
        {"phase": "Healthy", "lastRequest": "promote@3"},
        image="web:1",
    ),
    Case(
        "abort by request: traffic to stable first",
        canary_at(1, 25, "CanaryPauseStep"),
        seen((R2, 1, 1), weight=25, request="abort@1"),
        ["warning RolloutAborted", "weight 0", "select web-canary->a"],
        {
            "phase": "Degraded",
            "abort": "AbortedByUser",
            "stalled": "AbortedByUser",
            "pauses": [],
            "weight": 0,
            "scaleDowns": ["b"],
        },
    ),
    Case(
        "retry after an abort: a fresh attempt from step one",
        canary_at(1, 0, abort=aborted("AbortedByUser"), history=[]),
        seen((R2, 1, 1), services=("a", "a"), request="retry@1"),
        [
            "normal Retrying",
            "normal RolloutStarted",
            "weight 25",
            "select web-canary->b",
            "normal StepCompleted",
        ],
        {"phase": "Paused", "abort": None, "attempt": 2, "step": 1, "weight": 25},
    ),
    Case(
        "retry with nothing aborted is ignored",
        canary_at(1, 25, "CanaryPauseStep"),
        seen((R2, 1, 1), weight=25, request="retry@2"),
        ["normal RequestIgnored"],
        {"phase": "Paused", "step": 1, "attempt": 1, "lastRequest": "retry@2"},
    ),
    Case(
        "a request already handled is not acted on twice",
        canary_at(1, 25, "CanaryPauseStep", lastRequest="promote@1"),
        seen((R2, 1, 1), weight=25, request="promote@1"),
        [],
        {"phase": "Paused", "step": 1},
    ),
    Case(
        "pause by request stops before the next step",
        canary_at(0),
        seen((R2, 1, 1), request="pause@1"),
        ["normal Paused"],
        {"phase": "Paused", "step": 0, "weight": 0, "pauses": ["PausedByUser"]},
        requeue=None,
    ),
    Case(
        "resume continues where it stopped",
        canary_at(0, 0, "PausedByUser"),
        seen((R2, 1, 1), request="resume@1"),
        ["normal Resumed", "weight 25", "normal StepCompleted"],
        {"phase": "Paused", "step": 1, "pauses": ["CanaryPauseStep"]},
    ),
    # ------------------------------------------------------------------ canary: revisions
    Case(
        "a new revision mid-rollout supersedes the canary and starts over",
        canary_at(1, 25, "CanaryPauseStep"),
        seen((R2, 1, 1), weight=25),
        ["normal RolloutSuperseded", "weight 0", "normal RolloutStarted", "deploy b r3 x1"],
        {"phase": "Progressing", "current": "r3", "step": 0, "history": ["Superseded"]},
        image="web:3",
    ),
    Case(
        "reverting to the stable revision ends the rollout at once",
        canary_at(1, 25, "CanaryPauseStep"),
        seen((R2, 1, 1), weight=25),
        ["normal RolloutSuperseded", "weight 0", "select web-canary->a"],
        {"phase": "Healthy", "current": "r1", "scaleDowns": ["b"], "history": ["Superseded"]},
        image="web:1",
    ),
    # ------------------------------------------------------------------ canary: the router
    Case(
        "router broken: nothing moves, Stalled, one Warning; the request waits",
        canary_at(1, 25, "CanaryPauseStep"),
        seen((R2, 1, 1), weight=None, routing_error=BROKEN, request="promote@1"),
        ["warning RoutingError"],
        {"phase": "Degraded", "stalled": "RoutingError", "step": 1, "lastRequest": None},
        requeue=None,  # the operator backs off
    ),
    Case(
        "router still broken with the same error: no second Warning",
        canary_at(1, 25, "CanaryPauseStep", conditions=ROUTING_STALLED),
        seen((R2, 1, 1), weight=None, routing_error=BROKEN),
        [],
        {"phase": "Degraded", "stalled": "RoutingError", "weight": 25},
    ),
    Case(
        "router works again: condition cleared, said with an Event",
        canary_at(1, 25, "CanaryPauseStep", conditions=ROUTING_STALLED),
        seen((R2, 1, 1), weight=25),
        ["normal RoutingRecovered"],
        {"phase": "Paused", "stalled": None, "step": 1},
    ),
    # ------------------------------------------------------------------ blue-green
    Case(
        "blue-green new revision: a full preview beside the active pods",
        {**HEALTHY, "currentStepIndex": None},
        seen(services=("a", "a"), preview=True),
        ["normal RolloutStarted", "deploy b r2 x4", "select web-preview->b"],
        {"phase": "Progressing", "current": "r2", "stable": "r1"},
        spec=bg(),
    ),
    Case(
        "blue-green preview ready: pre-promotion analysis starts, no switch yet",
        BG_PREVIEW,
        READY_PREVIEW,
        ["start prePromotion", "normal AnalysisStarted"],
        {"phase": "Progressing", "stable": "r1", "runs": {"pre": "Pending"}},
        spec=bg(prePromotionAnalysis=ANALYSIS),
    ),
    Case(
        "blue-green pre-promotion passed: the active Service switches",
        {**BG_PREVIEW, "analysisRuns": [run("pre", "prePromotion")]},
        seen((R2, 4, 4), services=("a", "b"), preview=True, analysis={"pre": "Successful"}),
        ["select web->b", "normal RolloutPromoted"],
        {"phase": "Healthy", "stable": "r2", "stableSlot": "b", "scaleDowns": ["a"]},
        spec=bg(prePromotionAnalysis=ANALYSIS),
    ),
    Case(
        "blue-green pre-promotion failed: abort, the active Service never moved",
        {**BG_PREVIEW, "analysisRuns": [run("pre", "prePromotion")]},
        seen((R2, 4, 4), services=("a", "b"), preview=True, analysis={"pre": "Failed"}),
        ["warning RolloutAborted"],
        {"phase": "Degraded", "abort": "AnalysisFailed", "stable": "r1", "stableSlot": "a"},
        spec=bg(prePromotionAnalysis=ANALYSIS),
    ),
    Case(
        "blue-green without auto-promotion waits for a person",
        BG_PREVIEW,
        READY_PREVIEW,
        [],
        {"phase": "Paused", "pauses": ["BlueGreenPause"], "stable": "r1"},
        spec=bg(autoPromotionEnabled=False),
    ),
    Case(
        "blue-green promote by request switches",
        {**BG_PREVIEW, "pauseConditions": [{"reason": "BlueGreenPause", "startTime": ago(5)}]},
        seen((R2, 4, 4), services=("a", "b"), preview=True, request="promote@1"),
        ["select web->b", "normal RolloutPromoted"],
        {"phase": "Healthy", "stable": "r2", "pauses": []},
        spec=bg(autoPromotionEnabled=False),
    ),
    Case(
        "blue-green post-promotion failed: switch back to the old pods, still running",
        {
            "stableSlot": "b",
            "stableRevision": R2,
            "currentRevision": R2,
            "attempt": 1,
            "promotedAt": ago(10),
            "analysisRuns": [run("post", "postPromotion")],
        },
        seen((R2, 4, 4), services=("b", "b"), preview=True, analysis={"post": "Failed"}),
        ["warning RolloutAborted", "select web->a"],
        {"phase": "Degraded", "abort": "AnalysisFailed", "stable": "r1", "stableSlot": "a"},
        spec=bg(postPromotionAnalysis=ANALYSIS),
    ),
    Case(
        "blue-green post-promotion passed: the old slot goes after the delay",
        {
            "stableSlot": "b",
            "stableRevision": R2,
            "currentRevision": R2,
            "attempt": 1,
            "promotedAt": ago(10),
            "analysisRuns": [run("post", "postPromotion")],
        },
        seen((R2, 4, 4), services=("b", "b"), preview=True, analysis={"post": "Successful"}),
        [],
        {"phase": "Healthy", "stable": "r2", "history": ["Promoted"], "scaleDowns": ["a"]},
        spec=bg(postPromotionAnalysis=ANALYSIS),
    ),
]


def rollout_for(case: Case) -> Any:
    spec = dict(case.spec)
    doc = rollout_doc(image=case.image, **spec)
    if case.status is not None:
        doc["status"] = case.status
    return parse_rollout(doc)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide(case: Case) -> None:
    plan = decide(rollout_for(case), case.observed, NOW)
    assert [render(a) for a in plan.actions] == case.actions
    got = facts(plan.status)
    assert {k: got[k] for k in case.expect} == case.expect
    if case.requeue is not ANY:
        assert plan.requeue_after == case.requeue


def test_every_row_is_a_different_situation() -> None:
    """Rows are told apart by their inputs, so a copied row that checks nothing new stands out."""
    keys = [(repr(c.status), repr(c.observed), c.image, repr(c.spec)) for c in CASES]
    assert len(set(keys)) == len(keys)
