"""``decide``: the whole of Sluice's rollout behaviour as one pure function.

Given the Rollout (spec and last status), what the ports observed, and the time, it returns the new
status and the actions to apply. No IO, no clock, no randomness: the operator, the simulator and the
tests all drive the same function, so what the simulator shows is what the controller does.
"""

from __future__ import annotations

from datetime import datetime

from rollouts.api.rollout import Rollout, RolloutStatus, SlotStatus
from rollouts.engine import bluegreen, canary, workload
from rollouts.engine.conditions import summarize
from rollouts.engine.context import Ctx, other
from rollouts.engine.plan import EmitEvent, Observed, Plan, Promotion, Request
from rollouts.engine.routing_hold import hold, recovery_event

POLL_SECONDS = 10.0
"""How soon to look again while waiting on pods or analysis that announce nothing by themselves."""


def decide(rollout: Rollout, observed: Observed, now: datetime) -> Plan:
    if observed.routing_error is not None:
        return hold(rollout, observed.routing_error, now)
    st = (rollout.status or RolloutStatus()).model_copy(deep=True)
    ctx = Ctx(rollout=rollout, observed=observed, now=now, status=st)
    st.observed_generation = rollout.metadata.generation
    if (recovered := recovery_event(rollout.status)) is not None:
        ctx.actions.append(recovered)

    request = (
        observed.request if observed.request and observed.request.id != st.last_request else None
    )
    if request is not None:
        st.last_request = request.id
        st.last_request_ignored = None
    promote = _pre_requests(ctx, request)

    if rollout.canary is not None:
        c = rollout.canary
        canary.reconcile(ctx, c, promote)
        steps = len(c.steps)
        st.step_count = steps
        st.step = _step_label(st, steps)
    else:
        bg = rollout.blue_green
        assert bg is not None
        bluegreen.reconcile(ctx, bg, promote_requested=promote is not None)
        st.step_count = None
        st.current_step_index = None
        st.step = "active" if st.current_revision == st.stable_revision else "preview"

    workload.reconcile(ctx)
    ctx.apply_due_scale_downs()
    _slots_summary(ctx)
    in_flight = st.current_revision != st.stable_revision or _post_promotion_pending(ctx)
    stable_ready = (
        ctx.ready(ctx.stable_slot, rollout.spec.replicas, st.stable_revision)
        if st.stable_slot
        else False
    )
    summarize(
        st,
        stable_ready=stable_ready,
        in_flight=in_flight,
        now=now,
        generation=rollout.metadata.generation,
        progress=_progress(ctx),
    )
    st.replicas = sum(s.replicas for s in st.slots)
    labels = rollout.spec.selector.match_labels or {}
    st.label_selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None
    return Plan(status=st, actions=tuple(ctx.actions), requeue_after=_requeue(ctx, in_flight))


def _step_label(st: RolloutStatus, steps: int) -> str:
    """``status.step``: the step being worked on, numbered from 1 like everything people read
    (``2/4`` = the second of four steps), ``-`` when no revision is rolling out through them."""
    in_flight = st.current_revision is not None and st.current_revision != st.stable_revision
    if not in_flight or steps == 0:
        return "-"
    return f"{min((st.current_step_index or 0) + 1, steps)}/{steps}"


def decide_invalid(
    rollout_status: RolloutStatus | None, generation: int | None, problems: list[str], now: datetime
) -> Plan:
    """An invalid spec stalls the Rollout with the offending fields named; nothing else is touched."""
    st = (rollout_status or RolloutStatus()).model_copy(deep=True)
    st.observed_generation = generation
    message = "invalid spec: " + "; ".join(problems)
    first_time = st.phase != "Degraded" or st.message != message
    summarize(
        st, stable_ready=False, in_flight=False, now=now, generation=generation, invalid=message
    )
    actions = (EmitEvent("Warning", "InvalidSpec", message),) if first_time else ()
    return Plan(status=st, actions=actions)


def _in_flight(ctx: Ctx) -> bool:
    st = ctx.status
    return (
        st.stable_revision is not None
        and st.current_revision == ctx.desired
        and st.current_revision != st.stable_revision
        and not ctx.aborted()
    )


