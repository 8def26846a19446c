"""What deleting a Rollout does to the cluster: the finalizer's actions, decided here like every
other action so the operator only applies them.

Deleting a Rollout keeps the application serving. Rollouts are deleted by GitOps prunes, renames
and migrations (to another tool, or back to a plain Deployment) while the application is live;
taking production down with the Rollout would turn a bookkeeping change into an outage. So all
traffic goes back to the stable slot, the router's managed routes go, the canary slot (never
serving alone) is deleted, and the stable slot Deployment is released from the Rollout (no
garbage collection) and left running. The user deletes ``<rollout>-<slot>`` when they mean it.

A Rollout that adopted a Deployment (``workloadRef``) hands its traffic back instead: the
Deployment is scaled up and ready first, then the Services drop Sluice's slot key (reaching the
Deployment's pods), and both slots go.
"""

from __future__ import annotations

from rollouts.api.rollout import Rollout, RolloutStatus
from rollouts.engine.context import other
from rollouts.engine.plan import (
    Action,
    DeleteSlot,
    EmitEvent,
    ReleaseSlot,
    RemoveManagedRoutes,
    ScaleWorkload,
    SetServiceSelector,
    SetWeight,
    WorkloadObservation,
)


def deletion_actions(
    rollout: Rollout | None, services: list[str], workload_present: bool = True
) -> tuple[Action, ...]:
    """The finalizer's actions for ``rollout`` (``None``: its spec is invalid, so neither the
    routes nor the Services are known, and both slots are kept running). ``workload_present``:
    the Deployment a workloadRef names still exists to hand the traffic back to."""
    status = (rollout.status if rollout is not None else None) or RolloutStatus()
    stable = status.stable_slot
    if rollout is None or stable is None:
        return (
            ReleaseSlot("a"),
            ReleaseSlot("b"),
            EmitEvent("Normal", "Released", "slot Deployments left running"),
        )
    name = rollout.metadata.name
    ref = rollout.spec.workload_ref
    if ref is not None and workload_present:
        # the adopted Deployment serves again (``handback`` scaled it up and waited for it):
        # the Services drop the slot key and reach its pods, and the slots go
        return (
            SetWeight(0),
            RemoveManagedRoutes(),
            *(SetServiceSelector(service, None) for service in services),
            DeleteSlot(other(stable)),
            DeleteSlot(stable),
            EmitEvent(
                "Normal",
                "HandedBack",
                f"traffic handed back to Deployment {ref.name}; slot Deployments deleted",
            ),
        )
    return (
        SetWeight(0),
        RemoveManagedRoutes(),
        *(SetServiceSelector(service, stable) for service in services),
        ReleaseSlot(stable),
        DeleteSlot(other(stable)),
        EmitEvent(
            "Normal",
            "Released",
            f"all traffic on the stable slot {stable}; Deployment {name}-{stable} left running",
        ),
    )


def handback(
    rollout: Rollout, workload: WorkloadObservation | None
) -> tuple[tuple[Action, ...], bool]:
    """Before an adopting Rollout goes: scale its Deployment back to the Rollout's replicas, and
    whether to wait for its pods to be ready (the finalizer retries until they are, so traffic
    never lands on a Deployment with no ready pods)."""
    if rollout.spec.workload_ref is None or workload is None:
        return (), False
    want = rollout.spec.replicas
    scale: tuple[Action, ...] = (ScaleWorkload(want),) if workload.replicas < want else ()
    return scale, workload.ready_replicas < want
