"""Adoption of an existing Deployment (``spec.workloadRef``): when its pods stop serving.

The Deployment's pods serve while the Rollout's first slot comes up: until that slot is fully
ready, the Services keep their selectors without Sluice's slot key, so they reach the Deployment's
pods and the slot's alike (both carry the app's labels). Once it is, the Services are pinned to the
slot and ``status.adopted`` is set; from then on the Rollout works as with its own template, and
the Deployment scales down as ``scaleDown`` says:

- ``never``: Sluice leaves the Deployment alone (scale it down in Git when you are ready);
- ``onSuccess``: to 0 once adopted;
- ``progressively``: by as many pods as the slot has ready while it comes up, to 0 once adopted.

Deleting the Rollout hands traffic back (``rollouts.engine.deletion``): the Deployment is scaled
up first, and the Services are unpinned only once its pods are ready.
"""

from __future__ import annotations

from rollouts.engine.context import Ctx, services_of
from rollouts.engine.plan import ScaleWorkload, SetServiceSelector


def reconcile(ctx: Ctx) -> None:
    ref = ctx.rollout.spec.workload_ref
    workload = ctx.observed.workload
    st = ctx.status
    if ref is None or workload is None or st.stable_slot is None:
        return
    if not st.adopted:
        if ctx.ready(st.stable_slot, ctx.replicas, st.stable_revision):
            st.adopted = True  # the selectors planned this reconcile pin the Services to it
            ctx.event(
                "Adopted",
                f"slot {st.stable_slot} serves the traffic of Deployment {ref.name} "
                f"({', '.join(services_of(ctx.rollout))} pinned to it)",
            )
        else:
            # not serving yet: leave the Services reaching the Deployment's pods too
            ctx.actions[:] = [a for a in ctx.actions if not isinstance(a, SetServiceSelector)]
    if ref.scale_down == "never":
        return
    if st.adopted:
        target = 0
    elif ref.scale_down == "progressively":
        obs = ctx.observed.slots.get(st.stable_slot)
        ready = obs.ready_replicas if obs is not None and obs.revision == st.stable_revision else 0
        target = max(ctx.replicas - ready, 0)
    else:
        return
    target = min(target, workload.replicas)  # only ever down: scaling up is the user's (Git's)
    if target != workload.replicas:
        ctx.actions.append(ScaleWorkload(target))
        if target == 0:
            ctx.event("WorkloadScaledDown", f"Deployment {ref.name} scaled to 0 ({ref.scale_down})")
