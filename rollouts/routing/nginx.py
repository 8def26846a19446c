"""NGINX Ingress: a canary Ingress that Sluice creates, owns, weights, and deletes.

ingress-nginx splits traffic with a second Ingress for the same hosts and paths, marked
``nginx.ingress.kubernetes.io/canary: "true"`` and weighted by ``canary-weight``. The user's stable
Ingress is only read, never written: Sluice copies the rules whose backend is the stable Service,
points them at the canary Service, and keeps that copy (``<stable-ingress>-<rollout>-canary``) in
step with the stable Ingress on every weight change.

At weight 0 the canary Ingress is deleted rather than kept at ``canary-weight: "0"``: a rollout
that finished (promoted or aborted) then leaves nothing behind, and an absent canary Ingress
reads back as weight 0, so the engine's view and the cluster agree without an extra action.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from analysis.store.retry import Timeout
from rollouts.engine.plan import HeaderMatch, ManagedRoutes
from rollouts.routing.common import (
    FIELD_MANAGER,
    MERGE_PATCH,
    ObjectCache,
    Resource,
    RoutingError,
    cached_read,
    check_weight,
    custom_api,
    int_weight,
)

RESOURCE = Resource("networking.k8s.io", "v1", "ingresses", "Ingress")

CANARY = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
INGRESS_CLASS = "kubernetes.io/ingress.class"
ROLLOUT_LABEL = "sluice.dev/rollout"
MANAGED_BY = "app.kubernetes.io/managed-by"
BY_HEADER = "nginx.ingress.kubernetes.io/canary-by-header"
BY_HEADER_VALUE = "nginx.ingress.kubernetes.io/canary-by-header-value"
BY_HEADER_PATTERN = "nginx.ingress.kubernetes.io/canary-by-header-pattern"
BY_COOKIE = "nginx.ingress.kubernetes.io/canary-by-cookie"
HEADER_ANNOTATIONS = (BY_HEADER, BY_HEADER_VALUE, BY_HEADER_PATTERN, BY_COOKIE)
OWNED_ANNOTATIONS = (CANARY, CANARY_WEIGHT, INGRESS_CLASS)
MAX_NAME = 253


@dataclass(frozen=True)
class Owner:
    """The Rollout the canary Ingress belongs to (no uid: no owner reference, e.g. in dry runs)."""

    name: str
    uid: str | None = None


def canary_ingress_name(stable_ingress: str, rollout: str) -> str:
    name = f"{stable_ingress}-{rollout}-canary"
    if len(name) > MAX_NAME:
        raise RoutingError(
            f'canary Ingress name "{name[:40]}..." would exceed {MAX_NAME} characters; '
            "shorten the stable Ingress or Rollout name"
        )
    return name


def desired_canary(
    stable: Mapping[str, Any],
    *,
    owner: Owner,
    stable_service: str,
    canary_service: str,
    weight: int,
) -> dict[str, Any]:
    """The whole canary Ingress for ``weight``, derived from the stable Ingress.

    Only paths whose backend is the stable Service are copied: a canary rule for another app's
    path would send that app's traffic share to the canary Service. Host, TLS and the ingress
    class are kept, because ingress-nginx pairs a canary with its main Ingress by host and path
    and serves it only if both belong to the same controller.
    """
    check_weight(weight)
    meta = stable.get("metadata") or {}
    namespace = meta.get("namespace")
    label = f"Ingress {namespace}/{meta.get('name', '?')}"
    spec = stable.get("spec") or {}
    rules: list[dict[str, Any]] = []
    for rule in spec.get("rules") or []:
        paths = []
        for path in (rule.get("http") or {}).get("paths") or []:
            service = (path.get("backend") or {}).get("service") or {}
            if service.get("name") == stable_service:
                swapped = copy.deepcopy(dict(path))
                swapped["backend"]["service"]["name"] = canary_service
                paths.append(swapped)
        if paths:
            copied = {k: copy.deepcopy(v) for k, v in rule.items() if k != "http"}
            copied["http"] = {"paths": paths}
            rules.append(copied)
    if not rules:
        raise RoutingError(
            f'{label}: spec.rules has no path with backend Service "{stable_service}"'
        )
    name = canary_ingress_name(str(meta.get("name")), owner.name)
    annotations = {CANARY: "true", CANARY_WEIGHT: str(weight)}
    if INGRESS_CLASS in (meta.get("annotations") or {}):
        annotations[INGRESS_CLASS] = meta["annotations"][INGRESS_CLASS]
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {ROLLOUT_LABEL: owner.name, MANAGED_BY: "sluice"},
        "annotations": annotations,
    }
    if namespace:
        metadata["namespace"] = namespace
    if owner.uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "sluice.dev/v1alpha1",
                "kind": "Rollout",
                "name": owner.name,
                "uid": owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    canary_spec: dict[str, Any] = {"rules": rules}
    for key in ("ingressClassName", "tls"):
        if key in spec:
            canary_spec[key] = copy.deepcopy(spec[key])
    return {
        "apiVersion": RESOURCE.api_version,
        "kind": RESOURCE.kind,
        "metadata": metadata,
        "spec": canary_spec,
    }


def canary_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch bringing an existing canary Ingress to ``desired``; None when it already is.

    Sluice owns the canary Ingress's spec outright (lists are replaced, keys it no longer wants are
    nulled), but only its own labels and annotations: others added by hand or by tools stay.
    """
    have_meta = current.get("metadata") or {}
    want_meta = desired["metadata"]
    meta_patch: dict[str, Any] = {}
    for key, owned in (("labels", (ROLLOUT_LABEL, MANAGED_BY)), ("annotations", OWNED_ANNOTATIONS)):
        have = have_meta.get(key) or {}
        want = want_meta.get(key) or {}
        changes = {k: v for k, v in want.items() if have.get(k) != v}
        changes.update({k: None for k in owned if k in have and k not in want})
        if changes:
            meta_patch[key] = changes
    if (
        want_meta.get("ownerReferences")
        and have_meta.get("ownerReferences") != want_meta["ownerReferences"]
    ):
        meta_patch["ownerReferences"] = want_meta["ownerReferences"]
    have_spec = current.get("spec") or {}
    want_spec = desired["spec"]
    spec_patch = {k: v for k, v in want_spec.items() if have_spec.get(k) != v}
    spec_patch.update({k: None for k in have_spec if k not in want_spec})
    patch: dict[str, Any] = {}
    if meta_patch:
        patch["metadata"] = meta_patch
    if spec_patch:
        patch["spec"] = spec_patch
    return patch or None


