"""The pure rollout engine: ``decide(rollout, observed, now) -> Plan``."""

from rollouts.engine.decide import decide, decide_invalid
from rollouts.engine.plan import (
    Action,
    AnalysisObservation,
    DeploySlot,
    EmitEvent,
    Observed,
    Plan,
    Request,
    ScaleSlot,
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
    "DeploySlot",
    "EmitEvent",
    "Observed",
    "Plan",
    "Request",
    "ScaleSlot",
    "SetServiceSelector",
    "SetWeight",
    "SlotObservation",
    "StartAnalysis",
    "StopAnalysis",
    "decide",
    "decide_invalid",
    "template_hash",
]
