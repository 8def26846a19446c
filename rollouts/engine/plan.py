"""What the engine reads (Observed) and what it asks for (Plan).

Actions are plain values in the order they must be applied; the operator and the simulator apply
them through the Cluster and TrafficRouter ports. Keeping them data makes every decision testable as
a table and replayable in the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from rollouts.api.rollout import AnalysisMetricStatus, RolloutStatus, SlotName

AnalysisKind = Literal["step", "background", "prePromotion", "postPromotion"]
AnalysisPhase = Literal["Pending", "Running", "Successful", "Failed", "Inconclusive", "Error"]
RequestKind = Literal["promote", "promote-full", "abort", "retry", "pause", "resume"]
Promotion = Literal["promote", "promote-full"]
REQUEST_KINDS: tuple[RequestKind, ...] = (
    "promote",
    "promote-full",
    "abort",
    "retry",
    "pause",
    "resume",
)


@dataclass(frozen=True)
class SlotObservation:
    """A slot Deployment as the cluster reports it (absent slots are simply not observed)."""

    revision: str | None
    replicas: int
    ready_replicas: int


@dataclass(frozen=True)
class AnalysisObservation:
    """The latest verdict of an analysis the engine started; ``message`` names the failing metric
    and ``metrics`` carries each metric's evidence for status."""

    phase: AnalysisPhase
    message: str = ""
    metrics: tuple[AnalysisMetricStatus, ...] = ()


@dataclass(frozen=True)
class Request:
    """A manual operation (promote, abort, ...). ``id`` makes it idempotent across reconciles."""

    kind: RequestKind
    id: str


@dataclass(frozen=True)
class WorkloadObservation:
    """The Deployment a ``workloadRef`` names: its wanted and ready pods."""

    replicas: int
    ready_replicas: int


@dataclass(frozen=True)
class GateObservation:
    """The last answer of the gate the Rollout waits on, as the gate probe saw it (cached: the
    probe asks only when ``next_check_at`` has come)."""

    url: str
    open: bool
    answer: str
    checked_at: datetime | None = None
    next_check_at: datetime | None = None


@dataclass(frozen=True)
class Observed:
    """What the ports saw just before deciding.

    ``services`` maps a Service name to the slot its selector pins (``None``: both slots); a Service
    missing from the map is treated as unknown and its selector is (re)asserted. ``weight`` is the
    canary weight the traffic router reports (``None`` with no router or when unreadable).
    ``routing_error`` says the traffic router cannot read or write its object (the message names
    the object and the route); the engine then holds everything as it is and reports ``Stalled``.
    """

    slots: dict[SlotName, SlotObservation] = field(default_factory=dict)
    services: dict[str, SlotName | None] = field(default_factory=dict)
    weight: int | None = None
    weight_verified: bool | None = None
    analysis: dict[str, AnalysisObservation] = field(default_factory=dict)
    request: Request | None = None
    routing_error: str | None = None
    workload: WorkloadObservation | None = None
    """The referenced Deployment (``spec.workloadRef``); None without one."""
    gate: GateObservation | None = None
    """The current gate's last answer (``engine.gates.current_gate``); None when there is no
    gate to wait on, or nobody asked it yet."""


# --------------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class DeploySlot:
    """Make slot ``slot`` run ``revision`` of the pod template with ``replicas`` pods."""

    slot: SlotName
    revision: str
    template: dict[str, Any]
    replicas: int


@dataclass(frozen=True)
class ScaleSlot:
    slot: SlotName
    replicas: int


@dataclass(frozen=True)
class SetServiceSelector:
    """Point ``service`` at one slot's pods, or at both slots' (``slot=None``: replica-ratio split)."""

    service: str
    slot: SlotName | None


@dataclass(frozen=True)
class SetWeight:
    """Send ``canary`` percent of traffic to the canary Service through the traffic router."""

    canary: int


@dataclass(frozen=True)
class StartAnalysis:
    name: str
    kind: AnalysisKind
    templates: tuple[str, ...]
    args: tuple[tuple[str, str], ...] = ()
    step_index: int | None = None


@dataclass(frozen=True)
class StopAnalysis:
    name: str


@dataclass(frozen=True)
class ReleaseSlot:
    """Let the slot Deployment outlive its Rollout (drop the owner reference, so no GC)."""

    slot: SlotName


@dataclass(frozen=True)
class DeleteSlot:
    slot: SlotName


@dataclass(frozen=True)
class HeaderMatch:
    """One header a request must carry to be routed to the canary."""

    name: str
    value: str
    match: Literal["exact", "prefix", "regex"] = "exact"
    cookie: str | None = None
    """Set when this match is a cookie's (the ``Cookie`` header regex): its name, for routers
    that match cookies by name (NGINX)."""


@dataclass(frozen=True)
class ManagedRoutes:
    """The routes Sluice adds to the routing object beside the weights: a header route to the
    canary (``headers`` all required; none: no route) and a mirror of ``mirror`` percent."""

    headers: tuple[HeaderMatch, ...] = ()
    mirror: int = 0

    @property
    def empty(self) -> bool:
        return not self.headers and not self.mirror


@dataclass(frozen=True)
class SetManagedRoutes:
    """Make the router's own header and mirror routes exactly ``routes`` (idempotent: nothing is
    written when they already are, so asserting it every reconcile undoes drift)."""

    routes: ManagedRoutes


@dataclass(frozen=True)
class RemoveManagedRoutes:
    """Undo what the traffic router added (a canary Ingress, header routes)."""


@dataclass(frozen=True)
class ScaleWorkload:
    """Scale the Deployment ``spec.workloadRef`` names."""

    replicas: int


@dataclass(frozen=True)
class EmitEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Action = (
    DeploySlot
    | ScaleSlot
    | SetServiceSelector
    | SetWeight
    | StartAnalysis
    | StopAnalysis
    | ReleaseSlot
    | DeleteSlot
    | RemoveManagedRoutes
    | SetManagedRoutes
    | ScaleWorkload
    | EmitEvent
)


@dataclass(frozen=True)
class Plan:
    """The engine's answer: the new status, the actions to reach it, and when to look again."""

    status: RolloutStatus
    actions: tuple[Action, ...] = ()
    requeue_after: float | None = None

    @property
    def waits_for_events(self) -> bool:
        """Nothing this Rollout waits for is timed: it is settled, or waiting for a person (a
        pause without a duration) or a new revision (aborted), with no scale-down due and no
        analysis to measure (a run is ticked by its Rollout's reconcile, so a background
        analysis during a pause keeps it timed). Only an event changes that, so the operator
        needs no timed re-check: with 3,000 paused Rollouts a 10 s re-check each was 300
        reconciles a second, more than a core."""
        st = self.status
        return (
            self.requeue_after is None
            and st.phase in ("Healthy", "Paused", "Degraded")
            and not st.scale_downs
            and not any(r.phase in ("Pending", "Running") for r in st.analysis_runs)
        )
