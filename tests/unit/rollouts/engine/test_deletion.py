"""Deleting a Rollout: traffic back to stable before anything else, managed routes removed, the
canary slot deleted, the stable slot released and left running; an invalid or never-stable
Rollout keeps both slots. Applied through the in-memory ports, as the finalizer applies them."""

from __future__ import annotations

from rollouts.api.validation import parse_rollout
from rollouts.engine import (
    DeleteSlot,
    EmitEvent,
    ReleaseSlot,
    RemoveManagedRoutes,
    SetServiceSelector,
    SetWeight,
    deletion_actions,
)
from rollouts.engine.context import services_of
from rollouts.reconcile import Ports, apply_actions
from tests.support.rollouts import ISTIO, Harness, rollout_doc


def mid_canary() -> Harness:
    h = Harness(rollout_doc(steps=[{"setWeight": 50}, {"pause": {}}], router=ISTIO))
    h.stable()
    h.update("web:2")
    h.until(lambda h: h.status.phase == "Paused")
    return h


def test_traffic_goes_back_to_stable_first_and_the_stable_slot_is_released() -> None:
    h = mid_canary()
    st = h.status
    assert st.stable_slot is not None and st.weights.canary == 50
    stable, canary = st.stable_slot, "b" if st.stable_slot == "a" else "a"
    actions = deletion_actions(h.rollout, services_of(h.rollout))
    assert actions[0] == SetWeight(0)  # before any slot is touched
    assert actions[1] == RemoveManagedRoutes()
    assert set(actions[2:4]) == {
        SetServiceSelector("web", stable),
        SetServiceSelector("web-canary", stable),
    }
    assert actions[4:6] == (ReleaseSlot(stable), DeleteSlot(canary))
    assert isinstance(actions[6], EmitEvent) and "left running" in actions[6].message

    sim = h.sim
    apply_actions(h.rollout, actions, Ports(sim.cluster, sim.router, sim.verdicts))
    slots = sim.cluster.slots[sim.cluster.key(h.rollout)]
    assert set(slots) == {stable} and not slots[stable].owned
    assert sim.router.weight == 0
    assert set(sim.cluster.services[sim.cluster.key(h.rollout)].values()) == {stable}


def test_invalid_or_never_stable_rollouts_keep_both_slots() -> None:
    assert deletion_actions(None, [])[:2] == (ReleaseSlot("a"), ReleaseSlot("b"))
    fresh = parse_rollout(rollout_doc())
    actions = deletion_actions(fresh, services_of(fresh))
    assert actions[:2] == (ReleaseSlot("a"), ReleaseSlot("b"))
    assert not any(isinstance(a, (DeleteSlot, SetWeight)) for a in actions)
