"""Istio: the canary weight lives in the user's VirtualService, in the http routes it names.

Sluice owns two numbers per managed route (the ``weight`` of the stable and of the canary
destination) and nothing else: matches, retries, timeouts, headers, other routes and other
destinations stay exactly as the user wrote them.
"""

from __future__ import annotations

import copy
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
    names_service,
    patch_for,
    pointer,
    weight_of,
)

GROUP = "networking.istio.io"
VERSIONS = ("v1beta1", "v1")


def resource(version: str = "v1beta1") -> Resource:
    if version not in VERSIONS:
        raise ValueError(f"VirtualService version must be one of {', '.join(VERSIONS)}")
    return Resource(GROUP, version, "virtualservices", "VirtualService")


def route_splits(
    vs: Mapping[str, Any],
    *,
    routes: Sequence[str] | None,
    stable: str,
    canary: str,
    namespace: str,
    prefix: str | None = None,
) -> list[Split]:
    """The weighted pairs of the managed http routes.

    With ``routes`` unset, the managed routes are those that send anywhere near the two Services;
    routes reaching neither (redirects, other apps) are the user's and left out. Every managed
    route must hold both destinations, or a shifted weight would not reach its traffic.
    """
    meta = vs.get("metadata") or {}
    label = f"VirtualService {meta.get('namespace', namespace)}/{meta.get('name', '?')}"
    http = (vs.get("spec") or {}).get("http") or []
    wanted = list(dict.fromkeys(routes)) if routes else None
    splits: list[Split] = []
    headers = managed.header_routes(vs)  # Sluice's header routes send only to the canary
    if wanted is not None and prefix is not None:
        # this Rollout's mirror route copies a managed route, weights included
        wanted += sorted(managed.owned(vs, prefix) - headers)
    if wanted is not None:
        names = [r.get("name") for r in http]
        for name in wanted:
            if name not in names:
                known = ", ".join(f'"{n}"' for n in names if n) or "none"
                raise RoutingError(f'{label}: no http route named "{name}" (named routes: {known})')
        chosen = [(i, r) for i, r in enumerate(http) if r.get("name") in wanted]
    else:
        chosen = [
            (i, r)
            for i, r in enumerate(http)
            if r.get("name") not in headers
            and any(
                _host_is(d, s, namespace) for d in r.get("route") or [] for s in (stable, canary)
            )
        ]
        if not chosen:
            raise RoutingError(
                f'{label}: no http route sends to stable Service "{stable}" '
                f'or canary Service "{canary}"'
            )
    for i, route in chosen:
        splits.append(_split(label, i, route, stable=stable, canary=canary, namespace=namespace))
    return splits


def weight_patch(
    vs: Mapping[str, Any],
    canary_weight: int,
    *,
    routes: Sequence[str] | None,
    stable: str,
    canary: str,
    namespace: str,
) -> JsonPatch:
    """The JSON patch that sets ``canary_weight``; empty when the VirtualService holds it."""
    splits = route_splits(vs, routes=routes, stable=stable, canary=canary, namespace=namespace)
    return patch_for(vs, splits, canary_weight)


def read_weight(
    vs: Mapping[str, Any],
    *,
    routes: Sequence[str] | None,
    stable: str,
    canary: str,
    namespace: str,
) -> int | None:
    splits = route_splits(vs, routes=routes, stable=stable, canary=canary, namespace=namespace)
    return weight_of(splits)


def _host_is(dest: Mapping[str, Any], service: str, namespace: str) -> bool:
    host = (dest.get("destination") or {}).get("host")
    return isinstance(host, str) and names_service(host, service, namespace)


def _split(
    label: str, index: int, route: Mapping[str, Any], *, stable: str, canary: str, namespace: str
) -> Split:
    name = route.get("name")
    where = f'http route "{name}"' if name else f"http[{index}]"
    dests = route.get("route") or []
    found: dict[str, int] = {}
    for role, service in (("stable", stable), ("canary", canary)):
        hits = [j for j, d in enumerate(dests) if _host_is(d, service, namespace)]
        if not hits:
            raise RoutingError(
                f'{label}: {where} has no destination for {role} Service "{service}"'
            )
        if len(hits) > 1:
            raise RoutingError(
                f'{label}: {where} has {len(hits)} destinations for {role} Service "{service}" '
                "(subsets are not supported: route to one host per role)"
            )
        found[role] = hits[0]
    for j, d in enumerate(dests):
        if j not in found.values() and (int_weight(d.get("weight")) or 0) != 0:
            host = (d.get("destination") or {}).get("host")
            raise RoutingError(
                f'{label}: {where} also sends weight {d.get("weight")} to "{host}"; '
                "stable and canary weights could not sum to 100"
            )
    path = ("spec", "http", index, "route")
    guards: list[dict[str, Any]] = []
    if name:
        guards.append({"op": "test", "path": pointer("spec", "http", index, "name"), "value": name})
    for role in ("stable", "canary"):
        j = found[role]
        host = dests[j]["destination"]["host"]
        guards.append(
            {"op": "test", "path": pointer(*path, j, "destination", "host"), "value": host}
        )
    s, c = found["stable"], found["canary"]
    return Split(
        where=where,
        path=path,
        stable=s,
        canary=c,
        # Istio reads a missing weight as 0 once a route has several destinations.
        stable_weight=_weight(dests[s]),
        canary_weight=_weight(dests[c]),
        guards=tuple(guards),
    )


