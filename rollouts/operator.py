"""The kopf operator: thin handlers that feed watches into a cache and a reconcile queue.

Nothing here decides anything: every decision is ``rollouts.engine.decide``'s, reached through
``rollouts.reconcile.cycle`` exactly as the simulator reaches it. The handlers only choose
*when* to reconcile, and serve what a reconcile reads:

- indexes fed by kopf's watches hold the Rollouts, their slot Deployments, Services, router
  objects and AnalysisRuns, an event indexed and passed on beside kopf's per-event processing
  (``rollouts.kopf_fast_path``; kopf still handles a Rollout's finalizer and deletion);
  ``rollouts.cluster.cache.WatchCache`` reads them (a kind the cluster does not
  serve falls back to a GET), so a reconcile that finds nothing changed sends no request;
- a watch event on any of them submits the Rollouts that read it to the reconcile queue
  (``rollouts.reconcile_queue``): a new ``sluice.dev/request`` at once (kopf's update handler never
  sees it: kopf treats the whole ``sluice.dev/`` annotation prefix as its own storage), a slot's
  readiness, a hand edit of a route's weights; an event whose objects are all as the Rollout's last
  reconcile saw them (the echo of its own write) is skipped;
- the queue's scheduler reconciles a Rollout again when time matters: the engine's
  ``requeue_after`` (bounded to ``[min_requeue_seconds, max_requeue_seconds]``), a retry backoff,
  ``max_requeue_seconds`` while something is in flight, and an ``idle_seconds`` re-check of a
  settled Rollout that costs nothing when its objects are unchanged. No timer ticks per Rollout.

With replicas, kopf's peering pause holds the queue too (``rollouts.kopf_pause``): a paused
replica decides nothing, and reads from the API, not its stopped watches, when it resumes.

Reconciles run on a bounded pool of threads (the ``kubernetes`` client is synchronous); a lock per
Rollout serializes them with the finalizer. A reconcile that fails is logged, counted, and retried
from a fresh observation: the engine is pure and reads everything it needs from status, so a
retry can never skip or repeat a step, and a request stays in its annotation until a status that
records it has been written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

import kopf
import kubernetes
import urllib3

from analysis.store.kube_jobs import KubeJobs
from analysis.store.kubernetes import KubeAnalysisStore
from rollouts import kopf_fast_path, kopf_pause, kopf_toggles, request_annotation, workload_ref
from rollouts.api.rollout import API_GROUP, API_VERSION, ObjectMeta, Rollout, RolloutStatus
from rollouts.api.validation import InvalidSpec, parse_rollout
from rollouts.cluster import unvalidated_calls
from rollouts.cluster.cache import Fingerprint, WatchCache
from rollouts.cluster.kube import LABEL_ROLLOUT, SLOTS, KubeCluster, bound_api_client
from rollouts.cluster.object_index import ObjectIndex, own_key
from rollouts.engine import decide_invalid, deletion_actions
from rollouts.engine.context import services_of
from rollouts.engine.deletion import handback
from rollouts.engine.plan import Plan
from rollouts.engine.routing_hold import stalled_on_router
from rollouts.kopf_session import bounded_session, connection_limit, quiet_retried_requests
from rollouts.notifications.delivery import deliver
from rollouts.notifications.kube import KubeNotificationConfig, resolver
from rollouts.notifications.sender import NotificationSender
from rollouts.peering import ensure_cluster_peering
from rollouts.reconcile import Ports, apply, apply_actions, cycle
from rollouts.reconcile_queue import ReconcileQueue
from rollouts.rejection import rejection
from rollouts.retry_backoff import RetryBackoff
from rollouts.routing.factory import router_for
from rollouts.routing.port import TrafficRouter
from rollouts.settings import Settings
from rollouts.telemetry import Telemetry
from rollouts.verdicts.analysis_runs import AnalysisVerdicts
from rollouts.verdicts.cached_runs import RUNS, RUNS_OF, CachedRunStore
from rollouts.verdicts.gates import HttpGateProbe
from rollouts.verdicts.port import VerdictSource
from rollouts.verdicts.prometheus_clients import PrometheusClients
from rollouts.watch_errors import restart_watches_on_errors

log = logging.getLogger("sluice.operator")
peering_log = logging.getLogger("sluice.peering")

kopf_toggles.install()  # kopf's index readiness at start: linear, not cubic
kopf_fast_path.install()  # watch events beside kopf's per-event processing

FINALIZER = "sluice.dev/finalizer"
# kopf names its log lines after handler ids; ``sluice run`` quiets the probe's routine one
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


def build_verdicts(
    api: kubernetes.client.ApiClient, settings: Settings, cache: WatchCache | None = None
) -> VerdictSource:
    """AnalysisRuns stored as Kubernetes objects (read from the watches when ``cache`` is given),
    measured by the controller's Prometheus clients (web checks by HTTP, job checks by Jobs in
    the Rollout's namespace)."""
    store = KubeAnalysisStore(api, timeout=(settings.connect_timeout, settings.request_timeout))
    verdicts = AnalysisVerdicts(
        store if cache is None else CachedRunStore(store, cache),
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
    rollout: Rollout,
    api: kubernetes.client.ApiClient,
    settings: Settings,
    cache: WatchCache | None = None,
) -> TrafficRouter | None:
    """The Rollout's router (None without trafficRouting), at the API versions configured."""
    return router_for(
        rollout,
        api,
        istio_version=settings.istio_version,
        smi_version=settings.smi_version,
        timeout=(settings.connect_timeout, settings.router_timeout),
        cache=cache,
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


def _stub(doc: dict[str, Any], status: RolloutStatus | None = None) -> Rollout:
    """A Rollout standing for an invalid one: enough (its metadata, and the status it has, so an
    unchanged status is not written again) to write status and events."""
    meta = ObjectMeta.model_validate(
        {k: v for k, v in (doc.get("metadata") or {}).items() if k in ObjectMeta.model_fields}
    )
    stub: Rollout = Rollout.model_construct(metadata=meta, status=status)  # type: ignore[call-arg]
    return stub


def _lenient_status(doc: dict[str, Any]) -> RolloutStatus | None:
    raw = doc.get("status")
    if not raw:
        return None
    try:
        return RolloutStatus.model_validate(raw)
    except ValueError:
        return None


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
        self.cache = WatchCache()
        """What the watches saw; empty (every read a GET) until the operator attaches indexes."""
        self.cluster = KubeCluster(
            api, timeout=(settings.connect_timeout, settings.request_timeout), cache=self.cache
        )
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.verdicts = (
            verdicts if verdicts is not None else build_verdicts(api, settings, self.cache)
        )
        self.gates = HttpGateProbe(lambda: clock().timestamp())
        self.clock = clock
        self.notifier = build_notifier(api, settings, self.telemetry, self.cluster)
        self.queue = ReconcileQueue(self._work, workers=settings.workers)
        self.telemetry.working(settings.peering)  # until kopf's peering says otherwise
        self._locks: dict[Key, threading.Lock] = {}
        self._seen: dict[Key, Fingerprint] = {}
        """What each Rollout's last reconcile read (by resourceVersion): an event finding all of
        it unchanged is skipped."""
        self._readers: defaultdict[tuple[str, str, str], set[Key]] = defaultdict(set)
        """Observed object (kind, namespace, name) → the Rollouts whose reconcile read it."""
        self._invalid_logged: dict[Key, tuple[str, ...]] = {}
        self._requests_seen: dict[Key, str] = {}
        self._workloads: dict[tuple[str, str], str] = {}  # adopted Deployment → its Rollout
        self._stale: set[Key] = set()
        """Rollouts whose watched objects may predate a peering pause (another replica may have
        moved them on meanwhile): their next reconcile reads everything from the API server."""
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
        """The Rollout, from the watch (a GET before the watch has it)."""
        return self.cache.get(PLURAL, namespace, name, lambda: self._fetch(namespace, name))

    # ------------------------------------------------------------------------ peering
    def peering_paused(self, paused: bool, reasons: tuple[str, ...] = ()) -> None:
        """kopf paused this replica (``reasons``: its own words, e.g. a peer's priority), or
        resumed it (``rollouts.kopf_pause``).

        Paused: the queue runs nothing, so nothing is decided from the watches kopf stopped.
        Resumed: the other replica may have moved any Rollout on meanwhile, and kopf's watches list
        everything again only now, so every Rollout's next reconcile reads what it decides from
        by GET (the Rollout, its slots, Services, route and runs), and keeps the answers over the
        older watch copies; what came due during the pause runs at once (a pause that ended, an
        analysis interval)."""
        if paused:
            self.queue.pause()
            self.telemetry.pausing(self.settings.peering)
            peering_log.info(
                "paused by kopf (%s): reconciles held", ", ".join(reasons) or "no reason given"
            )
            return
        with self._guard:
            self._stale.update(self._locks)  # before the queue runs again
        self.telemetry.working(self.settings.peering)
        held = self.queue.resume()
        peering_log.info("resumed: this replica works again; %d held reconciles released", held)

    def _fetch(self, namespace: str, name: str) -> dict[str, Any] | None:
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
            router=build_router(rollout, self.api, self.settings, self.cache),
            verdicts=self.verdicts,
            gates=self.gates,
            notifier=self.notifier,
        )

    def _clear_request(self, namespace: str, name: str, raw: str) -> None:
        try:
            cleared = self.custom.patch_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                namespace,
                PLURAL,
                name,
                request_annotation.clear_patch(raw),
                field_manager=self.cluster.field_manager,
                _request_timeout=self.settings.request_timeout,
            )
            self.cache.remember(PLURAL, cleared)
        except kubernetes.client.ApiException as e:
            if e.status not in (404, 409, 422):
                raise
            # 422: the annotation changed meanwhile (a newer request): it stays for next time

    def _next(
        self,
        key: Key,
        requeue: float | None,
        plan: Plan | None,
        backoff: float | None = None,
    ) -> None:
        with self._guard:
            if key not in self._locks:
                # forgotten (deleted) while this reconcile ran: a due time set now would keep
                # the Rollout in the queue until it came due, and run a reconcile for nothing
                return
        s = self.settings
        timed = True
        if backoff is not None:
            wait = backoff
        elif requeue is not None:
            wait = min(max(requeue, s.min_requeue_seconds), s.max_requeue_seconds)
        elif plan is not None and plan.waits_for_events:
            # the drift re-check only, skipped (no request, next to no CPU) unless an object it
            # reads changed without its event having reconciled it (a reconcile that failed)
            wait, timed = s.idle_seconds, False
        else:
            wait = s.max_requeue_seconds
        self.queue.at(key, wait, timed)

    # ------------------------------------------------------------------------ sync
    def sync(self, namespace: str, name: str) -> float | None:
        """Load one Rollout and run one reconcile cycle on it; returns the engine's
        requeue_after. Raises on API errors."""
        key = (namespace, name)
        with self._guard:
            cold = key in self._stale  # after a peering pause: read from the API, not the watches
        with self._lock(key), self.cache.recording() as reads:
            with self.cache.bypassed() if cold else contextlib.nullcontext():
                requeue = self._sync(key, namespace, name)
            with self._guard:
                if cold:  # a warm one that spanned a whole pause leaves the mark for the next
                    self._stale.discard(key)
                if key in self._locks:  # else forgotten meanwhile (deleted)
                    self._remember_reads(key, reads)
            return requeue

    def _remember_reads(self, key: Key, reads: Fingerprint) -> None:
        """Keep what this reconcile read, and index it by object so its events find the Rollout."""
        before = self._seen.get(key) or {}
        for obj in before.keys() - reads.keys():
            self._unread(obj, key)
        for kind, namespace, name in reads:
            if kind.startswith("list:"):
                kind = kind.split(":")[1]
            self._readers[(kind, namespace, name)].add(key)
        self._seen[key] = reads

    def _unread(self, obj: tuple[str, str, str], key: Key) -> None:
        kind, namespace, name = obj
        if kind.startswith("list:"):
            kind = kind.split(":")[1]
        readers = self._readers.get((kind, namespace, name))
        if readers is not None:
            readers.discard(key)
            if not readers:
                del self._readers[(kind, namespace, name)]

    def _sync(self, key: Key, namespace: str, name: str) -> float | None:
        doc = self._get(namespace, name)
        if doc is None:
            self._forget(key)  # gone: nothing of it is kept
            return None
        if (doc.get("metadata") or {}).get("deletionTimestamp"):
            return None
        meta = doc.get("metadata") or {}
        before = _lenient_status(doc)
        pending = request_annotation.pending(meta.get("annotations"))
        try:
            rollout = self._resolved(parse_rollout(doc))
        except InvalidSpec as e:
            self._invalid(doc, before, e.problems)
            self._next(key, None, None, self.bad_backoff.next_delay(key, True))
            return None
        with self._guard:
            self._invalid_logged.pop(key, None)  # valid again: a new problem is news
        try:
            with self.telemetry.timed():
                if pending.problem is not None and pending.raw is not None:
                    self.cluster.emit_event(rollout, "Warning", "InvalidRequest", pending.problem)
                    self._clear_request(namespace, name, pending.raw)
                plan = cycle(rollout, self.ports_for(rollout), self.clock(), pending.request)
        except Exception as e:
            # the Rollout's own fault (a body the client or the server refuses, a shape the
            # code did not expect): Stalled naming it, retried ever later; else re-raised
            problem = rejection(e)
            if problem is None:
                raise
            self._invalid(doc, before, [problem])
            self._next(key, None, None, self.bad_backoff.next_delay(key, True))
            return None
        self.bad_backoff.next_delay(key, False)
        self.telemetry.observe(rollout, before, plan.status)
        req = pending.request
        if req is not None and pending.raw is not None and plan.status.last_request == req.id:
            self._clear_request(namespace, name, pending.raw)
        # a broken router (Stalled/RoutingError, decided by the engine) is retried ever later
        backoff = self.router_backoff.next_delay(key, stalled_on_router(plan.status))
        self._next(key, plan.requeue_after, plan, backoff)
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
        stub = _stub(doc, before)
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

    def _work(self, key: Key, timed: bool) -> None:
        """A queued reconcile: skipped when an event brought nothing new (every object the last
        reconcile read is as it was, so the engine would decide the same), else run."""
        if not timed:
            with self._guard:
                seen = self._seen.get(key)
            if seen is not None and self.cache.unchanged(seen):
                if self.queue.due_in(key) is None:  # a skipped drift re-check: the next one
                    self.queue.at(key, self.settings.idle_seconds, timed=False)
                return
        self.run(*key)

    def trigger(self, namespace: str, name: str, timed: bool = False) -> None:
        """Reconcile soon (``timed``: even if nothing it reads has changed)."""
        self.queue.submit((namespace, name), timed)

    def rollout_event(self, namespace: str, name: str, event_type: str | None) -> None:
        """A watch event on a Rollout: its spec, status, annotations (requests) or deletion."""
        if event_type == "DELETED":
            self._forget((namespace, name))
            return
        self.trigger(namespace, name)

    def request_event(self, namespace: str, name: str, raw: str | None) -> None:
        """A watch event shows the request annotation ``raw``: reconcile now, once per value.

        Once per value because every status the reconcile writes is another event with the
        annotation still on it (until it is cleared, or for good when clearing fails): reacting to
        each would loop. A reconcile that fails is retried later, as any other."""
        key = (namespace, name)
        with self._guard:
            if raw is None:
                self._requests_seen.pop(key, None)
                return
            if self._requests_seen.get(key) == raw:
                return
            self._requests_seen[key] = raw
        self.trigger(namespace, name, timed=True)

    def observed_event(self, kind: str, body: dict[str, Any], deleted: bool = False) -> None:
        """An object some Rollouts read changed (a Service, a router object, a run, a slot):
        submit them; each reconcile is skipped if it finds what it read unchanged."""
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        if deleted:  # a copy this process wrote must not hide the deletion
            self.cache.drop(kind, namespace, name)
        with self._guard:
            readers = set(self._readers.get((kind, namespace, name), ()))
        owner = (meta.get("labels") or {}).get(LABEL_ROLLOUT)
        if owner and kind in ("deployments", RUNS):
            readers.add((namespace, owner))  # a slot or run created since the last reconcile
        for key in readers:
            self.queue.submit(key)

    # ------------------------------------------------------------------------ deployments
    def deployment_event(self, body: dict[str, Any], deleted: bool = False) -> None:
        """A slot Deployment (or one a Rollout adopts) changed: reconcile its Rollout."""
        meta = body.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(LABEL_ROLLOUT)
        namespace = meta.get("namespace")
        if not owner and namespace:
            with self._guard:  # a Deployment a Rollout adopts (workloadRef): read by GET, so
                owner = self._workloads.get((namespace, meta.get("name", "")))
            if owner:  # the fingerprint cannot tell it changed: always reconcile
                self.trigger(namespace, owner, timed=True)
            return
        self.observed_event("deployments", body, deleted)

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
            router = build_router(rollout, self.api, self.settings, self.cache) if rollout else None
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
        """Drop everything kept about a Rollout that is gone (memory stays flat over time)."""
        self.telemetry.forget(*key)
        self.router_backoff.forget(key)
        self.bad_backoff.forget(key)
        self.error_backoff.forget(key)
        self.queue.cancel(key)
        namespace, name = key
        self.cache.forget(namespace, [name, *(f"{name}-{slot}" for slot in SLOTS)])
        with self._guard:
            self._locks.pop(key, None)
            self._invalid_logged.pop(key, None)
            self._requests_seen.pop(key, None)
            self._stale.discard(key)
            for obj in self._seen.pop(key, {}):
                self._unread(obj, key)
            for workload in [w for w, owner in self._workloads.items() if (w[0], owner) == key]:
                del self._workloads[workload]

    def state_sizes(self) -> dict[str, int]:
        """How many entries each per-Rollout structure holds (tests check they are pruned)."""
        with self._guard:
            sizes = {
                "locks": len(self._locks),
                "seen": len(self._seen),
                "readers": len(self._readers),
                "invalid_logged": len(self._invalid_logged),
                "requests_seen": len(self._requests_seen),
                "workloads": len(self._workloads),
                "stale": len(self._stale),
            }
        sizes["fresher"] = self.cache.fresher_count()
        # the heap keeps cancelled entries until they come due (bounded by the fleet's size)
        sizes.update({f"queue_{k}": v for k, v in self.queue.sizes().items() if k != "heap"})
        return sizes

    def close(self) -> None:
        """Stop scheduling reconciles (the operator is exiting); runs in progress finish."""
        self.queue.stop()


