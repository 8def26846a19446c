"""What the Kubernetes traffic routers share: the error type, weight splits and their JSON patches,
Service-name matching, and the few API calls they make.

Every router follows the same discipline, kept here so the four cannot drift apart:
- read the user's object, find the two entries that name the stable and canary Services, and
  write only their ``weight`` fields with a JSON patch whose ``test`` ops pin each entry's identity
  (a concurrent edit that reorders the list fails the patch instead of misdirecting a weight);
- never send a patch when the object already holds the wanted weights (idempotent reconciles
  leave no trace in the object's managedFields or in the GitOps tool's diff);
- write with the field manager ``sluice`` so tools can tell Sluice's fields apart.

Objects are handled as plain dicts through ``CustomObjectsApi`` for every kind (the Ingress too):
typed client models drop fields they do not know and differ between client versions, while the
generic path reaches ``/apis/<group>/<version>/namespaces/<ns>/<plural>/<name>`` unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from analysis.store.retry import RETRYABLE, Timeout, retrying
from rollouts.engine.plan import ManagedRoutes

# defined apart so the memory router needs no client; every router imports it from here too
from rollouts.routing.errors import RoutingError as RoutingError

FIELD_MANAGER = "sluice"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"

JsonPatch = list[dict[str, Any]]


@dataclass(frozen=True)
class Resource:
    """A namespaced API resource, addressed the way ``CustomObjectsApi`` and RBAC address it."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


def check_weight(canary: int) -> int:
    if isinstance(canary, bool) or not isinstance(canary, int) or not 0 <= canary <= 100:
        raise ValueError(f"canary weight must be an integer percentage 0..100, got {canary!r}")
    return canary


def names_service(host: str, service: str, namespace: str) -> bool:
    """Whether a mesh host names ``service`` in ``namespace``.

    Users write the short name, ``svc.ns``, ``svc.ns.svc`` or the FQDN with any cluster domain;
    all four reach the same Service, so a router that matched only one would miss real routes.
    """
    if host == service or host == f"{service}.{namespace}":
        return True
    prefix = f"{service}.{namespace}.svc"
    return host == prefix or host.startswith(prefix + ".")


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901): ``~`` and ``/`` inside a segment must be escaped."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class Split:
    """One weighted list (an Istio route, a Gateway API rule, a TrafficSplit) and its two entries.

    ``where`` names it in messages; ``path`` points at the list; ``guards`` are ``test`` ops that
    pin what the entries were when read.
    """

    where: str
    path: tuple[str | int, ...]
    stable: int
    canary: int
    stable_weight: int | None
    canary_weight: int | None
    guards: tuple[dict[str, Any], ...] = field(default=())


def weight_ops(entries: Sequence[Mapping[str, Any]], split: Split, canary: int) -> JsonPatch:
    """The ops that bring one split to ``canary`` percent; empty when it already holds it."""
    ops: JsonPatch = []
    for index, want, have in (
        (split.stable, 100 - canary, split.stable_weight),
        (split.canary, canary, split.canary_weight),
    ):
        if have == want:
            continue
        op = "replace" if "weight" in entries[index] else "add"
        ops.append({"op": op, "path": pointer(*split.path, index, "weight"), "value": want})
    return ops


def patch_for(obj: Mapping[str, Any], splits: Sequence[Split], canary: int) -> JsonPatch:
    """Guards followed by the weight ops of every split, or nothing if no weight changes."""
    check_weight(canary)
    changes: JsonPatch = []
    guards: JsonPatch = []
    for split in splits:
        ops = weight_ops(_at(obj, split.path), split, canary)
        if ops:
            guards.extend(split.guards)
            changes.extend(ops)
    return guards + changes if changes else []


def weight_of(splits: Sequence[Split]) -> int | None:
    """The canary weight all splits agree on, or None when they disagree or do not sum to 100.

    None makes the engine write the weights again, which is exactly the repair wanted after
    someone edited one route by hand.
    """
    seen: set[int] = set()
    for split in splits:
        if split.stable_weight is None or split.canary_weight is None:
            return None
        if split.stable_weight + split.canary_weight != 100:
            return None
        seen.add(split.canary_weight)
    return seen.pop() if len(seen) == 1 else None


def int_weight(value: Any) -> int | None:
    """An entry's weight as an int (TrafficSplit and YAML sometimes give digit strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _at(obj: Mapping[str, Any], path: Sequence[str | int]) -> Any:
    node: Any = obj
    for part in path:
        node = node[part]
    return node


# ------------------------------------------------------------------------------------------- IO


class BoundedObjects:
    """``CustomObjectsApi`` with every call timed and its transient failures retried.

    Router objects are read and written on every reconcile, so a router that hangs or throttles
    must cost its Rollout a bounded time and nothing more: each call gets the ``(connect, read)``
    timeout and the shared retry policy (``analysis.store.retry``: 429 with ``Retry-After``, 5xx,
    connection errors, timeouts; reads included). A 409 is left to the caller, which re-reads and
    rebuilds its patch (``JsonPatchRouter._patch_guarded``) or patches what was created meanwhile.
    """

    def __init__(self, api: client.ApiClient, timeout: Timeout | None = None) -> None:
        self._api = client.CustomObjectsApi(api)
        self.timeout = timeout

    def __getattr__(self, method: str) -> Callable[..., Any]:
        call = getattr(self._api, method)

        def bounded(*args: Any, **kwargs: Any) -> Any:
            if self.timeout is not None:
                kwargs.setdefault("_request_timeout", self.timeout)
            what = f"{method} {'/'.join(str(a) for a in args[2:5] if isinstance(a, str))}"
            return retrying(what, lambda: call(*args, **kwargs), statuses=RETRYABLE - {409})

        return bounded


def custom_api(api: client.ApiClient, timeout: Timeout | None = None) -> Any:
    """The objects API the routers call: timed and retried (``BoundedObjects``)."""
    return BoundedObjects(api, timeout)


class ObjectCache(Protocol):
    """Reads served from the operator's watches (``rollouts.cluster.cache.WatchCache``)."""

    def get(
        self, kind: str, namespace: str, name: str, fetch: Callable[[], dict[str, Any] | None]
    ) -> dict[str, Any] | None: ...

    def remember(self, kind: str, doc: Any) -> None: ...

    def drop(self, kind: str, namespace: str, name: str) -> None: ...


