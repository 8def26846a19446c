"""An invalid spec stalls the Rollout with the field named, and says so once."""

from __future__ import annotations

from datetime import UTC, datetime

from rollouts.engine import EmitEvent, decide_invalid

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_invalid_spec_stalls_with_the_message() -> None:
    problems = ["spec.strategy.canary.steps[2].setWeight: must be between 0 and 100"]
    plan = decide_invalid(None, 3, problems, NOW)
    st = plan.status
    conds = {c.type: c for c in st.conditions}
    assert st.phase == "Degraded" and st.observed_generation == 3
    assert conds["Stalled"].status == "True" and conds["Stalled"].reason == "InvalidSpec"
    assert problems[0] in conds["Stalled"].message
    assert conds["Ready"].status == "False"
    assert plan.actions == (EmitEvent("Warning", "InvalidSpec", st.message),)
    again = decide_invalid(st, 3, problems, NOW)
    assert again.actions == ()  # no event storm on every reconcile
    assert again.status.conditions == st.conditions