def _api_error(e: BaseException) -> str:
    """An API failure in a few words (the status and reason, or the transport's error)."""
    if isinstance(e, kubernetes.client.ApiException):
        return f"{e.status} {e.reason}"
    reason = getattr(e, "reason", None)
    if isinstance(reason, BaseException):
        return f"{type(e).__name__}: {reason}"
    return f"{type(e).__name__}: {e}"[:200]


# ------------------------------------------------------------------------------------- kopf


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff-base: every object's essence is empty, so kopf sees no changes to diff.

    Sluice's handlers are level-triggered (index, event, delete): none reads kopf's diffs. A
    kept diff-base cost, on every watch event of every watched kind, a deep copy of the object
    to compare with the last one, and on every Rollout change a PATCH of a
    ``last-handled-configuration`` annotation, whose own watch event was processed again: at
    1,000 Rollouts updated at once, 1,000 PATCHes beside the controller's 10,589 other calls in
    the step phase (benchmarks/scale.py at c502ea3). Deletion does not
    depend on it (kopf detects it from ``deletionTimestamp`` and its finalizer). An annotation
    an earlier version left on a Rollout is left as it is and ignored."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: Any) -> Any:
        return {}

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


EXIT_GRACE_SECONDS = 20.0
"""How long kopf may take to stop once it has begun (not asked by its stop flag) before it kills
its process, so the Deployment restarts a controller that would otherwise stay up doing nothing.
For a controller process only (``sluice run``): kopf's kill takes the whole process, and an
operator run inside another program (the tests', cancelled and restarted) must not kill it."""