def cached_read(
    cache: ObjectCache | None,
    api: client.ApiClient,
    resource: Resource,
    namespace: str,
    name: str,
    timeout: Timeout | None = None,
) -> dict[str, Any] | None:
    """``read_object``, served from ``cache`` when there is one (a GET when it cannot tell)."""
    if cache is None:
        return read_object(api, resource, namespace, name, timeout)
    return cache.get(
        resource.plural,
        namespace,
        name,
        lambda: read_object(api, resource, namespace, name, timeout),
    )


def read_object(
    api: client.ApiClient,
    resource: Resource,
    namespace: str,
    name: str,
    timeout: Timeout | None = None,
) -> dict[str, Any] | None:
    """The object as the server holds it, or None when it does not exist."""
    try:
        obj = custom_api(api, timeout).get_namespaced_custom_object(
            resource.group, resource.version, namespace, resource.plural, name
        )
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    if not isinstance(obj, dict):
        raise RoutingError(f"{resource.kind} {namespace}/{name}: the server sent no object")
    return obj


def is_conflict(error: ApiException) -> bool:
    """A failed ``test`` op (422) or a stale write (409): re-read and try again."""
    return error.status in (409, 422)


class JsonPatchRouter(ABC):
    """A router over one user-owned object whose weights live in lists of entries.

    Subclasses only say where the splits are (pure, on the fetched dict); this class does the
    reading, the guarded patch and the retry when the object changed under it.
    """

    resource: Resource
    attempts = 3
    timeout: Timeout | None = None
    """(connect, read) seconds per call; ``router_for`` sets the controller's."""
    cache: ObjectCache | None = None
    """Reads from the operator's watches (None: every read is a GET)."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name

    @property
    def label(self) -> str:
        return f"{self.resource.kind} {self.namespace}/{self.name}"

    @abstractmethod
    def splits(self, obj: Mapping[str, Any]) -> list[Split]:
        """Where the weights are; raises RoutingError naming what is missing."""

    def fetch(self, fresh: bool = False) -> dict[str, Any]:
        """The object (``fresh``: from the API server, not the watch cache)."""
        cache = None if fresh else self.cache
        obj = cached_read(cache, self.api, self.resource, self.namespace, self.name, self.timeout)
        if obj is None:
            raise RoutingError(f"{self.label} not found ({self.resource.api_version})")
        return obj

    def _patch_guarded(self, patch: Callable[[dict[str, Any]], JsonPatch]) -> None:
        """Read the object, build a guarded JSON patch from it (``test`` ops on what it relies
        on), send it; on a conflict (someone wrote meanwhile) read again and rebuild, a few times.
        An empty patch means the object already is as wanted: nothing is sent."""
        for attempt in range(self.attempts):
            # the first read may come from the watch cache; after a conflict, from the server
            ops = patch(self.fetch(fresh=attempt > 0))
            if not ops:
                return
            try:
                written = custom_api(self.api, self.timeout).patch_namespaced_custom_object(
                    self.resource.group,
                    self.resource.version,
                    self.namespace,
                    self.resource.plural,
                    self.name,
                    ops,
                    field_manager=FIELD_MANAGER,
                    _content_type=JSON_PATCH,
                )
                if self.cache is not None:
                    self.cache.remember(self.resource.plural, written)
                return
            except ApiException as e:
                if not is_conflict(e) or attempt == self.attempts - 1:
                    raise

    def set_weight(self, canary: int) -> None:
        check_weight(canary)
        self._patch_guarded(lambda obj: patch_for(obj, self.splits(obj), canary))

    def get_weight(self) -> int | None:
        """None for weights a write can repair; RoutingError (from ``fetch``/``splits``) for an
        object or route that is missing, which no write can fix."""
        return weight_of(self.splits(self.fetch()))

    def verify_weight(self) -> bool | None:
        """None: the object's weights say nothing about whether the proxies applied them."""
        return None

    def managed_routes_patch(self, obj: Mapping[str, Any], routes: ManagedRoutes) -> JsonPatch:
        """The patch making Sluice's header and mirror routes ``routes``; routers that carry
        them override this. The default carries none."""
        if not routes.empty:
            raise RoutingError(f"{self.label}: header and mirror routes are not supported here")
        return []

    def set_managed_routes(self, routes: ManagedRoutes) -> None:
        self._patch_guarded(lambda obj: self.managed_routes_patch(obj, routes))

    def remove_managed_routes(self) -> None:
        """Remove this Rollout's header and mirror routes, if the object is still there."""
        if cached_read(
            self.cache, self.api, self.resource, self.namespace, self.name, self.timeout
        ):
            self.set_managed_routes(ManagedRoutes())
