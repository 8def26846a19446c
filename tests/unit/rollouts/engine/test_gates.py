"""Gates in the engine, through the simulator's reconcile with a scripted gate probe: a closed
gate pauses with WaitingForGate and its last answer, an open one moves on, promote passes a
closed one, and the probe backs off while the gate stays closed."""

from __future__ import annotations

from typing import Any

from rollouts.api.rollout import RolloutStatus
from rollouts.api.validation import parse_rollout
from rollouts.engine.conditions import waiting_message
from rollouts.engine.gates import current_gate
from rollouts.verdicts.gates import MAX_BACKOFF, ScriptedGateProbe, next_wait
from tests.support.rollouts import ISTIO, Harness, rollout_doc

GATE = "http://gate.test/confirm"
STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"gate": {"url": GATE, "interval": "10s"}},
    {"setWeight": 50},
]


def started(doc: dict[str, Any], opens_at: float | None = None) -> Harness:
    h = Harness(doc)
    h.stable()
    if opens_at is not None:
        h.sim.gates.opens_at[GATE] = h.sim.now.timestamp() + opens_at
    h.update("web:2")
    return h


def test_a_closed_gate_pauses_with_its_last_answer_then_opens_and_moves_on() -> None:
    h = started(rollout_doc(steps=STEPS, router=ISTIO), opens_at=120)
    h.until(lambda h: h.status.phase == "Paused")
    assert [p.reason for p in h.status.pause_conditions] == ["WaitingForGate"]
    assert h.status.gate is not None and h.status.gate.state == "Waiting"
    # the gate became current in this reconcile: the next one asks it (within a second)
    assert h.status.message == f"waiting for gate {GATE} (last answer: not asked yet)"
    h.run(1)
    assert h.status.message == f"waiting for gate {GATE} (last answer: HTTP 403)"
    assert h.status.current_step_index == 1
    assert h.router.weight == 25
    h.run(60, every=5)
    assert h.status.current_step_index == 1  # still closed
    h.until(lambda h: h.status.current_step_index == 2)
    assert h.status.gate is not None and h.status.gate.state == "Open"
    assert h.status.gate.answer == "HTTP 200"
    reasons = h.events()
    assert reasons.count("WaitingForGate") == 1 and reasons.count("GateOpened") == 1
    h.until(lambda h: h.status.phase == "Healthy")


def test_promote_passes_a_closed_gate() -> None:
    h = started(rollout_doc(steps=STEPS, router=ISTIO))
    h.until(lambda h: h.status.phase == "Paused")
    h.reconcile("promote")
    assert h.status.current_step_index == 2
    assert "WaitingForGate" not in [p.reason for p in h.status.pause_conditions]
    h.until(lambda h: h.status.phase == "Healthy")


def test_the_probe_backs_off_while_closed_and_is_not_asked_every_reconcile() -> None:
    h = started(rollout_doc(steps=STEPS, router=ISTIO), opens_at=float("inf"))
    h.until(lambda h: h.status.phase == "Paused")
    before = h.sim.gates.checks
    h.run(300, every=1)  # 300 reconciles
    # 10s, 20s, 40s, then every 40s: 9 checks in 300 s, far fewer than 300
    assert 6 <= h.sim.gates.checks - before <= 10
    assert h.status.current_step_index == 1


def test_blue_green_waits_for_its_pre_promotion_gate() -> None:
    doc = rollout_doc(blue_green={"prePromotionGate": {"url": GATE, "interval": "5s"}})
    h = started(doc, opens_at=90)
    h.until(lambda h: h.status.phase == "Paused")
    assert [p.reason for p in h.status.pause_conditions] == ["WaitingForGate"]
    assert h.status.stable_revision != h.status.current_revision
    h.until(lambda h: h.status.phase == "Healthy")
    assert h.status.stable_revision == h.status.current_revision
    assert h.t >= 90


def test_blue_green_promote_passes_a_closed_gate() -> None:
    doc = rollout_doc(blue_green={"prePromotionGate": {"url": GATE}})
    h = started(doc)
    h.until(lambda h: h.status.phase == "Paused")
    h.reconcile("promote")
    h.until(lambda h: h.status.phase == "Healthy")
    assert h.status.stable_revision == h.status.current_revision


def test_current_gate_is_only_the_in_flight_step() -> None:
    h = started(rollout_doc(steps=STEPS, router=ISTIO))
    assert current_gate(h.rollout) is None  # step 0 is setWeight
    h.until(lambda h: h.status.current_step_index == 1)
    gate = current_gate(h.rollout)
    assert gate is not None and gate.url == GATE
    stable = parse_rollout(rollout_doc(steps=STEPS))
    assert current_gate(stable) is None


def test_backoff_doubles_to_four_intervals_and_at_most_five_minutes() -> None:
    assert [next_wait(10, n) for n in range(1, 6)] == [10, 20, 40, 40, 40]
    assert next_wait(200, 5) == MAX_BACKOFF


def test_an_unscripted_gate_answers_closed() -> None:
    probe = ScriptedGateProbe({}, lambda: 0.0)
    canary = parse_rollout(rollout_doc(steps=STEPS)).canary
    assert canary is not None and canary.steps[1].gate is not None
    assert probe.check(canary.steps[1].gate) == (False, "HTTP 403")


def test_waiting_message_without_a_gate_status() -> None:
    assert waiting_message(RolloutStatus()) == "waiting for a gate to open"
