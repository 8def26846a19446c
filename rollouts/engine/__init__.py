"""The pure rollout engine: ``decide(rollout, observed, now) -> Plan``."""

from rollouts.engine.decide import decide, decide_invalid
from rollouts.engine.deletion import deletion_actions
from rollouts.engine.plan import (
    Action,
    AnalysisObservation,
    DeleteSlot,
    DeploySlot,
    EmitEvent,
    HeaderMatch,
    ManagedRoutes,
    Observed,
    Plan,
    ReleaseSlot,
    RemoveManagedRoutes,
    Request,
    ScaleSlot,
    SetManagedRoutes,
    SetServiceSelector,
    SetWeight,
    SlotObservation,
    StartAnalysis,
    StopAnalysis,
)
from rollouts.engine.revision import template_hash

__all__ = [
    "Action",
    "AnalysisObservation",
    "DeleteSlot",
    "DeploySlot",
    "EmitEvent",
    "HeaderMatch",
    "ManagedRoutes",
    "Observed",
    "Plan",
    "ReleaseSlot",
    "RemoveManagedRoutes",
    "Request",
    "ScaleSlot",
    "SetManagedRoutes",
    "SetServiceSelector",
    "SetWeight",
    "SlotObservation",
    "StartAnalysis",
    "StopAnalysis",
    "decide",
    "decide_invalid",
    "deletion_actions",
    "template_hash",
]
