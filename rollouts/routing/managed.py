"""Routes Sluice adds to a user's routing object (header and mirror routes), and how it knows them.

Sluice owns such a route only if it is both *named* as Sluice's (``sluice-<rollout>-header`` or
``sluice-<rollout>-mirror``) and *marked*: listed in the object's ``sluice.dev/managed-routes``
annotation. A user route that happens to carry such a name is never touched, nor is another
Rollout's route in a shared object. Changes are one JSON patch that first tests the whole route
list is what was read (a concurrent edit fails it, and the router reads again), then replaces it
with the user's routes untouched and Sluice's own in front, where they take precedence.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from rollouts.routing.common import JsonPatch, RoutingError, pointer

ANNOTATION = "sluice.dev/managed-routes"
HEADER, MIRROR = "header", "mirror"


def route_name(prefix: str, kind: str) -> str:
    return f"{prefix}-{kind}"


def marked(obj: Mapping[str, Any]) -> set[str]:
    """The route names the object's annotation lists as Sluice's."""
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION) or ""
    return {n.strip() for n in raw.split(",") if n.strip()}


def owned(obj: Mapping[str, Any], prefix: str) -> set[str]:
    """This Rollout's own routes: named for it and marked."""
    return marked(obj) & {route_name(prefix, HEADER), route_name(prefix, MIRROR)}


def header_routes(obj: Mapping[str, Any]) -> set[str]:
    """Every marked header route (any Rollout's): they carry no weighted split."""
    return {n for n in marked(obj) if n.endswith("-" + HEADER)}


def replace_routes(
    obj: Mapping[str, Any],
    path: Sequence[str],
    current: list[Any],
    wanted: list[Any],
    prefix: str,
    mine: set[str],
) -> JsonPatch:
    """The guarded patch turning ``current`` into ``wanted`` and the mark into this Rollout's
    ``mine`` (other Rollouts' marks kept); empty when nothing changes."""
    others = marked(obj) - {route_name(prefix, HEADER), route_name(prefix, MIRROR)}
    names = sorted(others | mine)
    annotations = (obj.get("metadata") or {}).get("annotations")
    ops: JsonPatch = []
    if wanted != current:
        ops += [
            {"op": "test", "path": pointer(*path), "value": copy.deepcopy(current)},
            {"op": "replace", "path": pointer(*path), "value": wanted},
        ]
    have = (annotations or {}).get(ANNOTATION)
    want = ",".join(names) or None
    if have != want:
        where = pointer("metadata", "annotations", ANNOTATION)
        if want is None:
            ops.append({"op": "remove", "path": where})
        elif annotations is None:
            ops.append({"op": "add", "path": "/metadata/annotations", "value": {ANNOTATION: want}})
        else:
            ops.append({"op": "add" if have is None else "replace", "path": where, "value": want})
    return ops


def check_names_free(label: str, routes: list[Any], prefix: str, mine: set[str]) -> None:
    """A route of the user's already named as Sluice's would become indistinguishable from it once
    marked (and be removed with it): refuse instead, naming it."""
    for kind in (HEADER, MIRROR):
        name = route_name(prefix, kind)
        if name not in mine and any(r.get("name") == name for r in routes):
            raise RoutingError(
                f'{label}: a route named "{name}" exists and is not Sluice\'s; rename it, Sluice '
                "uses that name for its own route"
            )
