"""Which pauses only a person can end.

The simulator stops there (or answers with ``--promote``) and ``sluice status`` exits 2 there, so a
CI pipeline knows to hand over to a human instead of waiting out its timeout. Both must agree on
what "waiting for a person" means, hence one definition.
"""

from __future__ import annotations

from rollouts.api.rollout import Rollout, RolloutStatus
from rollouts.engine.routing_hold import stalled_on_router

INDEFINITE_PAUSES = frozenset({"InconclusiveAnalysis", "PausedByUser"})
"""Pause reasons that never time out by themselves."""


def waits_for_person(rollout: Rollout) -> bool:
    """Paused with nothing but a person (promote/resume) to end the pause.

    Not while the traffic router fails: the pause is held as it was, but a promote would wait
    for the router too, so what the Rollout needs first is the routing object fixed.
    """
    st = rollout.status or RolloutStatus()
    if stalled_on_router(st):
        return False
    if any(p.reason in INDEFINITE_PAUSES for p in st.pause_conditions):
        return True
    bg = rollout.blue_green
    if bg is not None:
        waiting = any(p.reason == "BlueGreenPause" for p in st.pause_conditions)
        return waiting and not bg.auto_promotion_enabled
    c = rollout.canary
    idx = st.current_step_index
    if c is None or idx is None or idx >= len(c.steps):
        return False
    step = c.steps[idx]
    return step.pause is not None and step.pause.duration is None
