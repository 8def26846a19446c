"""The API-model conventions of ``analysis.api``, kept here because ``analysis`` never imports
``rollouts``.

They duplicate the few helpers of ``rollouts.api.base`` (camelCase, unknown fields rejected,
Go-style durations, exactly-one rules with their CEL twins) so the analysis kinds look and fail
exactly like the Rollout does. ``tests/unit/analysis/test_api.py`` checks the duplicates agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict


class ApiModel(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields are errors."""

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


class StatusModel(ApiModel):
    """Status parts are mutable: the run loop updates them in place between writes."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
        use_attribute_docstrings=True,
    )


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str | int) -> int:
    """Seconds in a Go-style duration ("90s", "5m", "1h30m"), or an integer of seconds.

    The same spelling as a Rollout's pause durations (and Argo Rollouts'), so templates migrate
    unchanged.
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


class FieldProblem(ValueError):
    """A cross-field rule broken at a field below the model that checks it.

    A model validator can only fail the whole model; raising this lets the message still name the
    field to fix (``spec.metrics[0].compare.method``), which ``problems_of`` appends to the path.
    ``field`` is dotted, list indices as numbers: ``metrics.0.name``.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(message)


def exactly_one(**fields: object) -> None:
    """Raise when not exactly one of the named (wire-name) fields is set; CEL: ``one_of_rule``."""
    set_ = [k for k, v in fields.items() if v is not None]
    if len(set_) != 1:
        got = ", ".join(set_) if set_ else "none"
        raise ValueError(f"must set exactly one of {', '.join(fields)} (got {got})")


def at_most_one(**fields: object) -> None:
    """Raise when more than one of the named fields is set; CEL: ``at_most_one_rule``."""
    set_ = [k for k, v in fields.items() if v is not None]
    if len(set_) > 1:
        raise ValueError(f"must set at most one of {', '.join(fields)} (got {', '.join(set_)})")


def one_of_rule(*fields: str) -> dict[str, Any]:
    """The CEL rule (x-kubernetes-validations) saying exactly one of these fields is set."""
    has = ", ".join(f"has(self.{f})" for f in fields)
    return {
        "rule": f"[{has}].filter(x, x).size() == 1",
        "message": f"must set exactly one of {', '.join(fields)}",
    }


def at_most_one_rule(*fields: str) -> dict[str, Any]:
    """The CEL rule saying at most one of these fields is set."""
    has = ", ".join(f"has(self.{f})" for f in fields)
    return {
        "rule": f"[{has}].filter(x, x).size() <= 1",
        "message": f"must set at most one of {', '.join(fields)}",
    }


def with_rules(*rules: Mapping[str, Any]) -> ConfigDict:
    """A model config carrying CEL rules, so the CRD enforces what the validators enforce."""
    extra: JsonDict = {"x-kubernetes-validations": [dict(r) for r in rules]}
    return ApiModel.model_config | ConfigDict(json_schema_extra=extra)


# ---------------------------------------------------------------------------------------------
# errors that name the field
# ---------------------------------------------------------------------------------------------


def field_path(loc: Iterable[int | str]) -> str:
    """``("spec", "metrics", 0, "name")`` -> ``spec.metrics[0].name``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-after", "function-before")):
            continue  # pydantic's validator frames are not fields
        else:
            out += ("." if out else "") + part
    return out


def _message(err: Mapping[str, Any]) -> tuple[str, str]:
    """The message of one pydantic error and the sub-field it names (often empty)."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "", "is required"
    if kind == "extra_forbidden":
        return "", "is not a known field"
    if kind == "value_error":
        error = ctx.get("error")
        if isinstance(error, FieldProblem):
            return error.field, error.message
        return "", str(error if error is not None else err["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        return "", f"must be one of {ctx.get('expected', '')}"
    if kind == "string_pattern_mismatch":
        return "", f"must match {ctx.get('pattern', '')}"
    if kind in ("string_too_short", "too_short"):
        return "", "must not be empty"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op, key = {
            "greater_than": (">", "gt"),
            "greater_than_equal": (">=", "ge"),
            "less_than": ("<", "lt"),
            "less_than_equal": ("<=", "le"),
        }[kind]
        bound = ctx.get(key)
        return "", f"must be {op} {bound:g}" if isinstance(bound, (int, float)) else str(err["msg"])
    return "", str(err["msg"])


def problems_of(error: ValidationError, prefix: Iterable[str | int] = ()) -> list[str]:
    """One ``path: message`` line per problem, each said once."""
    msgs = []
    for err in error.errors():
        sub, message = _message(err)
        below = [int(p) if p.isdigit() else p for p in sub.split(".")] if sub else []
        path = field_path([*prefix, *err["loc"], *below])
        msgs.append(f"{path}: {message}" if path else message)
    # a union of str|int reports once per member; the user needs to hear it once
    return list(dict.fromkeys(msgs))
