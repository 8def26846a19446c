"""The kopf operator: thin handlers that load a Rollout, run one reconcile cycle, schedule the next.

Nothing here decides anything: every decision is ``rollouts.engine.decide``'s, reached through
``rollouts.reconcile.cycle`` exactly as the simulator reaches it. The handlers only choose
*when* to reconcile:

- on create, update (spec) and resume (operator start);
- when a request annotation arrives (a watch event carrying a new ``sluice.dev/request``: kopf's
  update handler never sees it, since kopf treats the whole ``sluice.dev/`` annotation prefix as
  its own storage and leaves it out of the diff);
- from a timer per Rollout that ticks every ``tick_seconds`` and reconciles when the engine's
  ``requeue_after`` (bounded to ``[min_requeue_seconds, max_requeue_seconds]``) has passed, or
  every ``idle_seconds`` when nothing is in flight, so drift is repaired eventually;
- when a slot Deployment's readiness changes (the owner Rollout is reconciled at once).

Handlers are synchronous because the ``kubernetes`` client is; kopf runs them in threads. A lock
per Rollout serializes its reconciles (timer, event and Deployment handlers may overlap). A
reconcile that fails is logged, counted, and retried by the timer from a fresh observation: the
engine is pure and reads everything it needs from status, so a retry can never skip or repeat a
step, and a request stays in its annotation until a status that records it has been written.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
import kubernetes
import urllib3

from analysis.store.kube_jobs import KubeJobs
from analysis.store.kubernetes import KubeAnalysisStore
from rollouts import request_annotation, workload_ref
from rollouts.api.rollout import API_GROUP, API_VERSION, ObjectMeta, Rollout, RolloutStatus
from rollouts.api.validation import InvalidSpec, parse_rollout
from rollouts.cluster.kube import LABEL_ROLLOUT, KubeCluster, bound_api_client
from rollouts.engine import decide_invalid, deletion_actions
from rollouts.engine.context import services_of
from rollouts.engine.deletion import handback
from rollouts.engine.routing_hold import stalled_on_router
from rollouts.notifications.delivery import deliver
from rollouts.notifications.kube import KubeNotificationConfig, resolver
from rollouts.notifications.sender import NotificationSender
from rollouts.peering import ensure_cluster_peering
from rollouts.reconcile import Ports, apply, apply_actions, cycle
from rollouts.rejection import rejection
from rollouts.retry_backoff import RetryBackoff
from rollouts.routing.factory import router_for
from rollouts.routing.port import TrafficRouter
from rollouts.settings import Settings
from rollouts.telemetry import Telemetry
from rollouts.verdicts.analysis_runs import AnalysisVerdicts
from rollouts.verdicts.gates import HttpGateProbe
from rollouts.verdicts.port import VerdictSource
from rollouts.verdicts.prometheus_clients import PrometheusClients
from rollouts.watch_errors import restart_watches_on_errors

log = logging.getLogger("sluice.operator")

FINALIZER = "sluice.dev/finalizer"
# Handler ids (kopf names its log lines after them; ``sluice run`` quiets the routine ones)
TIMER_ID = "tick"
DEPLOYMENT_HANDLER_ID = "slot-readiness"
REQUEST_HANDLER_ID = "request-arrived"
WORKLOAD_HANDLER_ID = "adopted-deployment"
PROBE_ID = "rollouts"
PLURAL = "rollouts"
Key = tuple[str, str]
ERROR_RETRY_MAX_SECONDS = 30.0
"""Cap on the growing wait after reconciles that failed on the API (a brownout clears in seconds
to minutes; past this cap, waiting longer only delays the recovery)."""
EXPECTED_ERRORS = (
    kubernetes.client.ApiException,
    urllib3.exceptions.HTTPError,
    TimeoutError,
    ConnectionError,
)
"""What the network does to a reconcile now and then: one log line each, no traceback."""


# ------------------------------------------------------------------------------------ ports


def build_verdicts(api: kubernetes.client.ApiClient, settings: Settings) -> VerdictSource:
    """AnalysisRuns stored as Kubernetes objects, measured by the controller's Prometheus clients
    (web checks by HTTP, job checks by Jobs in the Rollout's namespace)."""
    verdicts = AnalysisVerdicts(
        KubeAnalysisStore(api, timeout=(settings.connect_timeout, settings.request_timeout)),
        PrometheusClients(
            settings.prometheus_url,
            connect_timeout=settings.connect_timeout,
            max_timeout=settings.prometheus_timeout,
        ),
        time.time,
        run_history=settings.analysis_run_history,
    )
    verdicts.lifecycle.jobs = KubeJobs(api, timeout=settings.request_timeout)
    return verdicts


def build_router(
    rollout: Rollout, api: kubernetes.client.ApiClient, settings: Settings
) -> TrafficRouter | None:
    """The Rollout's router (None without trafficRouting), at the API versions configured."""
    return router_for(
        rollout,
        api,
        istio_version=settings.istio_version,
        smi_version=settings.smi_version,
        timeout=(settings.connect_timeout, settings.router_timeout),
    )


def build_notifier(
    api: kubernetes.client.ApiClient,
    settings: Settings,
    telemetry: Telemetry,
    cluster: KubeCluster,
) -> NotificationSender:
    """Notifications: receivers read from the namespace, sent by apprise from their own threads,
    failures counted and posted as Warning Events."""
    timeout = settings.notification_timeout_seconds
    return NotificationSender(
        resolver(KubeNotificationConfig(api, settings.request_timeout)),
        lambda url, notice: deliver(url, notice, timeout),
        lambda result: telemetry.notifications.labels(result).inc(),
        lambda rollout, message: cluster.emit_event(
            rollout, "Warning", "NotificationFailed", message
        ),
        queue_size=settings.notification_queue_size,
        burst=settings.notification_burst,
        refill_seconds=settings.notification_refill_seconds,
    )


# ---------------------------------------------------------------------------------- controller


def _stub(doc: dict[str, Any]) -> Rollout:
    """A Rollout standing for an invalid one: enough (its metadata) to write status and events."""
    meta = ObjectMeta.model_validate(
        {k: v for k, v in (doc.get("metadata") or {}).items() if k in ObjectMeta.model_fields}
    )
    stub: Rollout = Rollout.model_construct(metadata=meta, status=None)  # type: ignore[call-arg]
    return stub


def _lenient_status(doc: dict[str, Any]) -> RolloutStatus | None:
    raw = doc.get("status")
    if not raw:
        return None
    try:
        return RolloutStatus.model_validate(raw)
    except ValueError:
        return None


@dataclass
class _Schedule:
    due: float = 0.0  # time.monotonic() after which the timer reconciles


class Controller:
    """What the handlers call. Built once per operator process over one API client."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        settings: Settings,
        telemetry: Telemetry | None = None,
        *,
        verdicts: VerdictSource | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api = api
        self.settings = settings
        self.telemetry = telemetry or Telemetry()
        self.cluster = KubeCluster(
            api, timeout=(settings.connect_timeout, settings.request_timeout)
        )
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.verdicts = verdicts if verdicts is not None else build_verdicts(api, settings)
        self.gates = HttpGateProbe(lambda: clock().timestamp())
        self.clock = clock
        self.notifier = build_notifier(api, settings, self.telemetry, self.cluster)
        self._locks: dict[Key, threading.Lock] = {}
        self._schedule: dict[Key, _Schedule] = {}
        self._readiness: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._invalid_logged: dict[Key, tuple[str, ...]] = {}
        self._requests_seen: dict[Key, str] = {}
        self._workloads: dict[tuple[str, str], str] = {}  # adopted Deployment → its Rollout
        self._guard = threading.Lock()
        self.router_backoff = RetryBackoff(
            settings.min_requeue_seconds, settings.router_retry_max_seconds
        )
        self.bad_backoff = RetryBackoff(
            settings.min_requeue_seconds, settings.router_retry_max_seconds
        )
        """Rollouts whose reconcile fails on something in them (see ``rollouts.rejection``)."""
        self.error_backoff = RetryBackoff(
            settings.min_requeue_seconds,
            max(settings.min_requeue_seconds, ERROR_RETRY_MAX_SECONDS),
        )
        """Rollouts whose reconcile failed on the API (or a bug): retried ever later, alone."""

    # ------------------------------------------------------------------------ plumbing
    def _lock(self, key: Key) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            doc: Any = self.custom.get_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                namespace,
                PLURAL,
                name,
                _request_timeout=self.settings.request_timeout,
            )
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return None
            raise
        return dict(doc)

    def ports_for(self, rollout: Rollout) -> Ports:
        return Ports(
            cluster=self.cluster,
            router=build_router(rollout, self.api, self.settings),
            verdicts=self.verdicts,
            gates=self.gates,
            notifier=self.notifier,
        )

    def _clear_request(self, namespace: str, name: str, raw: str) -> None:
        try:
            self.custom.patch_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                namespace,
                PLURAL,
                name,
                request_annotation.clear_patch(raw),
                field_manager=self.cluster.field_manager,
                _request_timeout=self.settings.request_timeout,
            )
        except kubernetes.client.ApiException as e:
            if e.status not in (404, 409, 422):
                raise
            # 422: the annotation changed meanwhile (a newer request): it stays for next time

    def _next(
        self,
        key: Key,
        requeue: float | None,
        status: RolloutStatus | None,
        backoff: float | None = None,
    ) -> None:
        s = self.settings
        if backoff is not None:
            wait = backoff
        elif requeue is not None:
            wait = min(max(requeue, s.min_requeue_seconds), s.max_requeue_seconds)
        elif status is not None and status.phase == "Healthy" and not status.scale_downs:
            wait = s.idle_seconds
        else:
            wait = s.max_requeue_seconds
        with self._guard:
            self._schedule.setdefault(key, _Schedule()).due = time.monotonic() + wait

    # ------------------------------------------------------------------------ sync
    def sync(self, namespace: str, name: str) -> float | None:
        """Load one Rollout and run one reconcile cycle on it; returns the engine's
        requeue_after. Raises on API errors."""
        key = (namespace, name)
        with self._lock(key):
            doc = self._get(namespace, name)
            if doc is None or (doc.get("metadata") or {}).get("deletionTimestamp"):
                return None
            meta = doc.get("metadata") or {}
            before = _lenient_status(doc)
            pending = request_annotation.pending(meta.get("annotations"))
            try:
                rollout = self._resolved(parse_rollout(doc))
            except InvalidSpec as e:
                self._invalid(doc, before, e.problems)
                self._next(key, None, before, self.bad_backoff.next_delay(key, True))
                return None
            with self._guard:
                self._invalid_logged.pop(key, None)  # valid again: a new problem is news
            try:
                with self.telemetry.timed():
                    if pending.problem is not None and pending.raw is not None:
                        self.cluster.emit_event(
                            rollout, "Warning", "InvalidRequest", pending.problem
                        )
                        self._clear_request(namespace, name, pending.raw)
                    plan = cycle(rollout, self.ports_for(rollout), self.clock(), pending.request)
            except Exception as e:
                # the Rollout's own fault (a body the client or the server refuses, a shape the
                # code did not expect): Stalled naming it, retried ever later; else re-raised
                problem = rejection(e)
                if problem is None:
                    raise
                self._invalid(doc, before, [problem])
                self._next(key, None, before, self.bad_backoff.next_delay(key, True))
                return None
            self.bad_backoff.next_delay(key, False)
            self.telemetry.observe(rollout, before, plan.status)
            req = pending.request
            if req is not None and pending.raw is not None and plan.status.last_request == req.id:
                self._clear_request(namespace, name, pending.raw)
            # a broken router (Stalled/RoutingError, decided by the engine) is retried ever later
            backoff = self.router_backoff.next_delay(key, stalled_on_router(plan.status))
            self._next(key, plan.requeue_after, plan.status, backoff)
            return plan.requeue_after

    def adopts(self, body: Any) -> bool:
        """Whether a Rollout's workloadRef names this Deployment."""
        meta = body.get("metadata") or {}
        with self._guard:
            return (meta.get("namespace"), meta.get("name")) in self._workloads

    def _resolved(self, rollout: Rollout) -> Rollout:
        """With ``workloadRef``: the Deployment's template in the spec (``rollouts.workload_ref``),
        and the Deployment remembered, so its changes reconcile the Rollout at once."""
        ref = rollout.spec.workload_ref
        if ref is None:
            return rollout
        with self._guard:
            self._workloads[(rollout.metadata.namespace, ref.name)] = rollout.metadata.name
        return workload_ref.resolve(rollout, self.cluster.read_workload(rollout))

    def _invalid(
        self, doc: dict[str, Any], before: RolloutStatus | None, problems: list[str]
    ) -> None:
        """Stalled/InvalidSpec naming the fields, written like any status; nothing else touched."""
        stub = _stub(doc)
        generation = (doc.get("metadata") or {}).get("generation")
        plan = decide_invalid(before, generation, problems, self.clock())
        apply(stub, plan, Ports(cluster=self.cluster, router=None, verdicts=self.verdicts))
        self.telemetry.invalid(stub.metadata.namespace, stub.metadata.name, before, plan.status)
        key = (stub.metadata.namespace, stub.metadata.name)
        with self._guard:  # once per distinct set of problems, not on every timer tick
            seen = self._invalid_logged.get(key) == tuple(problems)
            self._invalid_logged[key] = tuple(problems)
        if not seen:
            log.warning("rollout %s/%s is invalid: %s", *key, problems)

    def run(self, namespace: str, name: str) -> None:
        """Reconcile, never raise: a failure is logged (one line for what the network does, a
        traceback only for a bug) and the timer retries the Rollout after a growing delay, so a
        Rollout failing over and over costs the workers little and its neighbours nothing."""
        key = (namespace, name)
        try:
            self.sync(namespace, name)
        except Exception as e:
            self.telemetry.reconcile_errors.inc()
            delay = self.error_backoff.next_delay(key, True)
            assert delay is not None
            if isinstance(e, EXPECTED_ERRORS):
                log.warning(
                    "reconcile of %s/%s failed: %s; retrying in %.1fs",
                    namespace,
                    name,
                    _api_error(e),
                    delay,
                )
            else:
                log.exception(
                    "reconcile of %s/%s failed; retrying in %.1fs", namespace, name, delay
                )
            self._next(key, None, None, delay)
        else:
            self.error_backoff.next_delay(key, False)

    def request_event(self, namespace: str, name: str, raw: str | None) -> None:
        """A watch event shows the request annotation ``raw``: reconcile now, once per value.

        Once per value because every status the reconcile writes is another event with the
        annotation still on it (until it is cleared, or for good when clearing fails): reacting to
        each would loop. A reconcile that fails is retried by the timer, as any other."""
        key = (namespace, name)
        with self._guard:
            if raw is None:
                self._requests_seen.pop(key, None)
                return
            if self._requests_seen.get(key) == raw:
                return
            self._requests_seen[key] = raw
        self.run(namespace, name)

    def on_timer(self, namespace: str, name: str) -> None:
        """The timer fired: reconcile when due (first time: at once)."""
        with self._guard:
            sched = self._schedule.get((namespace, name))
        if sched is None or time.monotonic() >= sched.due:
            self.run(namespace, name)

    # ------------------------------------------------------------------------ deployments
    def deployment_event(self, body: dict[str, Any]) -> None:
        """A slot Deployment changed: reconcile its Rollout now if its readiness moved."""
        meta = body.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(LABEL_ROLLOUT)
        namespace = meta.get("namespace")
        if not owner and namespace:
            with self._guard:  # a Deployment a Rollout adopts (workloadRef)
                owner = self._workloads.get((namespace, meta.get("name", "")))
            readiness_only = False
        else:
            readiness_only = True
        if not owner or not namespace:
            return
        status = body.get("status") or {}
        readiness = (
            meta.get("generation"),
            status.get("observedGeneration"),
            status.get("replicas"),
            status.get("readyReplicas"),
            status.get("updatedReplicas"),
            (body.get("spec") or {}).get("replicas"),
            # an adopted Deployment's template change is a new revision
            None if readiness_only else repr((body.get("spec") or {}).get("template")),
        )
        dkey = (namespace, meta.get("name", ""))
        with self._guard:
            if self._readiness.get(dkey) == readiness:
                return
            self._readiness[dkey] = readiness
        self.run(namespace, owner)

    # ------------------------------------------------------------------------ deletion
    def finalize(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        """Apply the engine's deletion actions (``rollouts.engine.deletion``: traffic back to
        stable, managed routes removed, the stable Deployment released and left running).

        Raises on API errors: kopf retries the finalizer until it completes.
        """
        key = (namespace, name)
        with self._lock(key):
            try:
                rollout: Rollout | None = parse_rollout(body)
            except InvalidSpec:
                rollout = None
            target = rollout if rollout is not None else _stub(body)
            router = build_router(rollout, self.api, self.settings) if rollout else None
            services = services_of(rollout) if rollout is not None else []
            ports = Ports(cluster=self.cluster, router=router, verdicts=self.verdicts)
            adopted = None
            if rollout is not None and rollout.spec.workload_ref is not None:
                deployment = self.cluster.read_workload(rollout)
                adopted = deployment is not None
                scale, waiting = handback(rollout, workload_ref.observation(deployment))
                apply_actions(target, scale, ports)
                if waiting:  # the Deployment's pods must serve before the slots stop
                    raise kopf.TemporaryError(
                        f"waiting for Deployment {rollout.spec.workload_ref.name} to be ready",
                        delay=self.settings.min_requeue_seconds,
                    )
            # a Deployment deleted too gets nothing handed back: the stable slot keeps serving
            apply_actions(target, deletion_actions(rollout, services, adopted is not False), ports)
            self._forget(key)

    def _forget(self, key: Key) -> None:
        self.telemetry.forget(*key)
        self.router_backoff.forget(key)
        self.bad_backoff.forget(key)
        self.error_backoff.forget(key)
        with self._guard:
            self._schedule.pop(key, None)
            self._locks.pop(key, None)
            self._invalid_logged.pop(key, None)
            self._requests_seen.pop(key, None)


def _api_error(e: BaseException) -> str:
    """An API failure in a few words (the status and reason, or the transport's error)."""
    if isinstance(e, kubernetes.client.ApiException):
        return f"{e.status} {e.reason}"
    reason = getattr(e, "reason", None)
    if isinstance(reason, BaseException):
        return f"{type(e).__name__}: {reason}"
    return f"{type(e).__name__}: {e}"[:200]


# ------------------------------------------------------------------------------------- kopf


def configure_kopf(kopf_settings: kopf.OperatorSettings, settings: Settings) -> None:
    """kopf's own state lives under ``sluice.dev`` (progress, diff-base, finalizer, peering)."""
    p = kopf_settings.persistence
    p.progress_storage = kopf.AnnotationsProgressStorage(prefix="sluice.dev")
    p.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="sluice.dev", key="last-handled-configuration"
    )
    p.finalizer = FINALIZER
    kopf_settings.peering.name = settings.peering
    kopf_settings.peering.priority = settings.priority
    kopf_settings.peering.standalone = settings.standalone
    kopf_settings.peering.clusterwide = settings.clusterwide
    kopf_settings.watching.server_timeout = settings.watch_server_timeout
    kopf_settings.watching.client_timeout = settings.watch_client_timeout
    kopf_settings.watching.connect_timeout = settings.connect_timeout
    kopf_settings.networking.request_timeout = settings.request_timeout
    kopf_settings.networking.connect_timeout = settings.connect_timeout
    kopf_settings.posting.level = logging.WARNING
    kopf_settings.execution.max_workers = settings.workers
    # a Rollout deleted while its timer is mid-reconcile waits for the timer to exit before the
    # finalizer goes; kopf re-checks only every 60 s by default, which held deletions (and the
    # restored stable routing's confirmation) for a minute
    kopf_settings.background.cancellation_polling = 1
    if not settings.clusterwide:
        kopf_settings.scanning.disabled = True


def build_registry(controller: Controller, settings: Settings) -> kopf.OperatorRegistry:
    """A fresh registry with Sluice's handlers (fresh, so tests can run and restart operators)."""
    registry = kopf.OperatorRegistry()
    resource = (API_GROUP, API_VERSION, PLURAL)
    # with --shard, every handler sees only this shard's Rollouts (and their slot Deployments);
    # kopf then neither adds finalizers to nor stores its state on another shard's objects
    mine: Any = None
    slot_of_mine: Any = None
    if settings.shard is not None:

        def mine(namespace: str | None, name: str | None, **_: Any) -> bool:
            return settings.owns(namespace, name)

        def slot_of_mine(namespace: str | None, labels: Any, **_: Any) -> bool:
            return settings.owns(namespace, (labels or {}).get(LABEL_ROLLOUT))

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings, controller.settings)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
        return info or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.probe(id=PROBE_ID, registry=registry)
    def probe(**_: Any) -> int:
        with controller._guard:
            return len(controller._schedule)

    @kopf.on.resume(*resource, when=mine, registry=registry)
    @kopf.on.create(*resource, when=mine, registry=registry)
    @kopf.on.update(*resource, when=mine, registry=registry)
    def changed(**kwargs: Any) -> None:
        controller.run(kwargs["namespace"], kwargs["name"])

    @kopf.timer(
        *resource, id=TIMER_ID, interval=settings.tick_seconds, when=mine, registry=registry
    )
    def timer(**kwargs: Any) -> None:
        controller.on_timer(kwargs["namespace"], kwargs["name"])

    @kopf.on.event(*resource, id=REQUEST_HANDLER_ID, when=mine, registry=registry)
    def request_arrived(**kwargs: Any) -> None:
        if kwargs.get("type") == "DELETED":
            return
        annotations = (kwargs["body"].get("metadata") or {}).get("annotations") or {}
        controller.request_event(
            kwargs["namespace"], kwargs["name"], annotations.get(request_annotation.ANNOTATION)
        )

    @kopf.on.delete(*resource, when=mine, registry=registry)
    def deleted(**kwargs: Any) -> None:
        namespace, name, body = kwargs["namespace"], kwargs["name"], kwargs["body"]
        try:
            controller.finalize(namespace, name, dict(_plain(body)))
        except Exception as e:
            raise kopf.TemporaryError(f"releasing {namespace}/{name}: {e}", delay=1) from e

    @kopf.on.event(
        "apps",
        "v1",
        "deployments",
        id=DEPLOYMENT_HANDLER_ID,
        labels={LABEL_ROLLOUT: kopf.PRESENT},
        when=slot_of_mine,
        registry=registry,
    )
    def deployment(body: kopf.Body, **_: Any) -> None:
        controller.deployment_event(_plain(body))

    @kopf.on.event(
        "apps",
        "v1",
        "deployments",
        id=WORKLOAD_HANDLER_ID,
        labels={LABEL_ROLLOUT: kopf.ABSENT},
        when=lambda body, **_: controller.adopts(body),
        registry=registry,
    )
    def workload(body: kopf.Body, **_: Any) -> None:
        controller.deployment_event(_plain(body))

    return registry


