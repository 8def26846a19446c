"""Turn pydantic's errors into the one-line, field-naming messages users act on.

The same text reaches ``sluice lint``, the ``Stalled``/``InvalidSpec`` condition and events, so a
user sees ``spec.strategy.canary.steps[2].setWeight: must be between 0 and 100`` wherever they look.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from rollouts.api.rollout import Rollout

M = TypeVar("M", bound=BaseModel)


class InvalidSpec(ValueError):
    """A resource failed validation; ``problems`` holds one message per offending field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def field_path(loc: Iterable[int | str]) -> str:
    """``("spec", "steps", 2, "setWeight")`` -> ``spec.steps[2].setWeight``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-after", "function-before")):
            continue  # pydantic's validator frames are not fields
        else:
            out += ("." if out else "") + part
    return out


def _message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"])).removeprefix("Value error, ")
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if kind in ("string_too_short", "too_short"):
        return "must not be empty"
    return str(err["msg"])


def problems_of(error: ValidationError, prefix: Iterable[str] = ()) -> list[str]:
    msgs = []
    for err in error.errors():
        path = field_path([*prefix, *err["loc"]])
        msgs.append(f"{path}: {_message(err)}" if path else _message(err))
    # a union of str|int reports once per member; the user needs to hear it once
    return list(dict.fromkeys(msgs))


def parse(model: type[M], obj: Any, prefix: Iterable[str] = ()) -> M:
    """Validate ``obj`` as ``model``, raising InvalidSpec with field-naming messages."""
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        raise InvalidSpec(problems_of(e, prefix)) from None


def parse_rollout(obj: Any) -> Rollout:
    """Validate a Rollout as it comes from YAML or the API server."""
    if not isinstance(obj, Mapping):
        raise InvalidSpec(["a Rollout must be a mapping"])
    if obj.get("kind", "Rollout") != "Rollout":
        raise InvalidSpec([f"kind: expected Rollout, got {obj.get('kind')!r}"])
    return parse(Rollout, obj)
