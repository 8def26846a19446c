"""One reconcile: observe through the ports, ``decide``, apply the plan, write status.

The operator and the simulator both call this, so the simulator exercises the controller's exact
path from observation to action; only the ports differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rollouts.api.rollout import Rollout
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
from rollouts.routing.port import TrafficRouter
from rollouts.verdicts.port import VerdictSource
from rollouts.workload_ref import observation


@dataclass
class Ports:
    cluster: Cluster
    router: TrafficRouter | None
    verdicts: VerdictSource


def observe(rollout: Rollout, ports: Ports, request: Request | None = None) -> Observed:
    routed = rollout.canary is not None and rollout.canary.traffic_routing is not None
    router = ports.router if routed else None
    return Observed(
        slots=ports.cluster.read_slots(rollout),
        services=ports.cluster.read_service_slots(rollout, services_of(rollout)),
        weight=router.get_weight() if router else None,
        weight_verified=router.verify_weight() if router else None,
        analysis=ports.verdicts.observe(rollout),
        request=request,
        workload=(
            observation(ports.cluster.read_workload(rollout)) if rollout.spec.workload_ref else None
        ),
    )


def apply(rollout: Rollout, plan: Plan, ports: Ports) -> None:
    """Apply actions in the order planned (weights before scale-downs), then write status once."""
    apply_actions(rollout, plan.actions, ports)
    ports.cluster.write_status(rollout, plan.status)


def apply_actions(rollout: Rollout, actions: Sequence[Action], ports: Ports) -> None:
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
                ports.verdicts.start(rollout, action)
            case StopAnalysis(name):
                ports.verdicts.stop(rollout, name)
            case EmitEvent(type_, reason, message):
                ports.cluster.emit_event(rollout, type_, reason, message)


def reconcile(
    rollout: Rollout, ports: Ports, now: datetime, request: Request | None = None
) -> Plan:
    plan = decide(rollout, observe(rollout, ports, request), now)
    apply(rollout, plan, ports)
    return plan
