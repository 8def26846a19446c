"""Transitions derived from status before/after, and recorded so none is announced twice."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rollouts.api.rollout import PauseCondition, Rollout
from rollouts.cli.simulate import load_rollout, load_templates
from rollouts.notifications.transitions import announce, transitions
from rollouts.simulator.simulation import SimOptions, Simulation
from simulations.simulated_provider import SCENARIOS

EXAMPLES = Path(__file__).parents[4] / "deploy" / "examples"
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def run(example: str, opts: SimOptions) -> Simulation:
    sim = Simulation(load_rollout(EXAMPLES / example), opts)
    sim.run()
    return sim


def test_a_canary_announces_start_each_step_promotion_and_healthy() -> None:
    sim = run("getting-started.yaml", SimOptions(promote=True))
    events = [n.event for n in sim.notifier.notices]
    assert events == [
        "Healthy",  # the first revision
        "Progressing",
        "StepCompleted",
        "StepCompleted",
        "StepCompleted",
        "Paused",  # step 4 waits for a person
        "StepCompleted",
        "Promoted",
        "Healthy",
    ]
    paused = sim.notifier.notices[5]
    assert paused.step == 4 and "sluice promote web -n demo" in paused.body
    revisions = {n.revision for n in sim.notifier.notices[1:]}
    assert len(revisions) == 1  # the update's revision throughout
    # every notice is recorded in status, in order
    st = sim.rollout.status
    assert st is not None and st.notifications is not None
    assert [r.event for r in st.notifications.sent] == events


def test_timed_pauses_do_not_announce_a_person_is_needed() -> None:
    sim = run("canary-istio.yaml", SimOptions())
    assert "Paused" not in [n.event for n in sim.notifier.notices]
    assert [n.event for n in sim.notifier.notices][-2:] == ["Promoted", "Healthy"]


def test_an_abort_carries_the_deciding_metric_and_its_evidence() -> None:
    opts = SimOptions(
        scenario=SCENARIOS["error-regression"],
        templates=tuple(load_templates([EXAMPLES / "canary-analysis.yaml"])),
    )
    sim = run("canary-analysis.yaml", opts)
    [aborted] = [n for n in sim.notifier.notices if n.event == "Aborted"]
    assert aborted.level == "failure"
    st = sim.rollout.status
    assert st is not None and st.abort is not None and st.abort.metric == "error-rate"
    line = next(x for x in aborted.body.splitlines() if x.startswith("Metric error-rate:"))
    for part in ("estimate", "interval [", "e-value", "against threshold", "events"):
        assert part in line, line
    assert "Promoted" not in [n.event for n in sim.notifier.notices]


def test_a_restarted_controller_announces_nothing_again() -> None:
    """The status written records the notices: reading it back, nothing is new, and a transition
    seen a second time (Healthy after a Degraded blip) is not announced again."""
    sim = run("bluegreen.yaml", SimOptions())
    rollout: Rollout = sim.rollout
    st = rollout.status
    assert st is not None and st.phase == "Healthy"
    assert announce(rollout, st, NOW) == (st, [])  # restart: before == after
    blip = rollout.model_copy(update={"status": st.model_copy(update={"phase": "Degraded"})})
    assert [n.event for n in transitions(blip, blip.status, st, NOW)] == ["Healthy"]
    assert announce(blip, st, NOW)[1] == []  # derived again, but already sent


def test_a_gate_pause_is_announced_as_waiting_for_a_gate() -> None:
    """Gates pause with their own reason (``WaitingForGate``); any reason naming a gate is one."""
    sim = run("canary-istio.yaml", SimOptions())
    rollout = sim.rollout
    st = rollout.status
    assert st is not None
    gate = PauseCondition.model_construct(reason="WaitingForGate", start_time=NOW)  # type: ignore[arg-type]
    after = st.model_copy(update={"pause_conditions": [gate]})
    [notice] = transitions(rollout, st, after, NOW)
    assert notice.event == "WaitingForGate" and "WaitingForGate" in notice.body


def test_no_status_change_no_notice() -> None:
    sim = run("canary-no-mesh.yaml", SimOptions(set_image="web:9"))
    st = sim.rollout.status
    assert st is not None
    assert transitions(sim.rollout, st, st, NOW) == []
