"""The Cluster port over the synchronous ``kubernetes`` client.

Sluice writes only what it owns: the two slot Deployments, the ``sluice.dev/slot`` key of the
Services' selectors, the Rollout's status (one patch per reconcile, through the status subresource)
and Events. Every write names the field manager ``sluice`` so GitOps tools can tell Sluice's fields
from the user's. Transient API failures (a 409 conflict, 429, 5xx, a timeout) are retried a few
times here, re-reading where the write depends on what is there; anything left fails the reconcile,
and the operator retries it from a fresh observation, which the pure engine makes safe.
"""

from __future__ import annotations

import copy
import json
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, TypeVar, cast

import kubernetes
import urllib3

from analysis.retry_policy import RetryPolicy
from analysis.store.kubernetes import FIELD_MANAGER  # one field manager for every Sluice write
from analysis.store.retry import DEFAULT_TIMEOUT, Timeout, retrying
from rollouts.api.rollout import API_GROUP, API_VERSION, KIND, Rollout, RolloutStatus, SlotName
from rollouts.cluster.cache import WatchCache
from rollouts.engine.plan import SlotObservation

log = logging.getLogger(__name__)

LABEL_ROLLOUT = "sluice.dev/rollout"
LABEL_SLOT = "sluice.dev/slot"
LABEL_REVISION = "sluice.dev/revision"
SLOTS: tuple[SlotName, ...] = ("a", "b")
MERGE_PATCH = "application/merge-patch+json"

T = TypeVar("T")


def slot_deployment_name(rollout: Rollout, slot: SlotName) -> str:
    return f"{rollout.metadata.name}-{slot}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _answer(response: Any) -> dict[str, Any]:
    """The object a call answered with, as the server sent it. Reads and writes of typed kinds
    are made with ``_preload_content=False`` because the client's typed model would be built only
    to be turned back into a dict for the cache (``sanitize_for_serialization``): the two walks
    cost 0.1 to 0.5 ms of client CPU per call of about 1 ms (measured against the emulator)."""
    out: dict[str, Any] = json.loads(response.data)
    return out


def _json_pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


@dataclass
class _SeenEvent:
    name: str
    count: int


