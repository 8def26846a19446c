"""Gateway API: the canary weight lives in the ``backendRefs`` of the user's HTTPRoute.

Every rule that references the stable or canary Service is managed; Sluice writes only the two
``weight`` fields of each such rule. Matches, filters, timeouts, parentRefs and rules that send
elsewhere stay the user's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client

from rollouts.routing.common import (
    JsonPatch,
    JsonPatchRouter,
    Resource,
    RoutingError,
    Split,
    int_weight,
    patch_for,
    pointer,
    weight_of,
)

RESOURCE = Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")

# backendRef.weight defaults to 1 in the Gateway API: an unweighted ref still takes traffic.
DEFAULT_WEIGHT = 1


def rule_splits(
    route: Mapping[str, Any], *, stable: str, canary: str, namespace: str
) -> list[Split]:
    meta = route.get("metadata") or {}
    label = f"HTTPRoute {meta.get('namespace', namespace)}/{meta.get('name', '?')}"
    rules = (route.get("spec") or {}).get("rules") or []
    splits: list[Split] = []
    for i, rule in enumerate(rules):
        refs = rule.get("backendRefs") or []
        found = {
            role: [j for j, r in enumerate(refs) if _refers(r, service, namespace)]
            for role, service in (("stable", stable), ("canary", canary))
        }
        if not found["stable"] and not found["canary"]:
            continue
        where = f'rule "{rule["name"]}"' if rule.get("name") else f"rules[{i}]"
        for role, service in (("stable", stable), ("canary", canary)):
            if not found[role]:
                raise RoutingError(
                    f'{label}: {where} has no backendRef for {role} Service "{service}"'
                )
            if len(found[role]) > 1:
                raise RoutingError(
                    f"{label}: {where} has {len(found[role])} backendRefs for {role} Service "
                    f'"{service}"'
                )
        s, c = found["stable"][0], found["canary"][0]
        for j, ref in enumerate(refs):
            if j not in (s, c) and _weight(ref) != 0:
                raise RoutingError(
                    f"{label}: {where} also sends weight {_weight(ref)} to backendRef "
                    f'"{ref.get("name")}"; stable and canary weights could not sum to 100'
                )
        path = ("spec", "rules", i, "backendRefs")
        guards = tuple(
            {"op": "test", "path": pointer(*path, j, "name"), "value": refs[j]["name"]}
            for j in (s, c)
        )
        splits.append(
            Split(
                where=where,
                path=path,
                stable=s,
                canary=c,
                stable_weight=_weight(refs[s]),
                canary_weight=_weight(refs[c]),
                guards=guards,
            )
        )
    if not splits:
        raise RoutingError(
            f'{label}: no rule has backendRefs for stable Service "{stable}" '
            f'or canary Service "{canary}"'
        )
    return splits


def weight_patch(
    route: Mapping[str, Any], canary_weight: int, *, stable: str, canary: str, namespace: str
) -> JsonPatch:
    """The JSON patch that sets ``canary_weight``; empty when the HTTPRoute holds it."""
    splits = rule_splits(route, stable=stable, canary=canary, namespace=namespace)
    return patch_for(route, splits, canary_weight)


def read_weight(
    route: Mapping[str, Any], *, stable: str, canary: str, namespace: str
) -> int | None:
    return weight_of(rule_splits(route, stable=stable, canary=canary, namespace=namespace))


def _refers(ref: Mapping[str, Any], service: str, namespace: str) -> bool:
    """A core Service in the route's namespace (a ref elsewhere is another app's, even if same-named)."""
    return (
        ref.get("name") == service
        and ref.get("group", "") in ("", None)
        and ref.get("kind", "Service") in ("Service", None)
        and ref.get("namespace", namespace) in (namespace, None)
    )


def _weight(ref: Mapping[str, Any]) -> int | None:
    return DEFAULT_WEIGHT if "weight" not in ref else int_weight(ref["weight"])


class GatewayAPIRouter(JsonPatchRouter):
    resource = RESOURCE

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        *,
        stable_service: str,
        canary_service: str,
    ) -> None:
        super().__init__(api, namespace, name)
        self.stable_service = stable_service
        self.canary_service = canary_service

    def splits(self, obj: Mapping[str, Any]) -> list[Split]:
        return rule_splits(
            obj, stable=self.stable_service, canary=self.canary_service, namespace=self.namespace
        )