def configure_kopf(
    kopf_settings: kopf.OperatorSettings,
    settings: Settings,
    exit_grace_seconds: float | None = None,
) -> None:
    """kopf's own state lives under ``sluice.dev`` (progress, finalizer, peering); it keeps no
    diff-base (``NoDiffBase``); ``exit_grace_seconds``: see ``EXIT_GRACE_SECONDS`` (None: never
    kill the process)."""
    p = kopf_settings.persistence
    p.progress_storage = kopf.AnnotationsProgressStorage(prefix="sluice.dev")
    p.diffbase_storage = NoDiffBase()
    p.finalizer = FINALIZER
    # kopf stops by itself when a watcher fails for good (a list refused with 403, say), and
    # kopf 1.45 can then wait forever for that watcher's workers: the process stayed up, its
    # reconcile queue held, doing nothing. kopf's own last resort, a SIGKILL this long into a
    # stop it did not ask for by its stop flag (a failure or a signal), came after 10 minutes.
    # A stop on SIGTERM ends in a few seconds, and a Pod is killed 30 s after SIGTERM anyway.
    kopf_settings.process.ultimate_exiting_timeout = exit_grace_seconds
    kopf_settings.peering.name = settings.peering
    kopf_settings.peering.priority = settings.priority
    kopf_settings.peering.lifetime = settings.peering_lifetime
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