def is_managed(ingress: Mapping[str, Any], rollout: str) -> bool:
    labels = (ingress.get("metadata") or {}).get("labels") or {}
    return labels.get(ROLLOUT_LABEL) == rollout


def read_weight(canary: Mapping[str, Any] | None) -> int | None:
    """The weight a canary Ingress applies: 0 when absent, None when it is not a working canary."""
    if canary is None:
        return 0
    annotations = (canary.get("metadata") or {}).get("annotations") or {}
    if annotations.get(CANARY) != "true":
        return None
    weight = int_weight(annotations.get(CANARY_WEIGHT))
    return weight if weight is not None and 0 <= weight <= 100 else None


def header_annotations(headers: Sequence[HeaderMatch], ingress: str) -> dict[str, str]:
    """ingress-nginx's canary-by-header annotations for one header (exact or regex) or one
    cookie, which it sends to the canary when the cookie's value is ``always``."""
    if not headers:
        return {}
    if len(headers) > 1:
        raise RoutingError(f"Ingress {ingress}: ingress-nginx routes by one header or cookie")
    h = headers[0]
    if h.cookie is not None:
        return {BY_COOKIE: h.cookie}
    if h.match == "exact":
        return {BY_HEADER: h.name, BY_HEADER_VALUE: h.value}
    if h.match == "regex":
        return {BY_HEADER: h.name, BY_HEADER_PATTERN: h.value}
    raise RoutingError(f"Ingress {ingress}: ingress-nginx matches a header exactly or by regex")


def _header_annotations(canary: Mapping[str, Any] | None) -> dict[str, str]:
    annotations = ((canary or {}).get("metadata") or {}).get("annotations") or {}
    return {k: v for k, v in annotations.items() if k in HEADER_ANNOTATIONS}