def _plain(body: Any) -> dict[str, Any]:
    """kopf's Body as a plain dict (deep)."""

    def conv(v: Any) -> Any:
        if hasattr(v, "items"):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [conv(x) for x in v]
        return v

    out: dict[str, Any] = conv(body)
    return out


def default_api_client() -> kubernetes.client.ApiClient:
    """In-cluster credentials when running in a Pod, else the kubeconfig."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    return kubernetes.client.ApiClient()


async def run(
    settings: Settings,
    *,
    api: kubernetes.client.ApiClient | None = None,
    telemetry: Telemetry | None = None,
    verdicts: VerdictSource | None = None,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
) -> None:
    """Run the operator until cancelled (or ``stop_flag`` is set)."""
    api = bound_api_client(
        api or default_api_client(),
        pool_size=settings.workers + 4,  # the workers, plus startup and peering calls
        timeout=(settings.connect_timeout, settings.request_timeout),
    )
    restart_watches_on_errors()
    telemetry = telemetry or Telemetry()
    if settings.metrics_port is not None:
        telemetry.serve(settings.metrics_port)
    # kopf waits paused until its peering object exists; the manifests ship only its CRD (see
    # rollouts/peering.py for why), so create it before kopf starts (False: stopped meanwhile)
    peered = not settings.standalone and settings.clusterwide
    if peered and not await ensure_cluster_peering(api, settings.peering, stop_flag=stop_flag):
        api.close()  # type: ignore[no-untyped-call]
        return
    controller = Controller(api, settings, telemetry, verdicts=verdicts)
    registry = build_registry(controller, settings)
    namespaces: Collection[str] = settings.namespaces
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=settings.clusterwide,
            namespaces=namespaces,
            standalone=settings.standalone,
            priority=settings.priority,
            # a peering name makes peering mandatory (kopf waits for its CRD): only with replicas
            peering_name=None if settings.standalone else settings.peering,
            liveness_endpoint=settings.liveness_endpoint(),
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            memo=kopf.Memo(controller=controller),
        )
    finally:
        # queued notifications go with the process (at most once: docs/notifications.md)
        controller.notifier.stop(timeout=0)
        api.close()  # type: ignore[no-untyped-call]  # its own client, not the caller's