# The kinds a reconcile reads besides Rollouts, slots and runs, served from the watches: cache
# kind -> (the API version watched, authoritative). Authoritative kinds are always served, so an
# object missing from the index does not exist; a router's CRD may not be installed, so a miss
# there falls back to a GET (a missing router object is an error the Rollout reports anyway). The
# routers are watched at the controller's default versions (constants, so the RBAC scan reads
# them); with another version configured, that kind is read by GET (a real API server serves one
# object at every version, the test emulator does not).
WATCHED: dict[str, tuple[str, bool]] = {
    "services": ("v1", True),
    "virtualservices": ("v1beta1", False),
    "httproutes": ("v1", False),
    "trafficsplits": ("v1alpha2", False),
    "ingresses": ("v1", True),
}


def _served_from_watch(kind: str, settings: Settings) -> bool:
    configured = {
        "virtualservices": settings.istio_version,
        "trafficsplits": settings.smi_version,
    }.get(kind, WATCHED[kind][0])
    return configured == WATCHED[kind][0]


def _index_id(kind: str) -> str:
    return "sluice_" + kind.replace("-", "_")


def _trim_service(body: Any) -> dict[str, Any]:
    """What a reconcile reads of a Service (its selector): the cache holds no more than that."""
    meta = body.get("metadata") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "spec": {"selector": dict((body.get("spec") or {}).get("selector") or {})},
    }


