"""One reconcile cycle, in explicit phases: tick analyses, observe, decide, apply, write status.

1. :func:`tick`: the Rollout's analyses take the measurements that came due and write their
   runs' status (the only phase that writes for analysis or queries metrics);
2. :func:`observe`: read-only, through the ports (slots, Services, weights, verdicts);
3. ``decide`` (the engine): pure, from the Rollout and what was observed to a plan;
4. :func:`apply_actions`: the plan's actions, in order;
5. :func:`write_status`: the plan's status, once, and only when it changed.

The operator and the simulator both call :func:`cycle`, so the simulator exercises the
controller's exact path from observation to action; only the ports differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from rollouts.api.rollout import Rollout, RolloutStatus
from rollouts.cluster.port import Cluster
from rollouts.engine import (
    Action,
    DeleteSlot,
    DeploySlot,
    EmitEvent,
    Observed,
    Plan,
    ReleaseSlot,
    RemoveManagedRoutes,
    Request,
    ScaleSlot,
    ScaleWorkload,
    SetManagedRoutes,
    SetServiceSelector,
    SetWeight,
    StartAnalysis,
    StopAnalysis,
    decide,
)
from rollouts.engine.context import services_of
from rollouts.engine.gates import current_gate
from rollouts.notifications.port import Notifier
from rollouts.notifications.transitions import Notice, announce
from rollouts.routing.errors import RoutingError, read_router
from rollouts.routing.port import TrafficRouter
from rollouts.verdicts.gates import GateProbe
from rollouts.verdicts.port import VerdictSource
from rollouts.workload_ref import observation


@dataclass
class Ports:
    cluster: Cluster
    router: TrafficRouter | None
    verdicts: VerdictSource
    gates: GateProbe | None = None
    """Asks the current gate's URL (None: gates stay closed until promoted)."""
    notifier: Notifier | None = None
    """Where transitions are announced (None: nowhere, and status records none)."""


def tick(rollout: Rollout, ports: Ports) -> None:
    """Advance the Rollout's analyses: the cycle's one phase that writes for analysis."""
    ports.verdicts.tick(rollout)


def observe(rollout: Rollout, ports: Ports, request: Request | None = None) -> Observed:
    """What the engine decides from, read through the ports; writes nothing."""
    routed = rollout.canary is not None and rollout.canary.traffic_routing is not None
    routing = read_router(ports.router if routed else None)
    gate = current_gate(rollout)
    return Observed(
        slots=ports.cluster.read_slots(rollout),
        services=ports.cluster.read_service_slots(rollout, services_of(rollout)),
        weight=routing.weight,
        weight_verified=routing.verified,
        analysis=ports.verdicts.observe(rollout),
        request=request,
        routing_error=routing.error,
        workload=(
            observation(ports.cluster.read_workload(rollout)) if rollout.spec.workload_ref else None
        ),
        gate=ports.gates.observe(rollout, gate) if gate is not None and ports.gates else None,
    )


def apply(rollout: Rollout, plan: Plan, ports: Ports, now: datetime | None = None) -> Plan:
    """Apply actions in the order planned (weights before scale-downs), write status once, then
    post the plan's Events and hand its notifications to the notifier; returns the plan as
    written (its status records the notifications).

    Events go last because each reports a status transition: posted before the status is
    written, a failure or crash in between would have the next reconcile decide the same
    transition from the old status and post its Event again (a second RolloutAborted). Once the
    status is written a reconcile starts from it and does not re-decide the transition.
    Notifications follow the same rule, and are recorded in that same status write."""
    events = [a for a in plan.actions if isinstance(a, EmitEvent)]
    apply_actions(
        rollout, [a for a in plan.actions if not isinstance(a, EmitEvent)], ports, plan.status
    )
    notices: list[Notice] = []
    if ports.notifier is not None and now is not None:
        status, notices = announce(rollout, plan.status, now)
        plan = replace(plan, status=status)
    write_status(rollout, plan, ports)
    apply_actions(rollout, events, ports, plan.status)
    if notices and ports.notifier is not None:
        ports.notifier.submit(rollout, notices)
    return plan


def write_status(rollout: Rollout, plan: Plan, ports: Ports) -> None:
    """The plan's status, unless it is the status the Rollout already has."""
    if rollout.status is None or plan.status != rollout.status:
        ports.cluster.write_status(rollout, plan.status)


def apply_actions(
    rollout: Rollout,
    actions: Sequence[Action],
    ports: Ports,
    status: RolloutStatus | None = None,
) -> None:
    """Each action in order. An analysis starts from the planned ``status`` (when given): the
    revision, attempt and slots it analyses are the ones this cycle moved to."""
    planned = rollout if status is None else rollout.model_copy(update={"status": status})
    for action in actions:
        match action:
            case DeploySlot(slot, revision, template, replicas):
                ports.cluster.deploy_slot(rollout, slot, revision, template, replicas)
            case ScaleSlot(slot, replicas):
                ports.cluster.scale_slot(rollout, slot, replicas)
            case SetServiceSelector(service, slot):
                ports.cluster.set_service_selector(rollout, service, slot)
            case SetWeight(canary):
                if ports.router is not None:
                    ports.router.set_weight(canary)
                before = rollout.status.weight_changed_at if rollout.status else None
                if status is not None and status.weight_changed_at != before:
                    # the engine marked the change at the cycle's start; traffic moved only now,
                    # after this cycle's analysis tick: analysis windows are cut here
                    status.weight_changed_at = datetime.fromtimestamp(ports.verdicts.clock(), UTC)
            case RemoveManagedRoutes():
                if ports.router is not None:
                    ports.router.remove_managed_routes()
            case ScaleWorkload(replicas):
                ports.cluster.scale_workload(rollout, replicas)
            case SetManagedRoutes(routes):
                if ports.router is not None:
                    ports.router.set_managed_routes(routes)
            case ReleaseSlot(slot):
                ports.cluster.release_slot(rollout, slot)
            case DeleteSlot(slot):
                ports.cluster.delete_slot(rollout, slot)
            case StartAnalysis():
                ports.verdicts.start(planned, action)
            case StopAnalysis(name):
                ports.verdicts.stop(rollout, name)
            case EmitEvent(type_, reason, message):
                ports.cluster.emit_event(rollout, type_, reason, message)


def cycle(rollout: Rollout, ports: Ports, now: datetime, request: Request | None = None) -> Plan:
    """One reconcile cycle of ``rollout``: tick, observe, decide, apply, write status."""
    tick(rollout, ports)
    observed = observe(rollout, ports, request)
    plan = decide(rollout, observed, now)
    try:
        return apply(rollout, plan, ports, now)
    except RoutingError as e:
        # the router broke between the read and the write: the engine decides again knowing it
        # (it holds and reports); the status of the plan that failed is never written
        plan = decide(rollout, replace(observed, routing_error=str(e)), now)
        return apply(rollout, plan, ports, now)
