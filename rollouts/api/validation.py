"""Turn pydantic's errors into the one-line, field-naming messages users act on.

The same text reaches ``sluice lint``, the ``Stalled``/``InvalidSpec`` condition and events, so a
user sees ``spec.strategy.canary.steps[2].setWeight: must be between 0 and 100`` wherever they look.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from analysis.api_conventions import field_path, problems_of
from rollouts.api.rollout import Rollout

__all__ = ["InvalidSpec", "field_path", "parse", "parse_rollout", "problems_of"]

M = TypeVar("M", bound=BaseModel)


class InvalidSpec(ValueError):
    """A resource failed validation; ``problems`` holds one message per offending field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


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