def _trim_deployment(body: Any) -> dict[str, Any]:
    """What a reconcile reads of a slot Deployment (labels, generation, replicas, status)."""
    meta = body.get("metadata") or {}
    return {
        "metadata": {
            k: _plain(meta[k])
            for k in ("name", "namespace", "labels", "generation", "resourceVersion")
            if k in meta
        },
        "spec": {"replicas": (body.get("spec") or {}).get("replicas")},
        "status": _plain(body.get("status") or {}),
    }


def build_registry(
    controller: Controller, settings: Settings, exit_grace_seconds: float | None = None
) -> kopf.OperatorRegistry:
    """A fresh registry with Sluice's handlers (fresh, so tests can run and restart operators)."""
    registry = kopf.OperatorRegistry()
    resource = (API_GROUP, API_VERSION, PLURAL)
    # with --shard, every handler sees only this shard's Rollouts (and their slot Deployments);
    # kopf then neither adds finalizers to nor stores its state on another shard's objects
    mine: Any = None
    if settings.shard is not None:

        def mine(namespace: str | None, name: str | None, **_: Any) -> bool:
            return settings.owns(namespace, name)

    attached = threading.Event()
    # Every watched kind's events go by a route (rollouts.kopf_fast_path): indexed into this
    # process's stores and passed on, beside kopf's per-event processing, which only a Rollout's
    # finalizer and deletion still go through. The kopf handlers below are what makes kopf watch
    # a kind and hold the routes' notices until every kind is listed (an index keeping nothing),
    # and what a Rollout's deletion runs; they are spelled out, one per kind, so the RBAC scan
    # (tests/unit/deploy/test_rbac.py) reads each resource.
    stores: dict[str, ObjectIndex] = {
        PLURAL: ObjectIndex(_as_is),
        "deployments": ObjectIndex(_slot_deployment),
        RUNS: ObjectIndex(_as_is),
        RUNS_OF: ObjectIndex(_as_is, key=_run_owner),
        "services": ObjectIndex(_trim_service),
        **{kind: ObjectIndex(_as_is) for kind in WATCHED if kind != "services"},
    }

    def attach() -> None:
        """The stores serve reads from the first notice on: every kind is listed by then (the
        routes' notices wait for kopf's readiness gate), so a miss means the object is absent."""
        if attached.is_set():
            return
        for kind, (_, authoritative) in WATCHED.items():
            if _served_from_watch(kind, settings):
                controller.cache.attach(kind, stores[kind], authoritative=authoritative)
        for kind in (PLURAL, "deployments", RUNS, RUNS_OF):
            controller.cache.attach(kind, stores[kind])
        attached.set()

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings, controller.settings, exit_grace_seconds)
        controller.queue.start()

    @kopf.on.cleanup(registry=registry)
    def cleanup(**_: Any) -> None:
        controller.close()

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        # async: the session is built in the operator's event loop (rollouts.kopf_session)
        info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
        info = info or kopf.login_with_kubeconfig(**kwargs)
        if info is None:
            return None
        return bounded_session(info, connection_limit(settings.namespaces))

    @kopf.on.probe(id=PROBE_ID, registry=registry)
    def probe(**_: Any) -> int:
        return controller.state_sizes()["locks"]

    # ------------------------------------------------------------------- watched kinds
    def watched(
        group: str,
        plural: str,
        *kinds: str,
        notify: Callable[[Any, str | None], None],
        needs_kopf: Callable[[Any, str | None], bool] = kopf_fast_path.never,
    ) -> None:
        def index(body: Any, deleted: bool) -> None:
            for kind in kinds:
                stores[kind].update(body, deleted)

        def notified(body: Any, event_type: str | None) -> None:
            attach()
            notify(body, event_type)

        handling = kopf_fast_path.Route(index=index, notify=notified, needs_kopf=needs_kopf)
        kopf_fast_path.route(registry, group, plural, handling)

    def changed(kind: str) -> Callable[[Any, str | None], None]:
        def notify(body: Any, event_type: str | None) -> None:
            controller.observed_event(kind, _identity(body), event_type == "DELETED")

        return notify

    @kopf.index(API_GROUP, API_VERSION, RUNS, id=_index_id(RUNS), registry=registry)
    async def runs_watched(**_: Any) -> None:
        return None

    watched(API_GROUP, RUNS, RUNS, RUNS_OF, notify=changed(RUNS))

    @kopf.index("", "v1", "services", id=_index_id("services"), registry=registry)
    async def services_watched(**_: Any) -> None:
        return None

    watched("", "services", "services", notify=changed("services"))

    @kopf.index(
        "networking.istio.io",
        "v1beta1",
        "virtualservices",
        id=_index_id("virtualservices"),
        registry=registry,
    )
    async def virtualservices_watched(**_: Any) -> None:
        return None

    watched(
        "networking.istio.io",
        "virtualservices",
        "virtualservices",
        notify=changed("virtualservices"),
    )

    @kopf.index(
        "gateway.networking.k8s.io",
        "v1",
        "httproutes",
        id=_index_id("httproutes"),
        registry=registry,
    )
    async def httproutes_watched(**_: Any) -> None:
        return None

    watched("gateway.networking.k8s.io", "httproutes", "httproutes", notify=changed("httproutes"))

    @kopf.index(
        "split.smi-spec.io",
        "v1alpha2",
        "trafficsplits",
        id=_index_id("trafficsplits"),
        registry=registry,
    )
    async def trafficsplits_watched(**_: Any) -> None:
        return None

    watched("split.smi-spec.io", "trafficsplits", "trafficsplits", notify=changed("trafficsplits"))

    @kopf.index(
        "networking.k8s.io", "v1", "ingresses", id=_index_id("ingresses"), registry=registry
    )
    async def ingresses_watched(**_: Any) -> None:
        return None

    watched("networking.k8s.io", "ingresses", "ingresses", notify=changed("ingresses"))

    # ------------------------------------------------------------------------ Deployments
    @kopf.index("apps", "v1", "deployments", id=_index_id("deployments"), registry=registry)
    async def deployments_watched(**_: Any) -> None:
        return None

    def deployment_changed(body: Any, event_type: str | None) -> None:
        meta = body.get("metadata") or {}
        labels = meta.get("labels") or {}
        if LABEL_ROLLOUT in labels:  # a slot: with --shard, only this shard's Rollouts' slots
            if settings.owns(meta.get("namespace"), labels.get(LABEL_ROLLOUT)):
                controller.deployment_event(_identity(body), event_type == "DELETED")
        elif controller.adopts(body):  # the Deployment a Rollout's workloadRef names
            controller.deployment_event(_identity(body))

    watched("apps", "deployments", "deployments", notify=deployment_changed)

    # ---------------------------------------------------------------------------- Rollouts
    # Every event of a Rollout (the listing at start included) triggers its reconcile; the
    # reconcile is skipped when nothing it reads changed. kopf sees a Rollout's event only to
    # add or drop its finalizer and to run ``deleted``: no create/update/resume handlers, which
    # made kopf keep a diff-base annotation on every Rollout (see configure_kopf).
    @kopf.index(*resource, id=_index_id(PLURAL), registry=registry)
    async def rollouts_watched(**_: Any) -> None:
        return None

    def rollout_changed(body: Any, event_type: str | None) -> None:
        namespace, name = own_key(body)
        if not settings.owns(namespace, name):
            return
        controller.rollout_event(namespace, name, event_type)
        if event_type == "DELETED":
            return
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        controller.request_event(namespace, name, annotations.get(request_annotation.ANNOTATION))

    def rollout_needs_kopf(body: Any, event_type: str | None) -> bool:
        meta = body.get("metadata") or {}
        if event_type == "DELETED" or meta.get("deletionTimestamp"):
            return True
        finalized = FINALIZER in (meta.get("finalizers") or ())
        return finalized != settings.owns(*own_key(body))

    watched(API_GROUP, PLURAL, PLURAL, notify=rollout_changed, needs_kopf=rollout_needs_kopf)

    @kopf.on.delete(*resource, when=mine, registry=registry)
    def deleted(**kwargs: Any) -> None:
        attach()
        namespace, name, body = kwargs["namespace"], kwargs["name"], kwargs["body"]
        try:
            controller.finalize(namespace, name, dict(_plain(body)))
        except Exception as e:
            raise kopf.TemporaryError(f"releasing {namespace}/{name}: {e}", delay=1) from e

    return registry


