"""The canary strategy: steps of weight, pause and analysis, then promotion by flipping slot roles.

The stable slot is never redeployed: promotion turns the canary slot into the stable one, so the
pods that passed analysis are exactly the pods that serve production afterwards.
"""

from __future__ import annotations

from datetime import timedelta

from rollouts.api.base import parse_duration
from rollouts.api.rollout import AnalysisRef, CanaryStep, CanaryStrategy, SlotName
from rollouts.engine import gates, managed_routes
from rollouts.engine.context import Ctx, percent_of
from rollouts.engine.plan import Promotion, StopAnalysis


def _args(ref: AnalysisRef) -> tuple[tuple[str, str], ...]:
    return tuple((a.name, a.value or "") for a in ref.args or [])


def _templates(ref: AnalysisRef) -> tuple[str, ...]:
    return tuple(t.template_name for t in ref.templates)


def reconcile(ctx: Ctx, c: CanaryStrategy, promote: Promotion | None = None) -> None:
    """Advance the canary; ``promote`` is a person's request for the in-flight revision."""
    st = ctx.status
    routed = c.traffic_routing is not None
    if st.stable_revision is None:
        _first_revision(ctx, c)
        return
    stable = ctx.stable_slot

    if ctx.desired == st.stable_revision:
        if st.current_revision != st.stable_revision:
            _abandon(ctx, c, "revision reverted to stable")
            ctx.schedule_scale_down(ctx.new_slot, c.abort_scale_down_delay_seconds)
        st.current_revision = ctx.desired
        st.current_step_index = len(c.steps)
        _route_all_to_stable(ctx, c)
        ctx.scale(stable, ctx.replicas)
        return

    if st.current_revision != ctx.desired:
        if st.current_revision != st.stable_revision and st.current_revision is not None:
            _abandon(ctx, c, f"superseded by revision {ctx.desired}")
        ctx.start_revision()

    if promote == "promote":
        _skip_step(ctx, c)
    elif promote == "promote-full":
        while (st.current_step_index or 0) < len(c.steps):
            _skip_step(ctx, c)
    if not ctx.aborted():
        _run_steps(ctx, c, routed)
    if ctx.aborted():
        _hold_aborted(ctx, c)
        return
    _hold_routing(ctx, c, routed)
    if st.current_step_index is not None and st.current_step_index >= len(c.steps):
        _promote(ctx, c, routed)


def reached_weight(c: CanaryStrategy, step_index: int) -> int:
    """The canary weight the completed steps set: the last setWeight before ``step_index``."""
    for step in reversed(c.steps[:step_index]):
        if step.set_weight is not None:
            return step.set_weight
    return 0


def _hold_routing(ctx: Ctx, c: CanaryStrategy, routed: bool) -> None:
    """Keep asserting the routing the completed steps reached (weight and both selectors), so a
    hand edit of a route or a Service during a pause is undone."""
    idx = ctx.status.current_step_index or 0
    if idx >= len(c.steps):
        return
    weight = reached_weight(c, idx)
    ctx.weight(weight, routed)
    managed_routes.assert_routes(ctx, c, managed_routes.wanted(c, idx))
    # with no router the stable Service spans both slots once the canary carries traffic
    spans_both = not routed and weight > 0
    ctx.select(c.stable_service, None if spans_both else ctx.stable_slot)
    ctx.select(c.canary_service, ctx.new_slot)


def _hold_aborted(ctx: Ctx, c: CanaryStrategy) -> None:
    """Aborted: all traffic to stable first; the canary pods go only after the abort delay."""
    _route_all_to_stable(ctx, c)
    ctx.scale(ctx.stable_slot, ctx.replicas)
    new = ctx.new_slot
    pending = any(sd.slot == new for sd in ctx.status.scale_downs)
    obs = ctx.observed.slots.get(new)
    if not pending and obs is not None and obs.replicas > 0:
        ctx.schedule_scale_down(new, c.abort_scale_down_delay_seconds)


