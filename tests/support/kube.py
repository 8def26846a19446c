"""A Kubernetes API for tests: kmock's ``KubernetesEmulator`` with the server-side bits it lacks.

kmock stores objects and serves lists, watches and patches, but fills in no server-side metadata.
kopf relies on some of it (its finalizer patch tests ``metadata.resourceVersion``, its Events use
``generateName``), so ``SluiceEmulator`` adds: ``uid``, an increasing ``resourceVersion``,
``generation`` (bumped when ``spec`` changes), ``generateName`` naming, the namespace from the URL,
a failed JSON-patch ``test`` turned into 422, a merge patch carrying a stale ``resourceVersion``
turned into 409 (as a real API server does), and status-subresource patches that touch only
``status``. It also injects faults (an HTTP status or a delay) into chosen requests, so retry paths
can be tested.

The emulator runs in a background thread with its own event loop. That way the synchronous
``kubernetes`` client works from plain test code and from kopf's handler threads alike, and a kopf
operator running in the test's own loop never deadlocks against the server it talks to.

What it still does not do (see TESTING.md): schema validation, label/field selectors (lists return
every object: filter client-side or read by name), server-side apply, garbage collection,
controllers (``set_deployment_ready`` plays the Deployment controller).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import datetime
import itertools
import json
import os
import threading
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import aiohttp.web
import aiohttp.web_runner
import attrs
import jsonpatch
import jsonpointer
import kmock
import kubernetes
import pytest
from kmock._internal import enums, rendering
from kmock._internal.k8s import KubernetesError

SLUICE_GROUP = "sluice.dev"
SLUICE_VERSION = "v1alpha1"

ALL_VERBS = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

# (group/version/plural, kind, namespaced, has a status subresource)
SLUICE_RESOURCES: tuple[tuple[str, str, bool, bool], ...] = (
    (f"{SLUICE_GROUP}/{SLUICE_VERSION}/rollouts", "Rollout", True, True),
    (f"{SLUICE_GROUP}/{SLUICE_VERSION}/analysistemplates", "AnalysisTemplate", True, False),
    (
        f"{SLUICE_GROUP}/{SLUICE_VERSION}/clusteranalysistemplates",
        "ClusterAnalysisTemplate",
        False,
        False,
    ),
    (f"{SLUICE_GROUP}/{SLUICE_VERSION}/analysisruns", "AnalysisRun", True, True),
)
# The routers' kinds in the versions their users meet (Ingress is built in).
ROUTER_RESOURCES: tuple[tuple[str, str, bool, bool], ...] = (
    ("networking.istio.io/v1/virtualservices", "VirtualService", True, False),
    ("networking.istio.io/v1beta1/virtualservices", "VirtualService", True, False),
    ("networking.istio.io/v1alpha3/virtualservices", "VirtualService", True, False),
    ("gateway.networking.k8s.io/v1/httproutes", "HTTPRoute", True, True),
    ("gateway.networking.k8s.io/v1beta1/httproutes", "HTTPRoute", True, True),
    ("split.smi-spec.io/v1alpha1/trafficsplits", "TrafficSplit", True, False),
    ("split.smi-spec.io/v1alpha2/trafficsplits", "TrafficSplit", True, False),
    ("split.smi-spec.io/v1alpha3/trafficsplits", "TrafficSplit", True, False),
    ("split.smi-spec.io/v1alpha4/trafficsplits", "TrafficSplit", True, False),
)


# ----------------------------------------------------------------------------------------- faults


@dataclass
class Fault:
    """An injected failure: requests matching every given field get ``status`` (after ``delay``).

    ``status=None`` with a ``delay`` is a slow answer (a client timeout shorter than the delay sees
    a timeout; the request is then served normally); a long delay (300 s) is a hung server.
    ``watch_error`` answers a matching watch with one ERROR event of that code (as a real API
    server or a proxy sends inside a stream) and ends the stream. ``times`` is how many matching
    requests fail (None: all of them); ``hits`` counts the requests that did.
    """

    method: str | None = None  # GET, POST, PATCH, DELETE (a watch is a GET with ?watch=true)
    plural: str | None = None  # e.g. "rollouts", "deployments", "events"
    name: str | None = None
    namespace: str | None = None
    subresource: str | None = None  # "status" to hit status writes only ("" = main resource only)
    status: int | None = 500
    delay: float = 0.0
    times: int | None = 1
    message: str = "injected by the test"
    watch_error: int | None = None
    hits: int = 0
    released: asyncio.Event | None = None
    """Set by ``clear_faults``: requests still waiting out ``delay`` are answered at once (so a
    test's hung requests do not hold the server's shutdown)."""

    def matches(self, request: rendering.Request) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.watch_error is not None and not ApiCall.of(request).watch:
            return False
        if self.method is not None and str(request.method.value).upper() != self.method.upper():
            return False
        if self.plural is not None and (
            request.resource is None or request.resource.plural != self.plural
        ):
            return False
        if self.name is not None and request.name != self.name:
            return False
        if self.namespace is not None and request.namespace != self.namespace:
            return False
        return self.subresource is None or (request.subresource or "") == self.subresource


@dataclass(frozen=True)
class ApiCall:
    """One request the emulator served, as a test counts it."""

    method: str  # GET, POST, PATCH, PUT, DELETE
    plural: str | None
    name: str | None
    subresource: str | None
    watch: bool
    agent: str = ""
    """The client's User-Agent: tells apart replicas sharing one emulator."""

    @classmethod
    def of(cls, request: rendering.Request) -> ApiCall:
        return cls(
            method=str(request.method.value).upper(),
            plural=None if request.resource is None else request.resource.plural,
            name=request.name,
            subresource=request.subresource,
            watch=str(request.params.get("watch", "")).lower() in ("true", "1"),
            agent=str((request.headers or {}).get("User-Agent", "")),
        )

    def __str__(self) -> str:
        sub = f"/{self.subresource}" if self.subresource else ""
        return f"{self.method} {self.plural}{'/' + self.name if self.name else ''}{sub}"