def _weight(dest: Mapping[str, Any]) -> int | None:
    return 0 if "weight" not in dest else int_weight(dest["weight"])


def managed_routes_patch(
    vs: Mapping[str, Any],
    wanted: ManagedRoutes,
    *,
    prefix: str,
    routes: Sequence[str] | None,
    stable: str,
    canary: str,
    namespace: str,
) -> JsonPatch:
    """The patch making this Rollout's header and mirror routes ``wanted``.

    Both derive from the first managed route, so they keep its matches, retries and timeouts:
    the header route adds the headers to each of its matches and sends only to the canary; the
    mirror route is a copy (weights too, kept by ``set_weight`` like the original's) that also
    mirrors ``wanted.mirror`` percent to the canary. They go first in ``http``: Istio takes the
    first route that matches.
    """
    http = list((vs.get("spec") or {}).get("http") or [])
    mine = managed.owned(vs, prefix)
    user = [r for r in http if r.get("name") not in mine]
    new: list[dict[str, Any]] = []
    if not wanted.empty:
        meta = vs.get("metadata") or {}
        label = f"VirtualService {meta.get('namespace', namespace)}/{meta.get('name', '?')}"
        managed.check_names_free(label, user, prefix, mine)
        base_vs = {**vs, "spec": {**(vs.get("spec") or {}), "http": user}}
        split = route_splits(
            base_vs, routes=routes, stable=stable, canary=canary, namespace=namespace
        )[0]
        base = user[int(split.path[2])]
        canary_dest = copy.deepcopy(base["route"][split.canary])
        if wanted.headers:
            route = copy.deepcopy(base)
            route["name"] = managed.route_name(prefix, managed.HEADER)
            route["match"] = _with_headers(base.get("match"), wanted.headers)
            route["route"] = [{**canary_dest, "weight": 100}]
            route.pop("mirror", None)
            route.pop("mirrorPercentage", None)
            new.append(route)
        if wanted.mirror:
            route = copy.deepcopy(base)
            route["name"] = managed.route_name(prefix, managed.MIRROR)
            route["mirror"] = copy.deepcopy(canary_dest["destination"])
            route["mirrorPercentage"] = {"value": float(wanted.mirror)}
            new.append(route)
    names = {r["name"] for r in new}
    return managed.replace_routes(vs, ("spec", "http"), http, new + user, prefix, names)


def _with_headers(
    matches: list[dict[str, Any]] | None, headers: Sequence[HeaderMatch]
) -> list[dict[str, Any]]:
    ours = {h.name.lower(): {h.match: h.value} for h in headers}
    if not matches:
        return [{"headers": ours}]
    return [{**copy.deepcopy(m), "headers": {**(m.get("headers") or {}), **ours}} for m in matches]


class IstioRouter(JsonPatchRouter):
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        *,
        stable_service: str,
        canary_service: str,
        routes: Sequence[str] | None = None,
        version: str = "v1beta1",
        prefix: str = "sluice",
    ) -> None:
        super().__init__(api, namespace, name)
        self.resource = resource(version)
        self.prefix = prefix
        self.routes = list(routes) if routes else None
        self.stable_service = stable_service
        self.canary_service = canary_service

    def splits(self, obj: Mapping[str, Any]) -> list[Split]:
        return route_splits(
            obj,
            routes=self.routes,
            stable=self.stable_service,
            canary=self.canary_service,
            namespace=self.namespace,
            prefix=self.prefix,
        )

    def managed_routes_patch(self, obj: Mapping[str, Any], routes: ManagedRoutes) -> JsonPatch:
        return managed_routes_patch(
            obj,
            routes,
            prefix=self.prefix,
            routes=self.routes,
            stable=self.stable_service,
            canary=self.canary_service,
            namespace=self.namespace,
        )