def _as_is(body: Any) -> dict[str, Any]:
    """A watch event's object, kept as parsed: nothing else holds or changes that dict (kopf's
    processing, when it sees the event too, reads it through a view of its own)."""
    out: dict[str, Any] = body
    return out


def _slot_deployment(body: Any) -> dict[str, Any] | None:
    """Slot Deployments only (labelled with their Rollout), trimmed: the watch streams all."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    return _trim_deployment(body) if LABEL_ROLLOUT in labels else None


def _run_owner(body: Any) -> tuple[str, str] | None:
    """An AnalysisRun under its Rollout (the label), for the list of a Rollout's runs."""
    meta = body.get("metadata") or {}
    owner = (meta.get("labels") or {}).get(LABEL_ROLLOUT)
    return None if not owner else (str(meta.get("namespace") or ""), str(owner))


def _plain(body: Any) -> dict[str, Any]:
    """kopf's Body as a plain dict (deep): a copy the index keeps, which nothing else mutates."""
    out: dict[str, Any] = _copy(body)
    return out


_SCALARS = (str, int, float, bool, type(None))


def _copy(v: Any) -> Any:
    """A deep copy of JSON-like data. Every watch event of an indexed kind copies its object,
    so the plain ``dict``, ``list`` and scalar types (all a parsed body holds below kopf's view
    at the top) are told by their exact type first; mappings and sequences of other types are
    copied as dicts and lists."""
    t = type(v)
    if t is dict:
        return {k: _copy(x) for k, x in v.items()}
    if t is list:
        return [_copy(x) for x in v]
    if t in _SCALARS:
        return v
    if hasattr(v, "items"):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_copy(x) for x in v]
    return v


