"""Gates: a canary step or a blue-green pre-promotion check that waits until a URL says "open".

The engine stays pure: it never asks the URL. The reconcile asks a gate probe
(``rollouts.verdicts.gates``) about :func:`current_gate` and passes its cached answer in
``Observed.gate``; here that answer becomes status (``status.gate``, the ``WaitingForGate`` pause
with the last answer in its message), an Event on each transition, and a wake-up when the probe
will ask again. A person's ``promote`` passes a closed gate, as it passes a pause.
"""

from __future__ import annotations

from datetime import timedelta

from rollouts.api.rollout import Gate, GateStatus, Rollout, RolloutStatus
from rollouts.engine.context import Ctx

UNASKED_RETRY = timedelta(seconds=1)
"""How soon to look again when the gate was not asked yet (it became current this reconcile)."""


def current_gate(rollout: Rollout) -> Gate | None:
    """The gate the Rollout is waiting on, or will be once its current step is reached."""
    st = rollout.status or RolloutStatus()
    if st.current_revision is None or st.current_revision == st.stable_revision:
        return None
    if st.abort is not None and st.abort.revision == st.current_revision:
        return None
    c = rollout.canary
    if c is not None:
        idx = st.current_step_index
        if idx is None or idx >= len(c.steps):
            return None
        return c.steps[idx].gate
    bg = rollout.blue_green
    if bg is None or st.promoted_at is not None:
        return None
    return bg.pre_promotion_gate


def passed(ctx: Ctx, gate: Gate) -> bool:
    """Whether ``gate`` is open now; while closed, pause ``WaitingForGate`` with its last answer."""
    st = ctx.status
    obs = ctx.observed.gate
    seen = obs if obs is not None and obs.url == gate.url else None
    was = st.gate if st.gate is not None and st.gate.url == gate.url else None
    if seen is not None and seen.open:
        ctx.unpause("WaitingForGate")
        if was is None or was.state != "Open":
            ctx.event("GateOpened", f"gate {gate.url} open ({seen.answer})")
        st.gate = GateStatus.model_validate(
            {
                "url": gate.url,
                "state": "Open",
                "answer": seen.answer,
                "checkedAt": seen.checked_at,
            }
        )
        return True
    answer = seen.answer if seen is not None else "not asked yet"
    if was is None or was.state != "Waiting":
        ctx.event("WaitingForGate", f"waiting for gate {gate.url} to answer HTTP 200")
    st.gate = GateStatus.model_validate(
        {
            "url": gate.url,
            "state": "Waiting",
            "answer": answer,
            "checkedAt": None if seen is None else seen.checked_at,
            "nextCheckAt": None if seen is None else seen.next_check_at,
        }
    )
    ctx.pause("WaitingForGate")
    due = seen.next_check_at if seen is not None else None
    ctx.wake_at(due if due is not None and due > ctx.now else ctx.now + UNASKED_RETRY)
    return False