def _first_revision(ctx: Ctx, c: CanaryStrategy) -> None:
    """The first revision has nothing to compare with: it becomes stable at once, as in Argo."""
    st = ctx.status
    st.stable_slot = "a"
    st.stable_revision = ctx.desired
    st.current_revision = ctx.desired
    st.current_step_index = len(c.steps)
    ctx.deploy("a", ctx.replicas)
    _route_all_to_stable(ctx, c)
    ctx.event("RolloutCreated", f"initial revision {ctx.desired} deployed as stable")


def _route_all_to_stable(ctx: Ctx, c: CanaryStrategy) -> None:
    """All traffic to stable: weight and header/mirror routes first, then selectors, so no request
    reaches a dying pod."""
    ctx.weight(0, c.traffic_routing is not None)
    managed_routes.assert_routes(ctx, c, managed_routes.NONE)
    ctx.select(c.stable_service, ctx.stable_slot)
    ctx.select(c.canary_service, ctx.stable_slot)


def _abandon(ctx: Ctx, c: CanaryStrategy, why: str) -> None:
    ctx.abandon(why)
    ctx.weight(0, c.traffic_routing is not None)
    managed_routes.assert_routes(ctx, c, managed_routes.NONE)
    ctx.select(c.stable_service, ctx.stable_slot)


def _run_steps(ctx: Ctx, c: CanaryStrategy, routed: bool) -> None:
    st = ctx.status
    idx = st.current_step_index or 0
    while idx < len(c.steps):
        _background(ctx, c, idx)
        if ctx.aborted() or ctx.paused_by_user():
            break
        if ctx.paused_since("InconclusiveAnalysis") is not None:
            break
        if not _step(ctx, c, c.steps[idx], idx, routed):
            break
        ctx.event(
            "StepCompleted", f"step {idx + 1}/{len(c.steps)} ({c.steps[idx].describe()}) done"
        )
        idx += 1
        st.current_step_index = idx
        st.step_started_at = ctx.now
        st.last_progress_at = ctx.now
    else:
        _background(ctx, c, idx)


def _background(ctx: Ctx, c: CanaryStrategy, idx: int) -> None:
    """Background analysis runs from ``startingStep`` until promotion; its failure aborts at once."""
    if c.analysis is None or idx < c.analysis.starting_step:
        return
    run = ctx.analysis("background", _templates(c.analysis), _args(c.analysis))
    if run.phase in ("Failed", "Error") and not ctx.aborted():
        ctx.abort_for_analysis("background analysis", run)
    elif run.phase == "Inconclusive":
        ctx.pause("InconclusiveAnalysis")


def _canary_up(ctx: Ctx, new: SlotName, want: int) -> bool:
    """Scale the canary slot to ``want`` pods; True once they are ready. Waiting past the
    progress deadline aborts."""
    ctx.deploy(new, want)
    ctx.note_progress(new)
    if ctx.ready(new, want):
        return True
    if ctx.progress_deadline_passed():
        ctx.abort(
            "ProgressDeadlineExceeded",
            f"canary not ready within {ctx.rollout.spec.progress_deadline_seconds}s",
        )
    return False


