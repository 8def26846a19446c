"""Phase and Kubernetes conditions, derived from the engine's state and never stored separately.

kstatus (Flux) reads ``Ready``, ``Reconciling`` and ``Stalled``; Argo CD's health check reads the
phase. Deriving all of them in one place keeps them from contradicting each other.
"""

from __future__ import annotations

from datetime import datetime

from rollouts.api.rollout import Condition, Phase, RolloutStatus

PAUSE_MESSAGES = {
    "CanaryPauseStep": "paused at a pause step",
    "BlueGreenPause": "preview ready; waiting to promote",
    "PausedByUser": "paused by request",
    "InconclusiveAnalysis": "analysis inconclusive; promote, retry or abort",
    "WaitingForGate": "waiting for a gate to open",
}


def waiting_message(st: RolloutStatus) -> str:
    """The Paused message while a gate is closed: its URL and its last answer."""
    if st.gate is None:
        return PAUSE_MESSAGES["WaitingForGate"]
    return f"waiting for gate {st.gate.url} (last answer: {st.gate.answer})"


def _set(
    conditions: list[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> Condition:
    value = "True" if status else "False"
    old = next((c for c in conditions if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == value else now
    return Condition.model_validate(
        {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
            "observedGeneration": generation,
        }
    )


def summarize(
    st: RolloutStatus,
    *,
    stable_ready: bool,
    in_flight: bool,
    now: datetime,
    generation: int | None,
    invalid: str | None = None,
    progress: str = "",
    stall: tuple[str, str] | None = None,
) -> None:
    """Fill ``phase``, ``message`` and ``conditions`` from the rest of the status.

    ``stall`` (reason, message) is a problem only a person can fix that stops the rollout where
    it is (a broken traffic router): ``Stalled`` like an invalid spec, so kstatus and Argo CD
    report it at once instead of waiting out their timeouts.
    """
    phase: Phase
    aborted = st.abort is not None and st.abort.revision == st.current_revision
    if invalid is not None:
        phase, reason, message = "Degraded", "InvalidSpec", invalid
    elif stall is not None:
        phase, (reason, message) = "Degraded", stall
    elif aborted:
        assert st.abort is not None
        phase, reason, message = "Degraded", st.abort.reason, f"aborted: {st.abort.message}"
    elif st.pause_conditions:
        first = st.pause_conditions[0]
        phase, reason = "Paused", first.reason
        message = (
            waiting_message(st)
            if first.reason == "WaitingForGate"
            else PAUSE_MESSAGES[first.reason]
        )
    elif in_flight or not stable_ready:
        phase = "Progressing"
        reason = "RolloutProgressing" if in_flight else "WaitingForPods"
        if in_flight:
            message = progress or f"rolling out revision {st.current_revision}"
        else:
            message = f"waiting for revision {st.stable_revision} to be ready"
    else:
        phase, reason, message = (
            "Healthy",
            "RolloutCompleted",
            f"revision {st.stable_revision} is stable",
        )

    st.phase = phase
    st.message = message
    stalled = phase == "Degraded"
    ready = phase == "Healthy"
    old = st.conditions
    new = [
        _set(old, "Ready", ready, "Healthy" if ready else reason, message, now, generation),
        _set(
            old,
            "Reconciling",
            not ready and not stalled,
            reason if not ready else "RolloutCompleted",
            message,
            now,
            generation,
        ),
        _set(
            old,
            "Stalled",
            stalled,
            reason if stalled else "Progressing",
            message if stalled else "",
            now,
            generation,
        ),
        _set(old, "Progressing", not stalled, reason, message, now, generation),
        _set(
            old,
            "Paused",
            phase == "Paused",
            reason if phase == "Paused" else "NotPaused",
            message if phase == "Paused" else "",
            now,
            generation,
        ),
    ]
    # a condition we no longer manage (none yet) would be kept here; keep foreign ones verbatim
    managed = {c.type for c in new}
    st.conditions = new + [c for c in old if c.type not in managed]
