"""Conventions every Sluice API model shares.

Kubernetes speaks camelCase and rejects what it does not know, so the models do too: a typo in a
Rollout must fail loudly rather than silently fall back to a default. The conventions themselves
live in ``analysis.api_conventions`` (``rollouts`` may import ``analysis``, never the reverse), so the
Rollout and the analysis kinds read and fail alike; the rules only a Rollout needs stay here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from analysis.api_conventions import (
    ApiModel,
    Duration,
    NonNegativeInt,
    StatusModel,
    exactly_one,
    one_of_rule,
    parse_duration,
)

__all__ = [
    "ApiModel",
    "Duration",
    "NonNegativeInt",
    "Percent",
    "StatusModel",
    "differ_rule",
    "exactly_one",
    "one_of_rule",
    "parse_duration",
    "services_differ",
]


def _percent(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer between 0 and 100")
    if not 0 <= value <= 100:
        raise ValueError("must be between 0 and 100")
    return value


Percent = Annotated[
    int,
    BeforeValidator(_percent),
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": 100}),
]


def _differ_message(a: str, b: str) -> str:
    return f"{a} and {b} must name different Services"


def services_differ(**fields: str) -> None:
    """Two roles on one Service would send canary traffic to stable pods and vice versa."""
    (a, va), (b, vb) = fields.items()
    if va == vb:
        raise ValueError(_differ_message(a, b))


def differ_rule(a: str, b: str) -> dict[str, Any]:
    """The CEL twin of ``services_differ``, so the API server rejects what ``sluice`` rejects."""
    return {"rule": f"self.{a} != self.{b}", "message": _differ_message(a, b)}
