"""The blue-green strategy: a full preview beside the active version, then one switch.

After the switch the old slot is kept until post-promotion analysis passes, so an abort can switch
back to pods that are still running instead of waiting for a redeploy.
"""

from __future__ import annotations

from datetime import timedelta

from rollouts.api.rollout import AnalysisRef, BlueGreenStrategy
from rollouts.engine import gates
from rollouts.engine.context import Ctx, other


def _ref(ref: AnalysisRef) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    return (
        tuple(t.template_name for t in ref.templates),
        tuple((a.name, a.value or "") for a in ref.args or []),
    )


def reconcile(ctx: Ctx, bg: BlueGreenStrategy, promote_requested: bool) -> None:
    st = ctx.status
    if st.stable_revision is None:
        st.stable_slot = "a"
        st.stable_revision = st.current_revision = ctx.desired
        ctx.deploy("a", ctx.replicas)
        ctx.select(bg.active_service, "a")
        ctx.select(bg.preview_service, "a")
        ctx.event("RolloutCreated", f"initial revision {ctx.desired} deployed as active")
        return

    if ctx.desired == st.stable_revision and st.current_revision == ctx.desired:
        _post_promotion(ctx, bg)
        return

    if ctx.desired == st.stable_revision:
        # Git went back to the active revision while a preview was up: drop the preview.
        _drop_preview(ctx, bg, "revision reverted to active")
        st.current_revision = ctx.desired
        return

    if st.current_revision != ctx.desired:
        if st.current_revision != st.stable_revision and st.current_revision is not None:
            _drop_preview(ctx, bg, f"superseded by revision {ctx.desired}", scale_down=False)
        ctx.start_revision()
        st.current_step_index = None

    if ctx.aborted():
        _hold_aborted(ctx, bg)
        return
    _pre_promotion(ctx, bg, promote_requested)
    if ctx.aborted():
        _hold_aborted(ctx, bg)


def _hold_aborted(ctx: Ctx, bg: BlueGreenStrategy) -> None:
    ctx.select(bg.active_service, ctx.stable_slot)
    ctx.select(bg.preview_service, ctx.new_slot)
    ctx.scale(ctx.stable_slot, ctx.replicas)
    new = ctx.new_slot
    obs = ctx.observed.slots.get(new)
    if (
        not any(sd.slot == new for sd in ctx.status.scale_downs)
        and obs is not None
        and obs.replicas > 0
    ):
        ctx.schedule_scale_down(new, bg.scale_down_delay_seconds)


def _drop_preview(ctx: Ctx, bg: BlueGreenStrategy, why: str, scale_down: bool = True) -> None:
    ctx.abandon(why)
    ctx.select(bg.active_service, ctx.stable_slot)
    ctx.select(bg.preview_service, ctx.stable_slot)
    if scale_down:
        ctx.schedule_scale_down(ctx.new_slot, bg.scale_down_delay_seconds)


def _pre_promotion(ctx: Ctx, bg: BlueGreenStrategy, promote_requested: bool) -> None:
    st = ctx.status
    new = ctx.new_slot
    preview_replicas = (
        bg.preview_replica_count if bg.preview_replica_count is not None else ctx.replicas
    )
    switching = promote_requested or st.promoted_at is not None
    want = ctx.replicas if switching else preview_replicas
    ctx.deploy(new, want)
    ctx.select(bg.active_service, ctx.stable_slot)
    ctx.select(bg.preview_service, new)
    ctx.note_progress(new)
    if not ctx.ready(new, want):
        if ctx.progress_deadline_passed():
            ctx.abort(
                "ProgressDeadlineExceeded",
                f"preview not ready within {ctx.rollout.spec.progress_deadline_seconds}s",
            )
        return
    if ctx.paused_by_user():
        return
    if bg.pre_promotion_analysis is not None and not promote_requested:
        run = ctx.analysis("prePromotion", *_ref(bg.pre_promotion_analysis))
        if run.phase in ("Failed", "Error"):
            ctx.abort_for_analysis("pre-promotion analysis", run)
            return
        if run.phase == "Inconclusive":
            ctx.pause("InconclusiveAnalysis")
            return
        if run.phase != "Successful":
            return
    if promote_requested:
        ctx.unpause("WaitingForGate")
    elif (
        bg.pre_promotion_gate is not None
        and st.promoted_at is None
        and not gates.passed(ctx, bg.pre_promotion_gate)
    ):
        return
    if not switching:
        if not bg.auto_promotion_enabled:
            ctx.pause("BlueGreenPause")
            return
        if bg.auto_promotion_seconds:
            since = ctx.paused_since("BlueGreenPause")
            if since is None:
                ctx.pause("BlueGreenPause")
                since = ctx.now
            end = since + timedelta(seconds=bg.auto_promotion_seconds)
            if ctx.now < end:
                ctx.wake_at(end)
                return
        ctx.unpause("BlueGreenPause")
        # scale the preview to full size before switching; the switch happens once it is ready
        st.promoted_at = ctx.now
        ctx.deploy(new, ctx.replicas)
        if not ctx.ready(new, ctx.replicas):
            return
    _switch(ctx, bg)


def _switch(ctx: Ctx, bg: BlueGreenStrategy) -> None:
    st = ctx.status
    old, new = ctx.stable_slot, ctx.new_slot
    ctx.unpause("BlueGreenPause")
    ctx.unpause("InconclusiveAnalysis")
    previous = st.stable_revision
    ctx.select(bg.active_service, new)
    ctx.select(bg.preview_service, new)
    st.stable_slot = new
    st.stable_revision = ctx.desired
    st.promoted_at = ctx.now
    st.weights.canary, st.weights.stable = 0, 100
    ctx.event(
        "RolloutPromoted",
        f"active Service {bg.active_service} switched to revision {ctx.desired} (was {previous})",
    )
    if bg.post_promotion_analysis is None:
        ctx.record(ctx.desired, "Promoted", f"replaced {previous}")
        ctx.schedule_scale_down(old, bg.scale_down_delay_seconds)
    else:
        ctx.analysis("postPromotion", *_ref(bg.post_promotion_analysis))


def _post_promotion(ctx: Ctx, bg: BlueGreenStrategy) -> None:
    """Steady state, or the window after a switch while post-promotion analysis decides."""
    st = ctx.status
    ctx.scale(ctx.stable_slot, ctx.replicas)
    pending = [
        r
        for r in st.analysis_runs
        if r.kind == "postPromotion" and r.phase not in ("Successful",) and not ctx.aborted()
    ]
    if bg.post_promotion_analysis is None or not pending or st.promoted_at is None:
        ctx.select(bg.active_service, ctx.stable_slot)
        ctx.select(bg.preview_service, ctx.stable_slot)
        return
    run = ctx.analysis("postPromotion", *_ref(bg.post_promotion_analysis))
    old = other(ctx.stable_slot)
    if run.phase == "Successful":
        ctx.record(ctx.desired, "Promoted", "post-promotion analysis passed")
        ctx.schedule_scale_down(old, bg.scale_down_delay_seconds)
        return
    if run.phase in ("Failed", "Error"):
        # switch back to the old pods, still running for exactly this case
        previous = ctx.observed.slots.get(old)
        new = ctx.stable_slot
        st.stable_slot = old
        st.stable_revision = previous.revision if previous is not None else None
        ctx.abort_for_analysis("post-promotion analysis", run)
        ctx.select(bg.active_service, old)
        ctx.select(bg.preview_service, new)
        ctx.schedule_scale_down(new, bg.scale_down_delay_seconds)
        return
    if run.phase == "Inconclusive":
        ctx.pause("InconclusiveAnalysis")
