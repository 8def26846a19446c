"""Invariants of the engine under random sequences of time, readiness, verdicts and requests."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollouts.engine import decide
from rollouts.engine.plan import AnalysisPhase
from rollouts.reconcile import observe
from tests.support.rollouts import ISTIO, Harness, rollout_doc

STEP = st.one_of(
    st.builds(lambda w: {"setWeight": w}, st.integers(0, 100)),
    st.builds(lambda d: {"pause": {"duration": f"{d}s"}}, st.integers(0, 120)),
    st.just({"pause": {}}),
    st.just({"analysis": {"templates": [{"templateName": "error-rate"}]}}),
)
OP = st.one_of(
    st.tuples(st.just("tick"), st.integers(1, 90)),
    st.tuples(
        st.just("request"),
        st.sampled_from(["promote", "promote-full", "abort", "retry", "pause", "resume"]),
    ),
    st.tuples(st.just("update"), st.sampled_from(["web:1", "web:2", "web:3"])),
)
VERDICT = st.sampled_from(["Successful", "Failed", "Inconclusive", "Error"])
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def play(
    steps: list[dict[str, Any]],
    ops: list[tuple[str, Any]],
    verdict: AnalysisPhase,
    routed: bool,
    check: Any,
) -> Harness:
    h = Harness(
        rollout_doc(steps=steps, router=ISTIO if routed else None, replicas=3),
        outcomes={"*": verdict},
        analysis_seconds=20,
    )
    h.stable()
    h.update("web:2")
    check(h, None)
    for kind, arg in ops:
        if kind == "tick":
            h.run(arg, every=5)
        elif kind == "request":
            before = h.rollout
            h.reconcile(arg)
            check(h, (before, arg))
            continue
        else:
            h.update(arg)
            h.reconcile()
        check(h, None)
    return h


@SETTINGS
@given(st.lists(STEP, min_size=1, max_size=6), st.lists(OP, max_size=15), VERDICT, st.booleans())
def test_weight_never_rises_after_an_abort(
    steps: list[dict[str, Any]], ops: list[tuple[str, Any]], verdict: AnalysisPhase, routed: bool
) -> None:
    state: dict[str, Any] = {"aborted_rev": None}

    def check(h: Harness, _: Any) -> None:
        s = h.status
        aborted = s.abort is not None and s.abort.revision == s.current_revision
        if aborted:
            assert s.weights.canary == 0
            if routed:
                assert h.router.weight == 0
            if state["aborted_rev"] == s.current_revision:
                assert h.services()["web"] == h.status.stable_slot
            state["aborted_rev"] = s.current_revision
        else:
            state["aborted_rev"] = None

    play(steps, ops, verdict, routed, check)


@SETTINGS
@given(st.lists(STEP, min_size=1, max_size=6), st.lists(OP, max_size=15), VERDICT, st.booleans())
def test_never_healthy_while_a_canary_receives_traffic(
    steps: list[dict[str, Any]], ops: list[tuple[str, Any]], verdict: AnalysisPhase, routed: bool
) -> None:
    def check(h: Harness, _: Any) -> None:
        if h.status.phase != "Healthy":
            return
        assert h.status.weights.canary == 0
        assert h.status.current_revision == h.status.stable_revision
        if routed:
            assert h.router.weight == 0
        stable = h.status.stable_slot
        assert h.services() == {"web": stable, "web-canary": stable}

    play(steps, ops, verdict, routed, check)


@SETTINGS
@given(
    st.lists(STEP, min_size=1, max_size=6),
    st.lists(
        st.one_of(
            st.tuples(st.just("tick"), st.integers(1, 90)),
            st.tuples(st.just("request"), st.sampled_from(["pause", "resume", "retry"])),
        ),
        max_size=15,
    ),
    st.booleans(),
)
def test_failed_analysis_is_never_promoted(
    steps: list[dict[str, Any]], ops: list[tuple[str, Any]], routed: bool
) -> None:
    """Without a person's promote, a revision whose analysis fails never becomes stable."""
    steps = [*steps, {"analysis": {"templates": [{"templateName": "error-rate"}]}}]

    def check(h: Harness, _: Any) -> None:
        assert h.status.stable_slot == "a"
        assert not any(e.outcome == "Promoted" for e in h.status.history)

    play(steps, ops, "Failed", routed, check)


@SETTINGS
@given(st.lists(STEP, min_size=1, max_size=6), st.lists(OP, max_size=10), VERDICT, st.booleans())
def test_decide_is_deterministic(
    steps: list[dict[str, Any]], ops: list[tuple[str, Any]], verdict: AnalysisPhase, routed: bool
) -> None:
    def check(h: Harness, _: Any) -> None:
        obs = observe(h.rollout, h.ports)
        assert decide(h.rollout, obs, h.now) == decide(h.rollout, obs, h.now)

    play(steps, ops, verdict, routed, check)
