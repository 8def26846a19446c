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
    """Validate ``obj`` as ``model``, raising InvalidSpec with field-naming messages.

    A validator that meets a shape it did not expect (a string where a mapping belongs) raises
    AttributeError or TypeError rather than a ValidationError; that is still the user's input
    being wrong, so it is an InvalidSpec too, never a crash of the reconcile."""
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        raise InvalidSpec(problems_of(e, prefix)) from None
    except (AttributeError, TypeError, KeyError) as e:
        where = ".".join(prefix) or "spec"
        raise InvalidSpec([f"{where}: malformed ({type(e).__name__}: {e})"]) from None


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else f"a {type(value).__name__}"


def template_problems(obj: Mapping[str, Any]) -> list[str]:
    """The pod template's shape, which the schema leaves open (``preserve-unknown-fields``):
    what Sluice reads of it (labels) and what every Deployment needs (named containers).

    Checked before the model so a string where a mapping belongs is named, not a crash; the
    rest of the pod spec is the API server's to judge when the slot Deployment is written."""
    spec = obj.get("spec")
    template = spec.get("template") if isinstance(spec, Mapping) else None
    if not isinstance(template, Mapping):
        return []  # absent or not a mapping: the model names it
    out: list[str] = []
    meta = template.get("metadata")
    if meta is not None and not isinstance(meta, Mapping):
        out.append(f"spec.template.metadata: must be a mapping, got {_kind(meta)}")
    elif meta is not None:
        labels = meta.get("labels")
        if labels is not None and not (
            isinstance(labels, Mapping) and all(isinstance(v, str) for v in labels.values())
        ):
            out.append("spec.template.metadata.labels: must be a mapping of strings")
    pod = template.get("spec")
    if pod is not None and not isinstance(pod, Mapping):
        out.append(f"spec.template.spec: must be a mapping, got {_kind(pod)}")
        return out
    containers = (pod or {}).get("containers")
    if containers is not None and not isinstance(containers, list):
        out.append(f"spec.template.spec.containers: must be a list, got {_kind(containers)}")
        return out
    for i, c in enumerate(containers or []):
        where = f"spec.template.spec.containers[{i}]"
        if not isinstance(c, Mapping):
            out.append(f"{where}: must be a mapping, got {_kind(c)}")
        elif not isinstance(c.get("name"), str) or not c["name"]:
            out.append(f"{where}.name: is required (a non-empty string)")
    return out


def parse_rollout(obj: Any) -> Rollout:
    """Validate a Rollout as it comes from YAML or the API server."""
    if not isinstance(obj, Mapping):
        raise InvalidSpec(["a Rollout must be a mapping"])
    if obj.get("kind", "Rollout") != "Rollout":
        raise InvalidSpec([f"kind: expected Rollout, got {obj.get('kind')!r}"])
    problems = template_problems(obj)
    if problems:
        raise InvalidSpec(problems)
    return parse(Rollout, obj)
