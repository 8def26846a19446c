"""Which transitions one reconcile made, as notices, derived from the status before and after.

Pure: the reconcile calls :func:`announce` with the status it read and the status the engine
planned, and gets back the notices plus the status to write, which records them. Recording in the
very status write that makes the transition is what makes a restart safe: a new controller reads a
status that already shows the transition (so it derives nothing) and already lists it as sent (so
a transition seen again, a Rollout going Healthy twice for one revision, is not sent twice).

The price is at-most-once delivery: a controller that dies between the status write and the
send loses that message. The alternative, at-least-once, would need a second status write after
each delivery and would re-send whatever was in flight at a crash; a rollout channel that gets a
duplicate "aborted" on every restart is worse than one that, rarely, misses one (the Event and
the status still show it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from analysis.stats.evidence import Evidence
from rollouts.api.rollout import (
    NotificationEvent,
    NotificationStatus,
    Rollout,
    RolloutStatus,
    SentNotification,
)
from rollouts.engine.pauses import waits_for_person

KEEP_SENT = 20
"""Records kept in status.notifications.sent: enough to cover every transition of one attempt of
a long canary (the dedup only ever needs the current attempt's), bounded so status stays small."""

Level = Literal["info", "success", "warning", "failure"]


@dataclass(frozen=True)
class Notice:
    """One transition to announce: what happened and the text every receiver gets."""

    event: NotificationEvent
    namespace: str
    name: str
    revision: str | None
    attempt: int | None
    step: int | None
    at: datetime
    title: str
    body: str
    level: Level

    def key(self) -> tuple[str, str | None, int | None, int | None]:
        return (self.event, self.revision, self.attempt, self.step)


def announce(
    rollout: Rollout, after: RolloutStatus, now: datetime
) -> tuple[RolloutStatus, list[Notice]]:
    """The notices for the transition from ``rollout.status`` to ``after``, and ``after`` with
    them recorded as sent. Notices already recorded are left out."""
    record = list(after.notifications.sent) if after.notifications is not None else []
    done = {(r.event, r.revision, r.attempt, r.step) for r in record}
    notices = [n for n in transitions(rollout, rollout.status, after, now) if n.key() not in done]
    if not notices:
        return after, []
    record += [
        SentNotification(event=n.event, revision=n.revision, attempt=n.attempt, step=n.step, at=now)
        for n in notices
    ]
    status = after.model_copy(
        update={"notifications": NotificationStatus(sent=record[-KEEP_SENT:])}
    )
    return status, notices


def transitions(
    rollout: Rollout, before: RolloutStatus | None, after: RolloutStatus, now: datetime
) -> list[Notice]:
    """Every transition between two statuses, in the order they happen within a reconcile."""
    return list(_transitions(rollout, before or RolloutStatus(), after, now))


def _transitions(
    rollout: Rollout, b: RolloutStatus, a: RolloutStatus, now: datetime
) -> Iterator[Notice]:
    ns, name = rollout.metadata.namespace, rollout.metadata.name
    who = f"Rollout {ns}/{name}"

    def notice(
        event: NotificationEvent,
        title: str,
        body: str,
        level: Level = "info",
        step: int | None = None,
        revision: str | None = a.current_revision,
    ) -> Notice:
        return Notice(event, ns, name, revision, a.attempt, step, now, title, body, level)

    same_attempt = (a.current_revision, a.attempt, a.rollout_started_at) == (
        b.current_revision,
        b.attempt,
        b.rollout_started_at,
    )
    rolling = a.current_revision is not None and a.current_revision != a.stable_revision
    if rolling and not same_attempt and a.rollout_started_at is not None:
        attempt = f" (attempt {a.attempt})" if (a.attempt or 1) > 1 else ""
        yield notice(
            "Progressing",
            f"{name}: rolling out {a.current_revision}",
            f"{who} started rolling out revision {a.current_revision}{attempt}; "
            f"stable is {a.stable_revision}.",
        )
    steps = rollout.canary.steps if rollout.canary is not None else []
    bi, ai = b.current_step_index, a.current_step_index
    if same_attempt and bi is not None and ai is not None and ai > bi and steps:
        done = steps[bi:ai]
        which = (
            f"step {ai}/{len(steps)} ({done[-1].describe()})"
            if len(done) == 1
            else f"steps {bi + 1}-{ai} of {len(steps)}"
        )
        yield notice(
            "StepCompleted",
            f"{name}: {which} completed",
            f"{who} completed {which} of revision {a.current_revision}; "
            f"canary weight {a.weights.canary}%.",
            step=ai,
        )
    before_pauses = {(p.reason, b.current_step_index) for p in b.pause_conditions}
    new_pauses = [p for p in a.pause_conditions if (p.reason, ai) not in before_pauses]
    step = ai + 1 if ai is not None and steps else None
    if any("Gate" in p.reason for p in new_pauses):
        reason = next(p.reason for p in new_pauses if "Gate" in p.reason)
        yield notice(
            "WaitingForGate",
            f"{name}: waiting for a gate",
            f"{who} is waiting for a gate to open ({reason}) before revision "
            f"{a.current_revision} goes on; `sluice promote {name} -n {ns}` overrides.",
            step=step,
        )
    elif new_pauses and waits_for_person(rollout.model_copy(update={"status": a})):
        reasons = ", ".join(p.reason for p in new_pauses)
        yield notice(
            "Paused",
            f"{name}: paused, waiting for a person",
            f"{who} paused ({reasons}) at {_where(a)} of revision {a.current_revision}; "
            f"continue with `sluice promote {name} -n {ns}` (or resume), "
            f"or `sluice abort {name} -n {ns}`.",
            "warning",
            step=step,
        )
    if a.abort is not None and (b.abort is None or b.abort.time != a.abort.time):
        ab = a.abort
        lines = [f"{who} aborted revision {ab.revision}: {ab.reason}: {ab.message}"]
        lines += [f"Traffic is back on the stable revision {a.stable_revision}."]
        evidence = _evidence_of(a, ab.metric)
        if ab.metric is not None:
            lines.append(
                f"Metric {ab.metric}: {evidence_text(evidence)}"
                if evidence is not None
                else f"Metric {ab.metric} (no evidence recorded)."
            )
        yield notice(
            "Aborted",
            f"{name}: aborted revision {ab.revision}",
            "\n".join(lines),
            "failure",
            revision=ab.revision,
        )
    if a.promoted_at is not None and a.promoted_at != b.promoted_at:
        yield notice(
            "Promoted",
            f"{name}: promoted {a.current_revision}",
            f"{who} promoted revision {a.current_revision}: all traffic goes to it.",
            "success",
        )
    if a.phase == "Healthy" and b.phase != "Healthy":
        yield notice(
            "Healthy",
            f"{name}: Healthy at {a.stable_revision}",
            f"{who} is Healthy: revision {a.stable_revision} serves all traffic.",
            "success",
            revision=a.stable_revision,
        )


def _where(st: RolloutStatus) -> str:
    return f"step {st.step}" if st.step and st.step != "-" else "its current step"


def _evidence_of(st: RolloutStatus, metric: str | None) -> Evidence | None:
    """The deciding metric's evidence, from the failed run first (a metric of the same name may
    appear in several runs)."""
    if metric is None:
        return None
    runs = sorted(st.analysis_runs, key=lambda r: r.phase != "Failed")
    for run in runs:
        for m in run.metrics:
            if m.name == metric and m.evidence is not None:
                return m.evidence
    return None


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def evidence_text(ev: Evidence) -> str:
    """The evidence in one line a person can audit: method and outcome, the estimate and its
    interval, and the e-value against its threshold (or the statistic against its bound)."""
    parts = [f"{ev.method} {ev.outcome.value}", f"estimate {_num(ev.estimate)}"]
    if ev.lower is not None or ev.upper is not None:
        hi = "inf" if ev.upper is None else _num(ev.upper)
        parts.append(f"interval [{_num(ev.lower)}, {hi}]")
    if ev.log_e_value is not None:
        parts.append(
            f"e-value {_num(ev.e_value())} against threshold {_num(ev.e_threshold())} "
            f"(log {_num(ev.log_e_value)} vs {_num(ev.log_threshold)})"
        )
    elif ev.statistic is not None:
        parts.append(f"statistic {_num(ev.statistic)} against threshold {_num(ev.threshold)}")
    parts.append(f"{ev.events} events")
    return "; ".join(parts)
