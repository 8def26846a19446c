"""Conventions every Sluice API model shares.

Kubernetes speaks camelCase and rejects what it does not know, so the models do too: a typo in a
Rollout must fail loudly rather than silently fall back to a default.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base of every spec/status model: camelCase on the wire, unknown fields are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as Kubernetes stores it: camelCase, no unset optionals."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str | int) -> int:
    """Seconds in a Go-style duration ("90s", "5m", "1h30m"), or an integer of seconds.

    Durations come from humans in YAML; accepting Argo Rollouts' spelling makes migration painless.
    """
    if isinstance(text, bool):
        raise ValueError("must be a duration such as 30s, 5m or 1h")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("must not be negative")
        return text
    m = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not m or not any(m.groups()):
        if isinstance(text, str) and text.strip().isdigit():
            return int(text.strip())
        raise ValueError(f"must be a duration such as 30s, 5m or 1h (got {text!r})")
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def _check_duration(value: Any) -> Any:
    parse_duration(value)
    return value


Duration = Annotated[
    str | int,
    BeforeValidator(_check_duration),
    WithJsonSchema(
        {
            "type": "string",
            "x-kubernetes-int-or-string": True,
            "description": "A duration: 30s, 5m, 1h30m, or a number of seconds.",
        }
    ),
]
"""A duration as written by the user ("30s", "5m", "1h", or seconds); parse with parse_duration."""


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


def _non_negative(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    if value < 0:
        raise ValueError("must not be negative")
    return value


NonNegativeInt = Annotated[
    int,
    BeforeValidator(_non_negative),
    WithJsonSchema({"type": "integer", "minimum": 0}),
]


def exactly_one(**fields: object) -> None:
    """Raise when not exactly one of the named (wire-name) fields is set.

    The same rule the CRD's CEL checks, so ``sluice lint`` and the controller say what the API
    server would have said.
    """
    set_ = [k for k, v in fields.items() if v is not None]
    if len(set_) != 1:
        got = ", ".join(set_) if set_ else "none"
        raise ValueError(f"must set exactly one of {', '.join(fields)} (got {got})")


def one_of_rule(*fields: str) -> dict[str, Any]:
    """The CEL rule (x-kubernetes-validations) saying exactly one of these fields is set."""
    has = ", ".join(f"has(self.{f})" for f in fields)
    return {
        "rule": f"[{has}].filter(x, x).size() == 1",
        "message": f"must set exactly one of {', '.join(fields)}",
    }


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
