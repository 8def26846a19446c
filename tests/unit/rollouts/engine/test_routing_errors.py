"""A broken traffic router holds the Rollout and says so: decide alone, then through the reconcile
the operator and the simulator share, with the in-memory router made to fail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rollouts.api.rollout import RolloutStatus
from rollouts.engine import EmitEvent, Observed, Request, SetWeight, SlotObservation, decide
from rollouts.engine.pauses import waits_for_person
from rollouts.engine.routing_hold import stalled_on_router
from tests.support.rollouts import ISTIO, Harness, rollout_doc

BROKEN = 'VirtualService ns/web: no http route named "primary" (named routes: "api")'
STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {"duration": "1m"}},
    {"setWeight": 50},
    {"pause": {}},
]


def conditions(st: RolloutStatus) -> dict[str, tuple[str, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in st.conditions}


def at_first_pause() -> Harness:
    """Mid-rollout: weight 25 set, in the timed pause of step 2."""
    h = Harness(rollout_doc(steps=STEPS, router=ISTIO))
    h.stable()
    h.update("web:2")
    h.until(lambda h: h.router.weight == 25 and h.status.phase == "Paused")
    return h


def warnings(h: Harness) -> list[tuple[str, str]]:
    events = h.cluster.events.get(("ns", "web"), [])
    return [(e.reason, e.message) for e in events if e.type == "Warning"]


def test_decide_with_a_routing_error_plans_only_a_warning_and_keeps_status() -> None:
    h = at_first_pause()
    before = h.status.model_copy(deep=True)
    observed = Observed(
        slots={
            "a": SlotObservation(before.stable_revision, 4, 4),
            "b": SlotObservation(before.current_revision, 1, 1),
        },
        routing_error=BROKEN,
        request=Request("promote", "promote@1"),
    )
    plan = decide(h.rollout, observed, h.now + timedelta(minutes=5))  # the pause has ended
    assert plan.actions == (EmitEvent("Warning", "RoutingError", BROKEN),)
    st = plan.status
    assert st.phase == "Degraded"
    status, reason, message = conditions(st)["Stalled"]
    assert (status, reason) == ("True", "RoutingError")
    assert "VirtualService ns/web" in message and '"primary"' in message
    assert conditions(st)["Reconciling"][0] == "False"
    assert conditions(st)["Ready"][0] == "False"
    # nothing moved on: not the step, not the weights, not the request (it waits)
    assert st.current_step_index == before.current_step_index == 1
    assert (st.weights.canary, st.weights.stable) == (25, 75)
    assert st.last_request == before.last_request
    assert st.stable_revision == before.stable_revision
    assert st.message == message


def test_the_same_error_is_announced_once_and_a_new_one_again() -> None:
    h = at_first_pause()
    h.router.error = BROKEN
    for _ in range(3):
        h.t += 5
        h.reconcile()
    assert warnings(h) == [("RoutingError", BROKEN)]
    other = "VirtualService ns/web not found (networking.istio.io/v1beta1)"
    h.router.error = other
    h.t += 5
    h.reconcile()
    assert warnings(h) == [("RoutingError", BROKEN), ("RoutingError", other)]
    assert other in conditions(h.status)["Stalled"][2]


def test_broken_read_holds_weights_and_steps_until_the_router_works() -> None:
    h = at_first_pause()
    h.router.error = BROKEN
    history = list(h.router.history)
    h.run(600, every=10)  # the 1m pause would have ended long ago
    assert h.status.current_step_index == 1
    assert h.router.history == history and h.router.weight == 25
    assert stalled_on_router(h.status)
    # a promote sent meanwhile is not consumed: the operator keeps it in its annotation
    promote = h.sim.request("promote")
    h.sim.step(promote)
    assert h.status.last_request != promote.id and h.status.current_step_index == 1
    h.router.error = None
    h.t += 1
    h.sim.step(promote)
    assert h.status.last_request == promote.id
    assert not stalled_on_router(h.status)
    assert conditions(h.status)["Stalled"][0] == "False"
    assert "RoutingRecovered" in h.events()
    h.until(lambda h: h.router.weight == 50)
    assert h.status.current_step_index is not None and h.status.current_step_index >= 3


def test_broken_write_keeps_the_status_of_before_the_failed_plan() -> None:
    h = at_first_pause()
    before = h.status.model_copy(deep=True)
    h.router.write_error = BROKEN
    h.t += 61  # the pause ends and step 3 (setWeight 50) wants the router
    h.until(lambda h: h.status.phase == "Degraded", limit=120)
    st = h.status
    assert conditions(st)["Stalled"][:2] == ("True", "RoutingError")
    assert h.router.weight == 25  # the write never happened
    # the failed plan's status (step advanced to the weight it could not set) was not kept
    assert st.weights.canary == 25
    assert st.current_step_index is not None and st.current_step_index <= 2
    assert st.stable_revision == before.stable_revision
    assert ("RoutingError", BROKEN) in warnings(h)
    h.router.write_error = None
    h.until(lambda h: h.router.weight == 50, limit=120)
    assert not stalled_on_router(h.status)


def test_first_revision_waits_for_the_router() -> None:
    h = Harness(rollout_doc(steps=STEPS, router=ISTIO))
    h.router.error = BROKEN
    plan = h.reconcile()
    assert not any(isinstance(a, SetWeight) for a in plan.actions)
    assert h.status.phase == "Degraded" and h.status.stable_revision is None
    assert h.cluster.slots.get(("ns", "web"), {}) == {}  # nothing deployed yet
    h.router.error = None
    h.stable()
    assert h.router.weight == 0 and h.status.stable_revision is not None


def test_no_router_no_routing_error() -> None:
    h = Harness(rollout_doc(steps=STEPS))  # replica ratio: the router is never asked
    h.router.error = BROKEN
    h.stable()
    assert not stalled_on_router(h.status)


def test_a_stalled_pause_for_a_person_waits_for_the_fix_first() -> None:
    """``sluice status`` and ``sluice get`` must not ask for a promote that cannot be carried out."""
    h = Harness(rollout_doc(steps=[{"setWeight": 25}, {"pause": {}}], router=ISTIO))
    h.stable()
    h.update("web:2")
    h.until(lambda h: h.status.phase == "Paused")
    assert waits_for_person(h.rollout)
    h.router.error = BROKEN
    h.t += 1
    h.reconcile()
    assert [p.reason for p in h.status.pause_conditions] == ["CanaryPauseStep"]  # held
    assert not waits_for_person(h.rollout)
    h.router.error = None
    h.t += 1
    h.reconcile()
    assert waits_for_person(h.rollout)