class NginxRouter:
    resource = RESOURCE
    timeout: Timeout | None = None
    """(connect, read) seconds per call; ``router_for`` sets the controller's."""
    cache: ObjectCache | None = None
    """Reads from the operator's watches (None: every read is a GET)."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        *,
        stable_ingress: str,
        owner: Owner,
        stable_service: str,
        canary_service: str,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.stable_ingress = stable_ingress
        self.owner = owner
        self.stable_service = stable_service
        self.canary_service = canary_service
        self.canary_ingress = canary_ingress_name(stable_ingress, owner.name)

    def _read(self, name: str) -> dict[str, Any] | None:
        return cached_read(self.cache, self.api, RESOURCE, self.namespace, name, self.timeout)

    def _remember(self, doc: Any) -> None:
        if self.cache is not None:
            self.cache.remember(RESOURCE.plural, doc)

    def _managed_canary(self) -> dict[str, Any] | None:
        current = self._read(self.canary_ingress)
        if current is not None and not is_managed(current, self.owner.name):
            raise RoutingError(
                f"Ingress {self.namespace}/{self.canary_ingress} exists and is not managed by "
                f'Rollout "{self.owner.name}" (label {ROLLOUT_LABEL}); rename or delete it'
            )
        return current

    def set_weight(self, canary: int) -> None:
        check_weight(canary)
        current = self._managed_canary()
        if canary == 0 and not _header_annotations(current):
            if current is not None:
                self._delete()
            return
        desired = self._desired_canary(canary)
        api = custom_api(self.api, self.timeout)
        if current is None:
            try:
                self._remember(
                    api.create_namespaced_custom_object(
                        RESOURCE.group,
                        RESOURCE.version,
                        self.namespace,
                        RESOURCE.plural,
                        desired,
                        field_manager=FIELD_MANAGER,
                    )
                )
                return
            except ApiException as e:
                if e.status != 409:
                    raise
            current = self._managed_canary()  # created meanwhile: patch it like any other
            if current is None:
                raise RoutingError(
                    f"Ingress {self.namespace}/{self.canary_ingress} conflicted on create "
                    "but cannot be read"
                )
        patch = canary_patch(current, desired)
        if patch is not None:
            self._remember(
                api.patch_namespaced_custom_object(
                    RESOURCE.group,
                    RESOURCE.version,
                    self.namespace,
                    RESOURCE.plural,
                    self.canary_ingress,
                    patch,
                    field_manager=FIELD_MANAGER,
                    _content_type=MERGE_PATCH,
                )
            )

    def get_weight(self) -> int | None:
        """Raises RoutingError when the canary Ingress's name is taken by one this Rollout does
        not manage (as ``set_weight`` would): its annotation is not Sluice's weight."""
        return read_weight(self._managed_canary())

    def verify_weight(self) -> bool | None:
        """None: the annotation says nothing about whether ingress-nginx reloaded it."""
        return None

    def set_managed_routes(self, routes: ManagedRoutes) -> None:
        """Header routes as ingress-nginx's canary-by-header annotations on the canary Ingress
        (kept at weight 0 while a header route needs it); ingress-nginx cannot mirror to a
        canary Ingress."""
        if routes.mirror:
            raise RoutingError(
                f"Ingress {self.namespace}/{self.stable_ingress}: ingress-nginx cannot mirror "
                "traffic to a canary; use Istio or Gateway API for setMirrorRoute"
            )
        wanted = header_annotations(routes.headers, self.stable_ingress)
        current = self._managed_canary()
        have = _header_annotations(current)
        if have == wanted:
            return
        if current is None:
            self._create_at_zero(wanted)
            return
        changes: dict[str, Any] = {k: v for k, v in wanted.items() if have.get(k) != v}
        changes.update({k: None for k in have if k not in wanted})
        self._remember(
            custom_api(self.api, self.timeout).patch_namespaced_custom_object(
                RESOURCE.group,
                RESOURCE.version,
                self.namespace,
                RESOURCE.plural,
                self.canary_ingress,
                {"metadata": {"annotations": changes}},
                field_manager=FIELD_MANAGER,
                _content_type=MERGE_PATCH,
            )
        )
        if not wanted and read_weight(current) == 0:
            self._delete()  # nothing routes to the canary any more: leave nothing behind

    def _desired_canary(self, weight: int) -> dict[str, Any]:
        """The canary Ingress as it should be at ``weight``: a copy of the stable one pointed at
        the canary Service; the stable Ingress must exist."""
        stable = self._read(self.stable_ingress)
        if stable is None:
            raise RoutingError(f"Ingress {self.namespace}/{self.stable_ingress} not found")
        stable.setdefault("metadata", {}).setdefault("namespace", self.namespace)
        return desired_canary(
            stable,
            owner=self.owner,
            stable_service=self.stable_service,
            canary_service=self.canary_service,
            weight=weight,
        )

    def _create_at_zero(self, annotations: dict[str, str]) -> None:
        desired = self._desired_canary(0)
        desired["metadata"]["annotations"].update(annotations)
        self._remember(
            custom_api(self.api, self.timeout).create_namespaced_custom_object(
                RESOURCE.group,
                RESOURCE.version,
                self.namespace,
                RESOURCE.plural,
                desired,
                field_manager=FIELD_MANAGER,
            )
        )

    def remove_managed_routes(self) -> None:
        """Delete the canary Ingress if it is this Rollout's; someone else's is left alone."""
        current = self._read(self.canary_ingress)
        if current is not None and is_managed(current, self.owner.name):
            self._delete()

    def _delete(self) -> None:
        if self.cache is not None:
            self.cache.drop(RESOURCE.plural, self.namespace, self.canary_ingress)
        try:
            custom_api(self.api, self.timeout).delete_namespaced_custom_object(
                RESOURCE.group,
                RESOURCE.version,
                self.namespace,
                RESOURCE.plural,
                self.canary_ingress,
            )
        except ApiException as e:
            if e.status != 404:
                raise
