"""Gateway API: the canary weight lives in the ``backendRefs`` of the user's HTTPRoute.

Every rule that references the stable or canary Service is managed; Sluice writes only the two
``weight`` fields of each such rule. Matches, filters, timeouts, parentRefs and rules that send
elsewhere stay the user's.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client

from rollouts.engine.plan import HeaderMatch, ManagedRoutes
from rollouts.routing import managed
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
    headers = managed.header_routes(route)  # Sluice's header rules send only to the canary
    for i, rule in enumerate(rules):
        if rule.get("name") in headers:
            continue
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


def managed_routes_patch(
    route: Mapping[str, Any],
    wanted: ManagedRoutes,
    *,
    prefix: str,
    stable: str,
    canary: str,
    namespace: str,
) -> JsonPatch:
    """The patch making this Rollout's header and mirror rules ``wanted``.

    Both derive from the first managed rule, keeping its matches and filters: the header rule adds
    the headers to each match and sends only to the canary (within a route, Gateway API prefers
    the rule with more header matches); the mirror rule is a copy (weights kept by ``set_weight``)
    with a ``RequestMirror`` filter for ``wanted.mirror`` percent, placed first so it wins the tie
    with the rule it copies.
    """
    rules = list((route.get("spec") or {}).get("rules") or [])
    mine = managed.owned(route, prefix)
    user = [r for r in rules if r.get("name") not in mine]
    new: list[dict[str, Any]] = []
    if not wanted.empty:
        meta = route.get("metadata") or {}
        label = f"HTTPRoute {meta.get('namespace', namespace)}/{meta.get('name', '?')}"
        managed.check_names_free(label, user, prefix, mine)
        base_route = {**route, "spec": {**(route.get("spec") or {}), "rules": user}}
        split = rule_splits(base_route, stable=stable, canary=canary, namespace=namespace)[0]
        base = user[int(split.path[2])]
        canary_ref = copy.deepcopy(base["backendRefs"][split.canary])
        if wanted.headers:
            rule = copy.deepcopy(base)
            rule["name"] = managed.route_name(prefix, managed.HEADER)
            rule["matches"] = _with_headers(base.get("matches"), wanted.headers)
            rule["backendRefs"] = [{**canary_ref, "weight": 100}]
            new.append(rule)
        if wanted.mirror:
            rule = copy.deepcopy(base)
            rule["name"] = managed.route_name(prefix, managed.MIRROR)
            target = {k: v for k, v in canary_ref.items() if k != "weight" and k != "filters"}
            mirror = {"backendRef": target, "percent": wanted.mirror}
            rule["filters"] = [
                *(base.get("filters") or []),
                {"type": "RequestMirror", "requestMirror": mirror},
            ]
            new.append(rule)
    names = {r["name"] for r in new}
    return managed.replace_routes(route, ("spec", "rules"), rules, new + user, prefix, names)


def _header(h: HeaderMatch) -> dict[str, str]:
    if h.match == "exact":
        return {"type": "Exact", "name": h.name, "value": h.value}
    # Gateway API has no prefix match for headers: a regex anchored at the start is one
    value = h.value if h.match == "regex" else "^" + re.escape(h.value) + ".*"
    return {"type": "RegularExpression", "name": h.name, "value": value}


def _with_headers(
    matches: list[dict[str, Any]] | None, headers: Sequence[HeaderMatch]
) -> list[dict[str, Any]]:
    ours = [_header(h) for h in headers]
    names = {h.name.lower() for h in headers}
    if not matches:
        return [{"headers": ours}]
    out = []
    for m in matches:
        kept = [h for h in m.get("headers") or [] if str(h.get("name", "")).lower() not in names]
        out.append({**copy.deepcopy(m), "headers": kept + ours})
    return out


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
        prefix: str = "sluice",
    ) -> None:
        super().__init__(api, namespace, name)
        self.stable_service = stable_service
        self.canary_service = canary_service
        self.prefix = prefix

    def splits(self, obj: Mapping[str, Any]) -> list[Split]:
        return rule_splits(
            obj, stable=self.stable_service, canary=self.canary_service, namespace=self.namespace
        )

    def managed_routes_patch(self, obj: Mapping[str, Any], routes: ManagedRoutes) -> JsonPatch:
        return managed_routes_patch(
            obj,
            routes,
            prefix=self.prefix,
            stable=self.stable_service,
            canary=self.canary_service,
            namespace=self.namespace,
        )
