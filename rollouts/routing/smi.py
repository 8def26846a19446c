"""SMI: the canary weight lives in the ``backends`` of the user's TrafficSplit.

Sluice writes the ``weight`` of the stable and canary backends and nothing else (``service``,
``matches`` and any other backend stay the user's). Weights are written as integers, which
``split.smi-spec.io`` v1alpha2 and later require; v1alpha1's quantity strings are not supported.
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
    names_service,
    patch_for,
    pointer,
    weight_of,
)

GROUP = "split.smi-spec.io"
VERSIONS = ("v1alpha2", "v1alpha3", "v1alpha4")


def resource(version: str = "v1alpha2") -> Resource:
    if version not in VERSIONS:
        raise ValueError(f"TrafficSplit version must be one of {', '.join(VERSIONS)}")
    return Resource(GROUP, version, "trafficsplits", "TrafficSplit")


def backend_split(split: Mapping[str, Any], *, stable: str, canary: str, namespace: str) -> Split:
    meta = split.get("metadata") or {}
    label = f"TrafficSplit {meta.get('namespace', namespace)}/{meta.get('name', '?')}"
    backends = (split.get("spec") or {}).get("backends") or []
    found: dict[str, int] = {}
    for role, service in (("stable", stable), ("canary", canary)):
        hits = [
            j
            for j, b in enumerate(backends)
            if isinstance(b.get("service"), str) and names_service(b["service"], service, namespace)
        ]
        if not hits:
            raise RoutingError(
                f'{label}: spec.backends has no backend for {role} Service "{service}"'
            )
        if len(hits) > 1:
            raise RoutingError(
                f'{label}: spec.backends has {len(hits)} backends for {role} Service "{service}"'
            )
        found[role] = hits[0]
    for j, b in enumerate(backends):
        if j not in found.values() and (int_weight(b.get("weight")) or 0) != 0:
            raise RoutingError(
                f"{label}: spec.backends also sends weight {b.get('weight')} to "
                f'"{b.get("service")}"; stable and canary weights could not sum to 100'
            )
    s, c = found["stable"], found["canary"]
    path = ("spec", "backends")
    return Split(
        where="spec.backends",
        path=path,
        stable=s,
        canary=c,
        stable_weight=int_weight(backends[s].get("weight")),
        canary_weight=int_weight(backends[c].get("weight")),
        guards=tuple(
            {"op": "test", "path": pointer(*path, j, "service"), "value": backends[j]["service"]}
            for j in (s, c)
        ),
    )


def weight_patch(
    split: Mapping[str, Any], canary_weight: int, *, stable: str, canary: str, namespace: str
) -> JsonPatch:
    """The JSON patch that sets ``canary_weight``; empty when the TrafficSplit holds it."""
    found = backend_split(split, stable=stable, canary=canary, namespace=namespace)
    return patch_for(split, [found], canary_weight)


def read_weight(
    split: Mapping[str, Any], *, stable: str, canary: str, namespace: str
) -> int | None:
    return weight_of([backend_split(split, stable=stable, canary=canary, namespace=namespace)])


class SMIRouter(JsonPatchRouter):
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        *,
        stable_service: str,
        canary_service: str,
        version: str = "v1alpha2",
    ) -> None:
        super().__init__(api, namespace, name)
        self.resource = resource(version)
        self.stable_service = stable_service
        self.canary_service = canary_service

    def splits(self, obj: Mapping[str, Any]) -> list[Split]:
        return [
            backend_split(
                obj,
                stable=self.stable_service,
                canary=self.canary_service,
                namespace=self.namespace,
            )
        ]
