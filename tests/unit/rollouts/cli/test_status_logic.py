"""``sluice status``'s decision on hand-built Rollouts, and the lines it prints meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rollouts.cli.status import (
    DEGRADED,
    HEALTHY,
    WAITS_FOR_PERSON,
    progress_key,
    progress_line,
    read_status,
)
from tests.support.rollouts import rollout_doc

T0 = "2025-03-01T10:00:00Z"


def doc(
    status: dict[str, Any] | None,
    *,
    generation: int = 2,
    steps: list[dict[str, Any]] | None = None,
    blue_green: dict[str, Any] | None = None,
) -> dict[str, Any]:
    d = rollout_doc(
        steps=steps if steps is not None else [{"setWeight": 25}, {"pause": {}}],
        blue_green=blue_green,
    )
    d["metadata"]["generation"] = generation
    if status is not None:
        d["status"] = status
    return d


def st(phase: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "observedGeneration": 2,
        "phase": phase,
        "message": kw.pop("message", ""),
        "currentRevision": "r2",
        "stableRevision": "r2",
    }
    base.update(kw)
    return base


def pause(reason: str) -> dict[str, Any]:
    return {"reason": reason, "startTime": T0}


def test_healthy_with_nothing_in_flight_is_0() -> None:
    d = read_status(doc(st("Healthy", message="revision r2 is stable")))
    assert d.code == HEALTHY
    assert d.text == "rollout ns/web is Healthy: revision r2 is stable"


def test_healthy_but_a_new_revision_in_flight_is_not_done() -> None:
    assert read_status(doc(st("Healthy", currentRevision="r3"))).code is None


def test_the_old_revisions_healthy_before_the_controller_saw_the_new_spec_is_not_done() -> None:
    """Right after kubectl apply: generation 3, the status still about generation 2."""
    d = read_status(doc(st("Healthy"), generation=3))
    assert d.code is None and d.stale
    assert "observe generation 3" in d.text
    assert not read_status(doc(st("Progressing", currentRevision="r3"))).stale


def test_an_old_degraded_before_the_controller_saw_the_fix_is_not_final_either() -> None:
    assert read_status(doc(st("Degraded", message="aborted: x"), generation=3)).code is None


def test_a_status_without_observed_generation_is_not_trusted() -> None:
    s = st("Healthy")
    del s["observedGeneration"]
    assert read_status(doc(s)).code is None


def test_a_controller_ahead_of_the_client_counts() -> None:
    assert read_status(doc(st("Healthy", observedGeneration=5), generation=4)).code == HEALTHY


def test_no_status_yet_waits() -> None:
    d = read_status(doc(None))
    assert d.code is None and d.stale
    assert "waiting for the controller" in d.text


def test_degraded_is_1_with_the_abort_message() -> None:
    d = read_status(doc(st("Degraded", message="aborted: analysis web-2 failed: error-rate")))
    assert d.code == DEGRADED
    assert d.text.endswith("is Degraded: aborted: analysis web-2 failed: error-rate")


def test_invalid_spec_is_degraded_even_though_the_doc_no_longer_parses() -> None:
    d = doc(st("Degraded", message="invalid spec: spec.strategy: must set exactly one"))
    d["spec"]["strategy"]["blueGreen"] = {"activeService": "a", "previewService": "b"}
    out = read_status(d)
    assert out.code == DEGRADED
    assert "invalid spec" in out.text


def test_progressing_waits() -> None:
    assert read_status(doc(st("Progressing", currentRevision="r3", step="1/2"))).code is None


@pytest.mark.parametrize(
    ("steps", "index", "expected"),
    [
        ([{"setWeight": 25}, {"pause": {}}], 1, WAITS_FOR_PERSON),  # pause with no duration
        ([{"setWeight": 25}, {"pause": {"duration": "1m"}}], 1, None),  # ends by itself
    ],
)
def test_canary_pause_step(steps: list[dict[str, Any]], index: int, expected: int | None) -> None:
    s = st(
        "Paused",
        currentRevision="r3",
        currentStepIndex=index,
        pauseConditions=[pause("CanaryPauseStep")],
    )
    assert read_status(doc(s, steps=steps)).code == expected


@pytest.mark.parametrize("reason", ["PausedByUser", "InconclusiveAnalysis"])
def test_pauses_only_a_person_ends(reason: str) -> None:
    s = st("Paused", currentRevision="r3", currentStepIndex=0, pauseConditions=[pause(reason)])
    d = read_status(doc(s, steps=[{"pause": {"duration": "1m"}}]))
    assert d.code == WAITS_FOR_PERSON
    assert "waiting for a person: promote, resume or abort" in d.text


@pytest.mark.parametrize(("auto", "expected"), [(False, WAITS_FOR_PERSON), (True, None)])
def test_blue_green_preview_pause(auto: bool, expected: int | None) -> None:
    s = st("Paused", currentRevision="r3", pauseConditions=[pause("BlueGreenPause")])
    assert read_status(doc(s, blue_green={"autoPromotionEnabled": auto})).code == expected


def test_unparseable_doc_falls_back_to_the_pause_reasons() -> None:
    """A status field this CLI does not know (a newer controller): the reasons still decide."""
    for reason, expected in [("PausedByUser", WAITS_FOR_PERSON), ("CanaryPauseStep", None)]:
        s = st("Paused", currentRevision="r3", pauseConditions=[pause(reason)], fromTheFuture=1)
        assert read_status(doc(s)).code == expected, reason


def test_progress_line_and_what_makes_a_new_one() -> None:
    s = st(
        "Progressing",
        currentRevision="r3",
        step="1/4",
        weights={"canary": 25, "stable": 75},
        message="rolling out revision r3",
    )
    line = progress_line(doc(s), now=datetime(2025, 3, 1, 10, 4, 5, tzinfo=UTC))
    assert line.split() == [
        "10:04:05",
        "Progressing",
        "step",
        "1/4",
        "canary",
        "25%",
        "rolling",
        "out",
        "revision",
        "r3",
    ]
    same = dict(s, lastProgressAt=T0)  # a field the line does not show
    assert progress_key(doc(s)) == progress_key(doc(same))
    for change in ({"phase": "Paused"}, {"step": "2/4"}, {"message": "other"}):
        assert progress_key(doc(dict(s, **change))) != progress_key(doc(s)), change
    assert progress_key(doc(dict(s, weights={"canary": 50}))) != progress_key(doc(s))


def test_a_request_the_controller_has_not_handled_yet_means_wait() -> None:
    """``sluice abort --no-wait`` then ``sluice status``: the Paused seen is about to change."""
    s = st(
        "Paused", currentRevision="r3", currentStepIndex=1, pauseConditions=[pause("PausedByUser")]
    )
    d = doc(s)
    d["metadata"]["annotations"] = {"sluice.dev/request": "abort@x1"}
    waiting = read_status(d)
    assert waiting.code is None and waiting.stale
    assert "handle sluice.dev/request=abort@x1" in waiting.text
    s["lastRequest"] = "abort@x1"  # handled; the annotation's removal is still on its way
    assert read_status(doc(s) | {"metadata": d["metadata"]}).code == WAITS_FOR_PERSON


def test_a_request_on_an_invalid_spec_does_not_hold_up_the_verdict() -> None:
    """The controller acts on no request while the spec is invalid: waiting for it would only
    end in the timeout, so the Degraded/InvalidSpec verdict stands."""
    stalled = {
        "type": "Stalled",
        "status": "True",
        "reason": "InvalidSpec",
        "message": "spec.replicaz: is not a known field",
        "lastTransitionTime": T0,
    }
    d = doc(st("Degraded", message="spec.replicaz: is not a known field", conditions=[stalled]))
    d["metadata"]["annotations"] = {"sluice.dev/request": "retry@x2"}
    assert read_status(d).code == DEGRADED
    stalled["reason"] = "AnalysisFailed"  # an abort: the retry will be acted on, so wait
    assert read_status(d).code is None


def test_a_request_waiting_on_a_broken_router_does_not_hold_up_the_verdict() -> None:
    """A request waits in its annotation while the traffic router fails: a pipeline must learn
    the Rollout is stuck (Degraded, exit 1), not wait out its timeout."""
    message = 'traffic router failed: VirtualService ns/web: no http route named "primary"'
    stalled = {
        "type": "Stalled",
        "status": "True",
        "reason": "RoutingError",
        "message": message,
        "lastTransitionTime": T0,
    }
    d = doc(st("Degraded", message=message, conditions=[stalled]))
    d["metadata"]["annotations"] = {"sluice.dev/request": "promote@x3"}
    out = read_status(d)
    assert out.code == DEGRADED
    assert 'no http route named "primary"' in out.text