def _step(ctx: Ctx, c: CanaryStrategy, step: CanaryStep, idx: int, routed: bool) -> bool:
    """Advance the current step; True when it is complete."""
    st = ctx.status
    stable, new = ctx.stable_slot, ctx.new_slot
    if step.set_weight is not None:
        w = step.set_weight
        want = percent_of(ctx.replicas, w)
        if want == 0 and not managed_routes.wanted(c, idx).empty:
            want = 1  # a header or mirror route still sends requests to the canary
        if not _canary_up(ctx, new, want):
            return False
        if routed:
            ctx.weight(w, True)
            ctx.select(c.stable_service, stable)
            ctx.select(c.canary_service, new)
            return ctx.observed.weight_verified is not False
        # no router: the stable Service spans both slots and the replica ratio splits traffic
        ctx.scale(stable, max(ctx.replicas - want, 0))
        ctx.select(c.stable_service, None)
        ctx.select(c.canary_service, new)
        ctx.weight(w, False)
        return True
    if step.set_header_route is not None or step.set_mirror_route is not None:
        routes = managed_routes.wanted(c, idx + 1)
        if not routes.empty:
            # requests routed or mirrored to the canary need canary pods, even at weight 0
            want = max(percent_of(ctx.replicas, reached_weight(c, idx)), 1)
            if not _canary_up(ctx, new, want):
                return False
        managed_routes.assert_routes(ctx, c, routes)
        return True
    if step.gate is not None:
        return gates.passed(ctx, step.gate)
    if step.pause is not None:
        if step.pause.duration is None:
            ctx.pause("CanaryPauseStep")
            return False
        end = (st.step_started_at or ctx.now) + timedelta(
            seconds=parse_duration(step.pause.duration)
        )
        if ctx.now >= end:
            ctx.unpause("CanaryPauseStep")
            return True
        ctx.pause("CanaryPauseStep")
        ctx.wake_at(end)
        return False
    assert step.analysis is not None
    run = ctx.analysis("step", _templates(step.analysis), _args(step.analysis), step_index=idx)
    if run.phase == "Successful":
        return True
    if run.phase in ("Failed", "Error"):
        ctx.abort_for_analysis(f"step {idx + 1} analysis", run)
    elif run.phase == "Inconclusive":
        ctx.pause("InconclusiveAnalysis")
    return False


def _skip_step(ctx: Ctx, c: CanaryStrategy) -> None:
    """A person's ``promote``: the current step counts as done (pauses end, analysis is waived)."""
    st = ctx.status
    idx = st.current_step_index or 0
    if idx >= len(c.steps):
        return
    for run in st.analysis_runs:
        if run.kind == "step" and run.step_index == idx and run.phase in ("Pending", "Running"):
            ctx.actions.append(StopAnalysis(run.name))
            run.phase = "Successful"
            run.message = "waived by promote"
    ctx.unpause("CanaryPauseStep")
    ctx.unpause("InconclusiveAnalysis")
    ctx.unpause("WaitingForGate")
    ctx.event(
        "StepSkipped",
        f"step {idx + 1}/{len(c.steps)} ({c.steps[idx].describe()}) promoted by request",
    )
    st.current_step_index = idx + 1
    st.step_started_at = ctx.now
    st.last_progress_at = ctx.now


def _promote(ctx: Ctx, c: CanaryStrategy, routed: bool) -> None:
    """Full traffic to the new pods, then flip roles; the old slot goes after scaleDownDelaySeconds."""
    st = ctx.status
    stable, new = ctx.stable_slot, ctx.new_slot
    ctx.deploy(new, ctx.replicas)
    ctx.note_progress(new)
    if not ctx.ready(new, ctx.replicas):
        if ctx.progress_deadline_passed():
            ctx.abort(
                "ProgressDeadlineExceeded",
                f"canary not fully ready within {ctx.rollout.spec.progress_deadline_seconds}s",
            )
        return
    ctx.stop_analyses("rollout promoted")
    managed_routes.assert_routes(ctx, c, managed_routes.NONE)
    if routed:
        ctx.weight(100, True)
    ctx.select(c.stable_service, new)
    ctx.select(c.canary_service, new)
    previous = st.stable_revision
    st.stable_slot = new
    st.stable_revision = ctx.desired
    st.promoted_at = ctx.now
    st.pause_conditions = [p for p in st.pause_conditions if p.reason == "PausedByUser"]
    if routed:
        # the stable Service now holds the new pods; hand the route back to it
        ctx.weight(0, True)
    ctx.status.weights.canary = 0
    ctx.status.weights.stable = 100
    ctx.schedule_scale_down(stable, c.scale_down_delay_seconds)
    ctx.record(ctx.desired, "Promoted", f"replaced {previous}")
    ctx.event("RolloutPromoted", f"revision {ctx.desired} is stable (was {previous})")