_REASONS = {
    400: "BadRequest",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def _status_body(code: int, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": code,
        "reason": _REASONS.get(code, "Failure"),
        "message": message,
    }


# ------------------------------------------------------------------------------------- emulator


def _merge_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning ``old`` into ``new`` (kmock applies merge patches)."""
    out: dict[str, Any] = {}
    for key, value in new.items():
        if key not in old:
            out[key] = value
        elif isinstance(old[key], dict) and isinstance(value, dict):
            sub = _merge_diff(old[key], value)
            if sub:
                out[key] = sub
        elif old[key] != value:
            out[key] = value
    for key in old:
        if key not in new:
            out[key] = None
    return out


def _merge_patch(old: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (lists replaced whole, ``null`` deletes)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(old) if isinstance(old, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _plain(value: Any) -> Any:
    """Deep-copy kmock's dict views into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class _FleetBacklogSite(aiohttp.web_runner.SockSite):
    """kmock serves through aiohttp's test server, whose listening socket queues 128 connections
    and drops the rest. A controller meeting 1,000 Rollouts at start opens a connection per
    object at once (kopf's session has no pool limit); the dropped ones surfaced as 5 s connect
    timeouts that a real API server, which accepts them, never gives. The emulators queue as
    many as the kernel allows (``net.core.somaxconn``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("backlog", 4096)
        super().__init__(*args, **kwargs)


aiohttp.test_utils.SockSite = _FleetBacklogSite  # type: ignore[attr-defined]


#: The request the current task is routing (lean emulator): the only one kmock needs to see.
_ROUTING: contextvars.ContextVar[rendering.Request | None] = contextvars.ContextVar(
    "sluice_emulator_routing", default=None
)


class _InFlight(list[rendering.Request]):
    """kmock's request history, holding only the requests being served.

    kmock routes a request by asking each reaction whether the request is among those its
    filters see, which iterates the history (by identity) and runs every filter on every request
    in it. Even holding only the requests in flight, every open watch is one of them: with 15
    watches and 20 workers' requests, routing cost about 4 ms a request. While a task routes its
    request the history shows just that request (the identity test's answer is the same), so
    routing costs one filter run per reaction. ``len`` still counts every request (kmock numbers
    requests by it)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def append(self, request: rendering.Request) -> None:
        self.total += 1
        super().append(request)

    def done(self, request: rendering.Request) -> None:
        for i, r in enumerate(list.__iter__(self)):
            if r is request:
                del self[i]
                return

    def __iter__(self) -> Iterator[rendering.Request]:
        routing = _ROUTING.get()
        if routing is not None:
            return iter((routing,))
        return list.__iter__(self)

    def __len__(self) -> int:
        return self.total


def _rv_of(obj: Mapping[str, Any]) -> int:
    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(rv) if rv.isdigit() else 0


def _with_data(request: rendering.Request, data: Any) -> rendering.Request:
    """Replace the body kmock will apply. In place: kmock matches reactions by request identity."""
    object.__setattr__(request, "data", data)
    return request


@attrs.define(kw_only=True)
class SluiceEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus the server-side metadata kopf and Sluice need, and fault injection."""

    faults: list[Fault] = attrs.field(factory=list)
    calls: list[ApiCall] = attrs.field(factory=list)
    """Every request served (faulted ones included), oldest first: tests count API calls by it."""
    lean: bool = False
    """For scale runs: keep no request history and look objects up by key.

    kmock 0.8 keeps every request it served and, to route each new one, re-scans them all (a GET
    cost 11 ms after 100 requests, 161 ms after 3,000), and it finds an object by scanning every
    object. Lean, it keeps only the requests in flight, one version of each object, and an index
    by resource and namespace; ``calls`` becomes a count per ``ApiCall`` (``call_counts``)."""
    call_counts: dict[ApiCall, int] = attrs.field(factory=dict)
    _rv: Iterator[int] = attrs.field(factory=lambda: itertools.count(1000))
    _last_rv: int = 999
    _faults_lock: threading.Lock = attrs.field(factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None

    def inject(self, **kwargs: Any) -> Fault:
        """Make matching requests fail; see ``Fault`` for the fields. Returns it (for ``hits``)."""
        fault = Fault(**kwargs)
        with self._faults_lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._faults_lock:
            for fault in self.faults:
                if fault.released is not None and self._loop is not None:
                    self._loop.call_soon_threadsafe(fault.released.set)
            self.faults.clear()

    def _take_fault(self, request: rendering.Request) -> Fault | None:
        with self._faults_lock:
            for fault in self.faults:
                if fault.matches(request):
                    fault.hits += 1
                    return fault
        return None

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.lean:
            self._requests = _InFlight()

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if self.lean:
            _ROUTING.set(request)  # this task's context: see _InFlight
            try:
                return await self._handle_counted(request)
            finally:
                assert isinstance(self._requests, _InFlight)
                self._requests.done(request)
                for payload in self._payloads:  # each reaction keeps what it served, too
                    payload._requests.clear()
        self.calls.append(ApiCall.of(request))
        return await self._handle_one(request)

    async def _handle_counted(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        call = ApiCall.of(request)
        self.call_counts[call] = self.call_counts.get(call, 0) + 1
        response = await self._handle_one(request)
        if request.resource is not None and request.action in (
            enums.action.CREATE,
            enums.action.UPDATE,
        ):
            self._trim(request)
        return response

    def _trim(self, request: rendering.Request) -> None:
        """Keep one version of the object just written (kmock keeps every version)."""
        name = request.name or ((request.data or {}).get("metadata") or {}).get("name")
        key = (request.resource, request.namespace, name)
        obj = self.objects._objects.get(key)  # type: ignore[arg-type]
        if obj is not None and len(obj.history) > 1:
            obj.history[:] = [obj.history[-1]]

    async def _serve_fetch(self, request: rendering.Request) -> rendering.Payload:
        if not self.lean:
            return await super()._serve_fetch(request)
        key = (request.resource, request.namespace, request.name)
        obj = self.objects._objects.get(key)  # type: ignore[arg-type]
        if obj is None or obj.deleted:
            raise KubernetesError(status=404, reason="NotFound", message="not found")
        return obj.raw

    def _lean_obj(self, request: rendering.Request) -> Any:
        """The object a create, update or delete just touched, by key (kmock scans them all)."""
        name = request.name or ((request.data or {}).get("metadata") or {}).get("name")
        namespace = request.namespace or ((request.data or {}).get("metadata") or {}).get(
            "namespace"
        )
        obj = self.objects._objects.get((request.resource, namespace, name))  # type: ignore[arg-type]
        assert obj is not None  # written in kmock's _handle, before this is served
        return obj

    async def _serve_create(self, request: rendering.Request) -> rendering.Payload:
        if not self.lean:
            return await super()._serve_create(request)
        return self._lean_obj(request).raw  # type: ignore[no-any-return]

    async def _serve_update(self, request: rendering.Request) -> rendering.Payload:
        if not self.lean:
            return await super()._serve_update(request)
        return self._lean_obj(request).last.raw  # type: ignore[no-any-return]

    async def _serve_delete(self, request: rendering.Request) -> rendering.Payload:
        if not self.lean:
            return await super()._serve_delete(request)
        return self._lean_obj(request).last.raw  # type: ignore[no-any-return]

    async def _handle_one(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        fault = self._take_fault(request)
        if fault is not None:
            if fault.delay:
                self._loop = asyncio.get_running_loop()
                if fault.released is None:
                    fault.released = asyncio.Event()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(fault.released.wait(), fault.delay)
            if fault.watch_error is not None:
                event = {"type": "ERROR", "object": _status_body(fault.watch_error, fault.message)}
                return aiohttp.web.Response(
                    body=(json.dumps(event) + "\n").encode(), content_type="application/json"
                )
            if fault.status is not None:
                return aiohttp.web.json_response(
                    _status_body(fault.status, fault.message), status=fault.status
                )
        if request.resource is not None:
            try:
                request = self._prepare(request)
            except KubernetesError as e:
                return aiohttp.web.json_response(
                    _status_body(e.status, e.message or ""), status=e.status
                )
        response = await super()._handle(request)
        if response.status == 404 and request.resource is not None and request.name:
            # a real API server names the missing object in the Status's details (clients tell
            # "no such object" from "no such kind" by it); kmock leaves them out
            body = _status_body(404, f'{request.resource.plural} "{request.name}" not found')
            body["details"] = {
                "name": request.name,
                "group": request.resource.group,
                "kind": request.resource.plural,
            }
            return aiohttp.web.json_response(body, status=404)
        if request.action == enums.action.CREATE and response.status == 200:
            response.set_status(201)  # clients map a created object's body on 201 only
        return response

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        """kmock's watch, with two fixes kopf needs.

        It subscribes to changes in the same breath as it takes the snapshot it replays (kmock
        subscribes after replaying, so a change made meanwhile is lost). And, as a real server
        does, a watch from a list's ``resourceVersion`` replays only objects changed since that
        list, not every object again (kopf would process a stale copy, fail its finalizer patch's
        ``test`` and wait forever for a newer event).
        """
        yield b""
        assert request.resource is not None
        bus = self._buses[request.resource]
        since = str(request.params.get("resourceVersion", ""))
        since_rv = int(since) if since.isdigit() else -1
        async with self._lock:
            marker = await bus.mark()
            events = [
                {"type": "ADDED", "object": obj.raw}
                for (res, ns, _), obj in self.objects.items()
                if res == request.resource
                and not obj.deleted
                and (request.namespace is None or ns == request.namespace)
                and (
                    request.name is None or obj.raw.get("metadata", {}).get("name") == request.name
                )
                and _rv_of(obj.raw) > since_rv
            ]
        try:
            for event in events:
                yield event
            async for event in bus.stream(since=marker):
                meta = (event.get("object") or {}).get("metadata") or {}
                if request.namespace is not None and meta.get("namespace") != request.namespace:
                    continue
                if request.name is not None and meta.get("name") != request.name:
                    continue
                yield event
        finally:
            await bus.unmark(marker)

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        """kmock's list, typed as a real server types it: ``kind: <Kind>List`` and the
        ``apiVersion`` of the group (kubectl refuses a list without them: "Object 'Kind' is
        missing"), and the resourceVersion a watch continues from."""
        payload = await super()._serve_list(request)
        assert isinstance(payload, dict) and request.resource is not None
        res = request.resource
        # not self.resources[res] (nor .get, which indexes): kmock's array registers an unknown
        # resource on access, which would add it to discovery
        known = {r: i for r, i in self.resources.items()} if res in self.resources else {}
        info = known.get(res)
        kind = (info.kind if info is not None else None) or str(res.plural).capitalize()
        return {
            "apiVersion": f"{res.group}/{res.version}" if res.group else str(res.version),
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(self._last_rv)},
            "items": payload["items"],
        }

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        """kmock's discovery, minus the short names and categories it repeats on subresources:
        a real server lists them on the resource only (with them, ``kubectl get sro`` warns that
        "sro" could also mean rollouts/status)."""
        payload = await super()._serve_version(request)
        assert isinstance(payload, dict)
        for entry in payload.get("resources") or []:
            if "/" in entry.get("name", ""):
                entry["shortNames"] = []
                entry["categories"] = []
        return payload

    def _next_rv(self) -> str:
        self._last_rv = next(self._rv)
        return str(self._last_rv)

    def _prepare(self, request: rendering.Request) -> rendering.Request:
        """Fill server-side metadata and turn patches into plain merge patches kmock applies."""
        if request.action == enums.action.CREATE and isinstance(request.data, dict):
            data = copy.deepcopy(request.data)
            meta = data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            if request.namespace and not meta.get("namespace"):
                meta["namespace"] = request.namespace
            meta.setdefault("uid", str(uuid.uuid4()))
            meta["resourceVersion"] = self._next_rv()
            meta.setdefault("generation", 1)
            meta.setdefault(
                "creationTimestamp",
                datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            return _with_data(request, data)

        if request.action == enums.action.UPDATE and request.name is not None:
            key = (request.resource, request.namespace, request.name)
            if key not in self.objects or self.objects[key].deleted:
                return request  # kmock answers 404
            old: dict[str, Any] = _plain(self.objects[key].raw)
            new = self._patched(old, request.data, request.subresource)
            meta = new.setdefault("metadata", {})
            meta["resourceVersion"] = self._next_rv()
            if request.subresource is None and new.get("spec") != old.get("spec"):
                meta["generation"] = int(meta.get("generation") or 1) + 1
            return _with_data(request, _merge_diff(old, new))
        return request

    @staticmethod
    def _patched(old: dict[str, Any], patch: Any, subresource: str | None) -> dict[str, Any]:
        old = copy.deepcopy(old)
        if isinstance(patch, list):
            try:
                new: dict[str, Any] = jsonpatch.apply_patch(old, patch, in_place=False)
            except jsonpatch.JsonPatchTestFailed as e:
                raise KubernetesError(status=422, reason="Invalid", message=str(e)) from None
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
                raise KubernetesError(status=422, reason="Invalid", message=str(e)) from None
        elif isinstance(patch, dict):
            wanted = (patch.get("metadata") or {}).get("resourceVersion")
            current = (old.get("metadata") or {}).get("resourceVersion")
            if wanted is not None and wanted != current:
                raise KubernetesError(
                    status=409,
                    reason="Conflict",
                    message=f"the object has been modified (resourceVersion {wanted} != {current})",
                )
            new = _merge_patch(old, patch)
        else:
            raise KubernetesError(status=400, reason="BadRequest", message="unsupported patch")
        if subresource == "status":
            # the status subresource changes status only; everything else in the patch is ignored
            kept = copy.deepcopy(old)
            if "status" in new:
                kept["status"] = new["status"]
            else:
                kept.pop("status", None)
            return kept
        return new


def register_resources(emulator: kmock.KubernetesEmulator) -> None:
    """Built-in kinds (kopf waits for namespaces and CRDs in discovery) plus Sluice's and routers'."""
    with warnings.catch_warnings():  # kmock 0.8 uses importlib.resources.read_binary
        warnings.simplefilter("ignore", DeprecationWarning)
        emulator.resources.load_bundled()
    for path, kind, namespaced, status in (*SLUICE_RESOURCES, *ROUTER_RESOURCES):
        emulator.resources[path] = kmock.ResourceInfo(
            kind=kind,
            singular=kind.lower(),
            namespaced=namespaced,
            verbs=ALL_VERBS,
            subresources={"status"} if status else set(),
            shortnames={"sro"} if kind == "Rollout" else set(),
            categories={"sluice"} if path.startswith(SLUICE_GROUP) else set(),
        )


# ------------------------------------------------------------------------------- server thread


@dataclass
class RunningEmulator:
    """An emulator served over HTTP from its own thread; ``url`` is its base address."""

    emulator: SluiceEmulator
    url: str = ""
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None

    def inject(self, **kwargs: Any) -> Fault:
        return self.emulator.inject(**kwargs)

    def clear_faults(self) -> None:
        self.emulator.clear_faults()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kmock-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the emulator did not start within 10 s")
        if self._error is not None:
            raise RuntimeError("the emulator failed to start") from self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # surfaced to start() or lost at shutdown
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self.emulator, kmock.Server(self.emulator) as server:
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)


def start_emulator(lean: bool = False) -> RunningEmulator:
    """An emulator serving on a free port from its own thread (``lean``: see ``SluiceEmulator``)."""
    emulator = SluiceEmulator(lean=lean)
    register_resources(emulator)
    running = RunningEmulator(emulator)
    running.start()
    return running


def serve_peering_crd(kube: RunningEmulator) -> None:
    """Serve kopf's ClusterKopfPeering kind (its CRD installed), as the manifests do."""
    from rollouts.peering import CLUSTER_PEERINGS, PEERING_GROUP, PEERING_VERSION

    kube.emulator.resources[f"{PEERING_GROUP}/{PEERING_VERSION}/{CLUSTER_PEERINGS}"] = (
        kmock.ResourceInfo(
            kind="ClusterKopfPeering",
            singular="clusterkopfpeering",
            namespaced=False,
            verbs=ALL_VERBS,
        )
    )


def peering_emulator() -> Iterator[RunningEmulator]:
    """The emulator with kopf's peering CRD served (and no peering object). Operator tests that
    peer install it as their ``kube_emulator`` fixture:
    ``kube_emulator = pytest.fixture(name="kube_emulator")(peering_emulator)``."""
    running = start_emulator()
    serve_peering_crd(running)
    try:
        yield running
    finally:
        running.stop()


def write_kubeconfig(path: Path, url: str, namespace: str = "default") -> Path:
    path.write_text(
        "apiVersion: v1\n"
        "kind: Config\n"
        f"clusters:\n- name: kmock\n  cluster:\n    server: {url}\n"
        "users:\n- name: kmock\n  user:\n    token: kmock-test-token\n"
        f"contexts:\n- name: kmock\n  context:\n    cluster: kmock\n    user: kmock\n"
        f"    namespace: {namespace}\n"
        "current-context: kmock\n"
    )
    return path


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture()
def kube_emulator() -> Iterator[RunningEmulator]:
    """A fresh emulator per test, with Sluice's and the routers' kinds registered."""
    running = start_emulator()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture()
def kubeconfig(
    kube_emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A kubeconfig pointing at the emulator, made the default for kopf and ``kubernetes``."""
    path = write_kubeconfig(tmp_path / "kubeconfig", kube_emulator.url)
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # ``kubernetes`` reads KUBECONFIG once, at import
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    return path


@pytest.fixture()
def api_client(kubeconfig: Path) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture()
def namespace(api_client: kubernetes.client.ApiClient) -> str:
    """The namespace the tests use.

    kmock 0.8 cannot serve ``/api/v1/namespaces`` itself (its path parser reads ``namespaces`` as
    the namespace prefix), so namespaces are not created: objects in any namespace just work.
    """
    return "ns"


# ----------------------------------------------------------------------------------- helpers


def custom(api: kubernetes.client.ApiClient) -> Any:
    return kubernetes.client.CustomObjectsApi(api)


def create_rollout(api: kubernetes.client.ApiClient, doc: dict[str, Any]) -> dict[str, Any]:
    ns = doc["metadata"].get("namespace", "default")
    body = copy.deepcopy(doc)
    body["metadata"].pop("generation", None)
    out: dict[str, Any] = custom(api).create_namespaced_custom_object(
        SLUICE_GROUP, SLUICE_VERSION, ns, "rollouts", body
    )
    return out


def get_rollout(api: kubernetes.client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = custom(api).get_namespaced_custom_object(
        SLUICE_GROUP, SLUICE_VERSION, namespace, "rollouts", name
    )
    return out


def patch_rollout(
    api: kubernetes.client.ApiClient, namespace: str, name: str, patch: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = custom(api).patch_namespaced_custom_object(
        SLUICE_GROUP,
        SLUICE_VERSION,
        namespace,
        "rollouts",
        name,
        patch,
        _content_type="application/merge-patch+json",
    )
    return out


def create_service(
    api: kubernetes.client.ApiClient, namespace: str, name: str, selector: dict[str, str]
) -> None:
    kubernetes.client.CoreV1Api(api).create_namespaced_service(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )


def get_json(api: kubernetes.client.ApiClient, path: str) -> dict[str, Any] | None:
    """GET a raw API path as a dict (None on 404): one way to read any kind in assertions."""
    import json

    try:
        response = api.call_api(
            "GET", api.configuration.host + path, {"Accept": "application/json"}
        )
        response.read()
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            return None
        raise
    if response.status == 404:
        return None
    out: dict[str, Any] = json.loads(response.data)
    return out


def get_deployment(
    api: kubernetes.client.ApiClient, namespace: str, name: str
) -> dict[str, Any] | None:
    return get_json(api, f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")


def get_service(
    api: kubernetes.client.ApiClient, namespace: str, name: str
) -> dict[str, Any] | None:
    return get_json(api, f"/api/v1/namespaces/{namespace}/services/{name}")


def list_json(api: kubernetes.client.ApiClient, path: str) -> list[dict[str, Any]]:
    """Every object of a list path (the emulator ignores selectors: filter in the caller)."""
    doc = get_json(api, path)
    return list((doc or {}).get("items") or [])


def events_for(
    api: kubernetes.client.ApiClient, namespace: str, name: str | None = None
) -> list[dict[str, Any]]:
    """core/v1 Events in ``namespace`` (about object ``name`` when given), oldest first."""
    events = list_json(api, f"/api/v1/namespaces/{namespace}/events")
    if name is not None:
        events = [e for e in events if (e.get("involvedObject") or {}).get("name") == name]
    return events


def set_deployment_ready(
    api: kubernetes.client.ApiClient,
    namespace: str,
    name: str,
    ready: int | None = None,
) -> dict[str, Any]:
    """Play the Deployment controller: report ``ready`` pods (default: all of spec.replicas)."""
    dep = get_deployment(api, namespace, name)
    if dep is None:
        raise LookupError(f"no Deployment {namespace}/{name}")
    replicas = int((dep.get("spec") or {}).get("replicas") or 0)
    n = replicas if ready is None else ready
    status = {
        "observedGeneration": (dep.get("metadata") or {}).get("generation", 1),
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": n,
        "availableReplicas": n,
        "unavailableReplicas": max(replicas - n, 0),
    }
    kubernetes.client.AppsV1Api(api).patch_namespaced_deployment_status(
        name, namespace, {"status": status}, _content_type="application/merge-patch+json"
    )
    out = get_deployment(api, namespace, name)
    assert out is not None
    return out


def ready_slots(
    api: kubernetes.client.ApiClient,
    namespace: str,
    rollout: str,
    predicate: Callable[[dict[str, Any]], bool] | None = None,
) -> list[str]:
    """Mark every slot Deployment of ``rollout`` that is not fully ready at its current generation
    as ready (its ready count lags its replicas, or its status predates a template change)."""
    done = []
    for dep in list_json(api, f"/apis/apps/v1/namespaces/{namespace}/deployments"):
        labels = (dep.get("metadata") or {}).get("labels") or {}
        if labels.get("sluice.dev/rollout") != rollout:
            continue
        if predicate is not None and not predicate(dep):
            continue
        spec_replicas = int((dep.get("spec") or {}).get("replicas") or 0)
        status = dep.get("status") or {}
        generation = (dep.get("metadata") or {}).get("generation", 1)
        if (
            status.get("readyReplicas") != spec_replicas
            or status.get("replicas") != spec_replicas
            # a template change at the same replica count: the controller has not seen it yet
            or status.get("observedGeneration") != generation
        ):
            set_deployment_ready(api, namespace, dep["metadata"]["name"])
            done.append(dep["metadata"]["name"])
    return done


def env_without_kubeconfig() -> dict[str, str]:
    """The process environment minus KUBECONFIG (for subprocesses that must not see a cluster)."""
    return {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