def _identity(body: Any) -> dict[str, Any]:
    """What an event handler passes on of an object it does not index: name, namespace and
    labels (``observed_event`` and ``deployment_event`` read no more). Copying whole bodies,
    managedFields included, on every slot and Service event cost the event loop for nothing."""
    meta = body.get("metadata") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "labels": dict(meta.get("labels") or {}),
        }
    }


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
    on_controller: Callable[[Controller], None] | None = None,
    exit_grace_seconds: float | None = None,
) -> None:
    """Run the operator until cancelled (or ``stop_flag`` is set); ``on_controller`` is handed
    the Controller once built (tests inspect its per-Rollout state); ``exit_grace_seconds`` for
    a controller process only (``EXIT_GRACE_SECONDS``)."""
    api = bound_api_client(
        api or default_api_client(),
        pool_size=settings.workers + 4,  # the workers, plus startup and peering calls
        timeout=(settings.connect_timeout, settings.request_timeout),
    )
    restart_watches_on_errors()
    unvalidated_calls.install()
    kopf_pause.install()
    quiet_retried_requests()
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
    registry = build_registry(controller, settings, exit_grace_seconds)
    if on_controller is not None:
        on_controller(controller)
    try:
        await _operate(controller, registry, settings, stop_flag, ready_flag)
    finally:
        controller.close()  # no scheduler thread or worker outlives the operator
        api.close()  # type: ignore[no-untyped-call]  # its own client, not the caller's


async def _operate(
    controller: Controller,
    registry: kopf.OperatorRegistry,
    settings: Settings,
    stop_flag: asyncio.Event | None,
    ready_flag: asyncio.Event | None,
) -> None:
    namespaces: Collection[str] = settings.namespaces
    try:
        with kopf_pause.listening(controller.peering_paused):
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