class KubeCluster:
    """The real cluster. One instance may serve many Rollouts; it keeps no per-Rollout state
    except the last Events it posted (so a repeated event bumps ``count`` instead of piling up)."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        field_manager: str = FIELD_MANAGER,
        retries: int = 3,
        backoff: float = 0.2,
        timeout: Timeout = DEFAULT_TIMEOUT,
        component: str = "sluice",
        cache: WatchCache | None = None,
    ) -> None:
        self.api = api
        self.cache = cache
        """Reads of slots, Services and status served from the operator's watches (None: GETs)."""
        self.apps = kubernetes.client.AppsV1Api(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.field_manager = field_manager
        self.retries = retries
        self.policy = RetryPolicy(attempts=retries + 1, first=backoff)
        self.timeout = timeout
        self.component = component
        self.instance = socket.gethostname()
        self._events: dict[tuple[str, ...], _SeenEvent] = {}

    # ------------------------------------------------------------------------- plumbing
    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        return retrying(what, fn, policy=self.policy)

    def _dict(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return out

    def _remember(self, kind: str, obj: Any) -> None:
        """A write's answer, newer than what the watch delivered so far."""
        if self.cache is not None and obj is not None:
            self.cache.remember(kind, obj if isinstance(obj, dict) else self._dict(obj))

    def _cached(
        self, kind: str, namespace: str, name: str, fetch: Callable[[], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        if self.cache is None:
            return fetch()
        return self.cache.get(kind, namespace, name, fetch)

    def _read_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj = self.apps.read_namespaced_deployment(
                name, namespace, _request_timeout=self.timeout, _preload_content=False
            )
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return None
            raise
        return _answer(obj)

    def _read_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj = self.core.read_namespaced_service(
                name, namespace, _request_timeout=self.timeout, _preload_content=False
            )
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return None
            raise
        return _answer(obj)

    def owner_reference(self, rollout: Rollout) -> dict[str, Any]:
        return {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "name": rollout.metadata.name,
            "uid": rollout.metadata.uid or "",
            "controller": True,
            "blockOwnerDeletion": True,
        }

    # ----------------------------------------------------------------------------- reads
    def read_slots(self, rollout: Rollout) -> dict[SlotName, SlotObservation]:
        ns = rollout.metadata.namespace
        out: dict[SlotName, SlotObservation] = {}
        for slot in SLOTS:
            name = slot_deployment_name(rollout, slot)
            fetch = partial(
                self._retrying, f"read {name}", partial(self._read_deployment, ns, name)
            )
            dep = self._cached("deployments", ns, name, fetch)
            if dep is None:
                continue
            labels = (dep.get("metadata") or {}).get("labels") or {}
            if labels.get(LABEL_ROLLOUT) != rollout.metadata.name:
                continue  # a Deployment Sluice does not own happens to bear the name: not a slot
            out[slot] = observe_deployment(dep)
        return out

    def read_service_slots(
        self, rollout: Rollout, services: list[str]
    ) -> dict[str, SlotName | None]:
        ns = rollout.metadata.namespace
        out: dict[str, SlotName | None] = {}
        for name in services:
            fetch = partial(
                self._retrying, f"read service {name}", partial(self._read_service, ns, name)
            )
            svc = self._cached("services", ns, name, fetch)
            if svc is None:
                continue
            selector = (svc.get("spec") or {}).get("selector") or {}
            pinned = selector.get(LABEL_SLOT)
            out[name] = pinned if pinned in SLOTS else None
        return out

    # ---------------------------------------------------------------------------- writes
    def slot_labels(self, rollout: Rollout, slot: SlotName) -> dict[str, str]:
        return {LABEL_ROLLOUT: rollout.metadata.name, LABEL_SLOT: slot}

    def slot_deployment(
        self,
        rollout: Rollout,
        slot: SlotName,
        revision: str,
        template: dict[str, Any],
        replicas: int,
    ) -> dict[str, Any]:
        """The slot Deployment: the Rollout's pod template with Sluice's labels on the pods and in
        the selector (rollout and slot only: a Deployment's selector is immutable, and the two slots
        must never select each other's pods)."""
        own = self.slot_labels(rollout, slot)
        pod_template = dict(template)
        meta = dict(pod_template.get("metadata") or {})
        meta["labels"] = {**(meta.get("labels") or {}), **own, LABEL_REVISION: revision}
        pod_template["metadata"] = meta
        selector: dict[str, Any] = {
            "matchLabels": {**(rollout.spec.selector.match_labels or {}), **own}
        }
        if rollout.spec.selector.match_expressions:
            selector["matchExpressions"] = [
                e.model_dump(by_alias=True, exclude_none=True)
                for e in rollout.spec.selector.match_expressions
            ]
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": slot_deployment_name(rollout, slot),
                "namespace": rollout.metadata.namespace,
                "labels": {**own, LABEL_REVISION: revision},
                "ownerReferences": [self.owner_reference(rollout)],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": pod_template},
        }

    def deploy_slot(
        self,
        rollout: Rollout,
        slot: SlotName,
        revision: str,
        template: dict[str, Any],
        replicas: int,
    ) -> None:
        """Create the slot Deployment, or replace its template where it exists.

        Whether it exists comes from the watch when the operator serves Deployments from it (a
        GET per new revision cost a request and its answer's parsing for nothing: 1,000 of them
        when a fleet got a new revision at once). The watch may lag: a create that finds the
        Deployment there (409) patches it, and a patch that finds it gone (404) creates it."""
        body = self.slot_deployment(rollout, slot, revision, template, replicas)
        ns, name = rollout.metadata.namespace, body["metadata"]["name"]

        def create() -> None:
            created = self.apps.create_namespaced_deployment(
                ns,
                cast(Any, body),
                field_manager=self.field_manager,
                _request_timeout=self.timeout,
                _preload_content=False,
            )
            self._remember("deployments", _answer(created))

        def write() -> None:
            if not self._deployment_exists(ns, name):
                try:
                    create()
                    return
                except kubernetes.client.ApiException as e:
                    if e.status != 409:  # created meanwhile: fall through to a patch
                        raise
            # a JSON patch replaces the template whole, so fields the new revision dropped go
            patch = [
                {"op": "replace", "path": "/spec/template", "value": body["spec"]["template"]},
                {"op": "replace", "path": "/spec/replicas", "value": replicas},
                {
                    "op": "add",
                    "path": f"/metadata/labels/{_json_pointer(LABEL_REVISION)}",
                    "value": revision,
                },
            ]
            try:
                patched = self.apps.patch_namespaced_deployment(
                    name,
                    ns,
                    patch,
                    field_manager=self.field_manager,
                    _request_timeout=self.timeout,
                    _preload_content=False,
                )
            except kubernetes.client.ApiException as e:
                if e.status != 404:
                    raise
                create()  # deleted since it was seen (the watch had not told yet)
                return
            self._remember("deployments", _answer(patched))

        self._retrying(f"deploy {name}", write)

    def _deployment_exists(self, namespace: str, name: str) -> bool:
        """From the watch when it knows (a write needs no fingerprint entry), else by GET."""
        if self.cache is not None:
            known, doc = self.cache.peek("deployments", namespace, name)
            if known:
                return doc is not None
        return self._read_deployment(namespace, name) is not None

    def scale_slot(self, rollout: Rollout, slot: SlotName, replicas: int) -> None:
        ns, name = rollout.metadata.namespace, slot_deployment_name(rollout, slot)

        def write() -> None:
            try:
                scaled = self.apps.patch_namespaced_deployment(
                    name,
                    ns,
                    {"spec": {"replicas": replicas}},
                    field_manager=self.field_manager,
                    _content_type=MERGE_PATCH,
                    _request_timeout=self.timeout,
                    _preload_content=False,
                )
                self._remember("deployments", _answer(scaled))
            except kubernetes.client.ApiException as e:
                if e.status != 404:
                    raise
                log.warning("scale %s/%s: the slot Deployment is gone", ns, name)

        self._retrying(f"scale {name}", write)

    def set_service_selector(self, rollout: Rollout, service: str, slot: SlotName | None) -> None:
        """Add (or, with ``slot=None``, remove) ``sluice.dev/slot`` in the Service's own selector;
        the user's selector keys stay as they are, so the Service keeps matching their pods."""
        ns = rollout.metadata.namespace

        def write() -> None:
            try:
                patched = self.core.patch_namespaced_service(
                    service,
                    ns,
                    {"spec": {"selector": {LABEL_SLOT: slot}}},
                    field_manager=self.field_manager,
                    _content_type=MERGE_PATCH,
                    _request_timeout=self.timeout,
                    _preload_content=False,
                )
                self._remember("services", _answer(patched))
            except kubernetes.client.ApiException as e:
                if e.status != 404:
                    raise
                log.warning("service %s/%s not found: traffic cannot follow", ns, service)

        self._retrying(f"select {service}", write)

    def read_workload(self, rollout: Rollout) -> dict[str, Any] | None:
        ref = rollout.spec.workload_ref
        if ref is None:
            return None
        namespace = rollout.metadata.namespace
        return self._retrying(
            f"read Deployment {ref.name}", lambda: self._read_deployment(namespace, ref.name)
        )

    def scale_workload(self, rollout: Rollout, replicas: int) -> None:
        ref = rollout.spec.workload_ref
        if ref is None:
            return
        ns = rollout.metadata.namespace

        def write() -> None:
            self.apps.patch_namespaced_deployment(
                ref.name,
                ns,
                {"spec": {"replicas": replicas}},
                field_manager=self.field_manager,
                _content_type=MERGE_PATCH,
                _request_timeout=self.timeout,
            )

        self._retrying(f"scale Deployment {ref.name}", write)

    def write_status(self, rollout: Rollout, status: RolloutStatus) -> None:
        """The whole status in one merge patch on the status subresource. Fields the engine
        cleared go out as ``null``, which a merge patch deletes."""
        body = {"status": status.model_dump(mode="json", by_alias=True)}
        ns, name = rollout.metadata.namespace, rollout.metadata.name

        def write() -> None:
            written = self.custom.patch_namespaced_custom_object_status(
                API_GROUP,
                API_VERSION,
                ns,
                "rollouts",
                name,
                body,
                field_manager=self.field_manager,
                _content_type=MERGE_PATCH,
                _request_timeout=self.timeout,
            )
            self._remember("rollouts", written)

        self._retrying(f"status of {name}", write)

    def emit_event(
        self, rollout: Rollout, type: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        """A core/v1 Event about the Rollout; a repeat of the last identical one bumps its count."""
        ns, name = rollout.metadata.namespace, rollout.metadata.name
        key = (ns, name, rollout.metadata.uid or "", type, reason, message)
        now = _now()
        seen = self._events.get(key)
        try:
            if seen is not None:
                seen.count += 1
                try:
                    self._retrying(
                        f"event {reason}",
                        lambda: self.core.patch_namespaced_event(
                            seen.name,
                            ns,
                            {"count": seen.count, "lastTimestamp": now},
                            field_manager=self.field_manager,
                            _content_type=MERGE_PATCH,
                            _request_timeout=self.timeout,
                        ),
                    )
                    return
                except kubernetes.client.ApiException as e:
                    if e.status != 404:
                        raise
                    # the Event expired (a real server drops them after an hour): post afresh
            body = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": f"{name}.", "namespace": ns},
                "involvedObject": {
                    "apiVersion": f"{API_GROUP}/{API_VERSION}",
                    "kind": KIND,
                    "name": name,
                    "namespace": ns,
                    "uid": rollout.metadata.uid,
                },
                "type": type,
                "reason": reason,
                "message": message[:1024],
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {"component": self.component},
                "reportingComponent": self.component,
                "reportingInstance": self.instance,
            }
            created = self._retrying(
                f"event {reason}",
                lambda: self.core.create_namespaced_event(
                    ns,
                    cast(Any, body),
                    field_manager=self.field_manager,
                    _request_timeout=self.timeout,
                    _preload_content=False,
                ),
            )
            event_name = (_answer(created).get("metadata") or {}).get("name")
            if event_name:
                self._events[key] = _SeenEvent(event_name, 1)
        except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError) as e:
            # Events are best effort: losing one must not fail the reconcile that caused it
            log.warning("could not post event %s for %s/%s: %s", reason, ns, name, e)
        if len(self._events) > 1000:
            self._events.clear()

    # ------------------------------------------------------------- leaving (finalizer only)
    def release_slot(self, rollout: Rollout, slot: SlotName) -> None:
        """Drop the slot Deployment's owner reference so it outlives the Rollout (no GC)."""
        ns, name = rollout.metadata.namespace, slot_deployment_name(rollout, slot)

        def write() -> None:
            dep = self._read_deployment(ns, name)
            if dep is None:
                return
            owners = (dep.get("metadata") or {}).get("ownerReferences") or []
            kept = [o for o in owners if o.get("uid") != rollout.metadata.uid]
            if len(kept) == len(owners):
                return
            self.apps.patch_namespaced_deployment(
                name,
                ns,
                {"metadata": {"ownerReferences": kept or None}},
                field_manager=self.field_manager,
                _content_type=MERGE_PATCH,
                _request_timeout=self.timeout,
            )

        self._retrying(f"release {name}", write)

    def delete_slot(self, rollout: Rollout, slot: SlotName) -> None:
        ns, name = rollout.metadata.namespace, slot_deployment_name(rollout, slot)

        def delete() -> None:
            try:
                self.apps.delete_namespaced_deployment(name, ns, _request_timeout=self.timeout)
            except kubernetes.client.ApiException as e:
                if e.status != 404:
                    raise

        self._retrying(f"delete {name}", delete)


class _PoolPerHost:
    """urllib3's PoolManager, with a plain request (a body or none, no form fields or options
    beyond a timeout) sent straight to its host's connection pool, the one the manager keeps.
    The manager parses every URL and looks its pool up by a normalized key on each request: 0.28
    ms of the 1.1 ms of CPU a status PATCH cost the controller. No redirect is followed (an API
    server sends none). Anything else (form fields, retries, a proxy) goes through the manager.
    ``clear()`` (the client's ``close()``) forgets the pools here too: as through the manager, a
    request after it gets a fresh pool, not the one the manager let go."""

    def __init__(self, manager: urllib3.PoolManager) -> None:
        self._manager = manager
        self._pools: dict[str, Any] = {}

    def request(
        self,
        method: str,
        url: str,
        fields: Any = None,
        headers: Any = None,
        body: Any = None,
        **kw: Any,
    ) -> Any:
        scheme, _, rest = url.partition("://")
        host, _, path = rest.partition("/")
        if fields or not rest or kw.keys() - {"timeout", "preload_content"}:
            return self._manager.request(
                method, url, fields=fields, headers=headers, body=body, **kw
            )
        root = f"{scheme}://{host}"
        pool = self._pools.get(root)
        if pool is None:
            pool = self._pools[root] = self._manager.connection_from_url(root)
        return pool.urlopen(
            method,
            "/" + path,
            body=body,
            headers=self._manager.headers if headers is None else headers,
            redirect=False,
            assert_same_host=False,
            **kw,
        )

    def clear(self) -> None:
        self._pools.clear()
        self._manager.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)


class _TimedREST(kubernetes.client.rest.RESTClientObject):
    """The client's transport with a default ``(connect, read)`` timeout for calls that name
    none (the library's default is to wait forever), so no call through it can hang a worker;
    requests to the API server skip the pool manager's per-request lookup (``_PoolPerHost``)."""

    def __init__(self, configuration: Any, timeout: Timeout) -> None:
        super().__init__(configuration)
        self.default_timeout = timeout
        if type(self.pool_manager) is urllib3.PoolManager:  # not a proxy's manager
            self.pool_manager = _PoolPerHost(self.pool_manager)  # type: ignore[assignment]

    def request(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("_request_timeout"):
            kwargs["_request_timeout"] = self.default_timeout
        return super().request(*args, **kwargs)  # type: ignore[no-untyped-call]


def bound_api_client(
    api: kubernetes.client.ApiClient, *, pool_size: int, timeout: Timeout
) -> kubernetes.client.ApiClient:
    """A client for the controller over ``api``'s cluster and credentials: a connection pool as
    large as the worker threads (a smaller one makes threads wait for a connection and urllib3
    warn "pool is full"), no urllib3 retries of its own (``analysis.store.retry`` is the one
    retry policy, bounded), and a default timeout on every call. ``api`` itself is left as it
    is (its owner may rely on its own timeouts)."""
    config = copy.deepcopy(api.configuration)
    config.connection_pool_maxsize = max(pool_size, config.connection_pool_maxsize or 0)
    config.retries = False
    # The environment's proxy for this host, decided once. Token credentials (in-cluster and
    # kubeconfig alike) refresh through a hook that assigns ``host`` before every request, and
    # the client recomputes the proxy from the environment on each assignment (os.environ walked
    # and decoded per request: 0.05 ms with 35 variables, and a pod gets a few for every Service
    # in its namespace). Assigning the proxy pins it; the hook still refreshes the token.
    config.proxy = config.proxy
    bound = kubernetes.client.ApiClient(configuration=config)
    bound.default_headers.update(api.default_headers)
    bound.rest_client.close()
    bound.rest_client = _TimedREST(config, timeout)
    return bound


def observe_deployment(dep: dict[str, Any]) -> SlotObservation:
    """Readiness as the Deployment controller reports it. Until the controller has observed the
    latest spec (``observedGeneration``), the counts describe the previous spec, so no pod of the
    new one counts as ready; afterwards only pods of the current template (``updatedReplicas``)
    count."""
    meta = dep.get("metadata") or {}
    spec = dep.get("spec") or {}
    status = dep.get("status") or {}
    labels = meta.get("labels") or {}
    generation = int(meta.get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    current = observed >= generation
    return SlotObservation(
        revision=labels.get(LABEL_REVISION),
        replicas=int(spec.get("replicas") or 0),
        ready_replicas=min(ready, updated) if current else 0,
    )