def _post_promotion_pending(ctx: Ctx) -> bool:
    return any(
        r.kind == "postPromotion"
        and r.phase in ("Pending", "Running")
        and ctx.status.current_revision == ctx.status.stable_revision
        for r in ctx.status.analysis_runs
    )


def _pre_requests(ctx: Ctx, request: Request | None) -> Promotion | None:
    """Apply the strategy-independent parts of a request; return a promotion for the strategy."""
    if request is None:
        return None
    st = ctx.status
    kind = request.kind
    if kind == "pause":
        ctx.pause("PausedByUser")
        ctx.event("Paused", f"paused by request {request.id}")
    elif kind == "resume":
        ctx.unpause("PausedByUser")
        st.last_progress_at = ctx.now
        ctx.event("Resumed", f"resumed by request {request.id}")
    elif kind == "retry":
        if ctx.aborted() and st.current_revision == ctx.desired:
            # a fresh start of the same revision: forget the abort and begin at step one
            ctx.event("Retrying", f"retrying revision {ctx.desired} by request {request.id}")
            ctx.start_revision(retry=True)
        else:
            _ignore(ctx, f"retry {request.id}: nothing aborted to retry")
    elif kind == "abort":
        if _in_flight(ctx) or _post_promotion_pending(ctx):
            if ctx.rollout.blue_green is not None and _post_promotion_pending(ctx):
                for run in st.analysis_runs:
                    if run.kind == "postPromotion" and run.phase in ("Pending", "Running"):
                        run.phase, run.message = "Failed", f"aborted by request {request.id}"
            else:
                ctx.abort("AbortedByUser", f"aborted by request {request.id}")
        else:
            _ignore(ctx, f"abort {request.id}: no rollout in progress")
    elif kind == "promote" or kind == "promote-full":
        if not _in_flight(ctx):
            _ignore(ctx, f"{kind} {request.id}: no rollout in progress")
            return None
        return kind
    return None


def _ignore(ctx: Ctx, message: str) -> None:
    """A request the engine will not act on: say why, in status and as an Event."""
    ctx.status.last_request_ignored = message
    ctx.event("RequestIgnored", message)


def _slots_summary(ctx: Ctx) -> None:
    st = ctx.status
    if st.stable_slot is None:
        st.slots = []
        return
    bg = ctx.rollout.blue_green is not None
    in_flight = st.current_revision != st.stable_revision and not ctx.aborted()
    roles: dict[str, str | None] = {
        st.stable_slot: "active" if bg else "stable",
        other(st.stable_slot): ("preview" if bg else "canary") if in_flight else None,
    }
    out = []
    for name in ("a", "b"):
        obs = ctx.observed.slots.get(name)
        # report what the slot is being driven to, so status agrees with the actions just planned
        planned = ctx.slot_now(name)
        if planned is None:
            continue
        revision, replicas = planned
        role = roles[name]
        out.append(
            SlotStatus.model_validate(
                {
                    "name": name,
                    "role": role,
                    "revision": revision,
                    "replicas": replicas,
                    "readyReplicas": min(obs.ready_replicas, replicas)
                    if obs and obs.revision == revision
                    else 0,
                }
            )
        )
    st.slots = out


def _progress(ctx: Ctx) -> str:
    """What an in-flight rollout is doing now, for ``status.message`` and ``kubectl get``."""
    st = ctx.status
    c = ctx.rollout.canary
    if c is not None:
        idx = st.current_step_index or 0
        if idx < len(c.steps):
            return f"step {idx + 1}/{len(c.steps)}: {c.steps[idx].describe()}"
        return f"promoting revision {st.current_revision}"
    if _post_promotion_pending(ctx):
        return f"revision {st.current_revision} active; post-promotion analysis running"
    return f"preview of revision {st.current_revision} coming up"


def _requeue(ctx: Ctx, in_flight: bool) -> float | None:
    times = [(w - ctx.now).total_seconds() for w in ctx.wakeups]
    times = [max(t, 0.0) for t in times]
    if in_flight and not ctx.aborted() and not ctx.status.pause_conditions:
        times.append(POLL_SECONDS)
    return min(times) if times else None
