"""The controller's own Prometheus metrics, on a registry the operator serves on ``/metrics``.

A private registry (not prometheus_client's global one) keeps tests and several operators in one
process from sharing counters, and keeps the process's default collectors out unless wanted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from rollouts.api.rollout import Rollout, RolloutStatus


def strategy_of(rollout: Rollout) -> str:
    return "canary" if rollout.canary is not None else "blueGreen"


def router_of(rollout: Rollout) -> str:
    c = rollout.canary
    if c is None or c.traffic_routing is None:
        return "none"
    return c.traffic_routing.router


VERDICT_RESULTS = ("Successful", "Failed", "Inconclusive", "Error")
"""The run phases that are verdicts (a Stopped run was ended by Sluice, not judged)."""
NOTIFICATION_RESULTS = ("sent", "failed", "dropped", "rate_limited")


class Telemetry:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        key = ["namespace", "rollout"]
        self.rollout_info = Gauge(
            "sluice_rollout_info",
            "A Rollout's phase, strategy and router (value always 1).",
            [*key, "phase", "strategy", "router"],
            registry=r,
        )
        self.rollout_weight = Gauge(
            "sluice_rollout_weight", "Percent of traffic sent to the canary.", key, registry=r
        )
        self.rollout_step = Gauge(
            "sluice_rollout_step", "Index of the current canary step (0-based).", key, registry=r
        )
        self.phase_transitions = Counter(
            "sluice_rollout_phase_transitions",
            "Phase changes of Rollouts.",
            [*key, "from_phase", "to_phase"],
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "sluice_reconcile_duration_seconds",
            "Time one reconcile takes (observe, decide, apply, write status).",
            registry=r,
        )
        self.reconcile_errors = Counter(
            "sluice_reconcile_errors", "Reconciles that failed (and will be retried).", registry=r
        )
        self.analysis_verdicts = Counter(
            "sluice_analysis_verdicts",
            "Analysis runs that reached a verdict, by result.",
            ["result"],
            registry=r,
        )
        # every result exported from the start at 0, so increase() and rate() see the first
        # verdict of each kind (a series born at 1 has no increase to show)
        for result in VERDICT_RESULTS:
            self.analysis_verdicts.labels(result.lower())
        self.notifications = Counter(
            "sluice_notifications",
            "Notifications by result: sent or failed (per receiver), rate_limited (per receiver "
            "over its limit), dropped (per notice, when the queue was full).",
            ["result"],
            registry=r,
        )
        for result in NOTIFICATION_RESULTS:
            self.notifications.labels(result)
        self.paused = Gauge(
            "sluice_controller_paused",
            "1 while kopf's peering pauses this replica (another one works), else 0; by the "
            "peering it joins (one per shard).",
            ["peering"],
            registry=r,
        )
        self._info: dict[tuple[str, str], tuple[str, ...]] = {}
        self._transitions: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._lock = threading.Lock()
        self._paused = False
        """Set by ``pausing``: a reconcile that began before the pause and ends after it must not
        bring back the Rollout series the pause dropped (held under ``_lock`` with each write of
        those series, so no write slips between the check and the drop)."""

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Time a reconcile. A failure is not counted here: the one place that catches every
        failed reconcile (``Controller.run``) counts it, so each failure counts exactly once."""
        with self.reconcile_duration.time():
            yield

    def _set_info(self, key: tuple[str, str], labels: tuple[str, ...]) -> None:
        """Under ``_lock``."""
        old = self._info.get(key)
        if old != labels:
            if old is not None:
                self.rollout_info.remove(*old)
            self.rollout_info.labels(*labels).set(1)
            self._info[key] = labels

    def _transition(self, ns: str, name: str, before: RolloutStatus | None, phase: str) -> None:
        """Count a phase change once: ``before`` is the status read before the reconcile, so a
        reconcile that leaves the phase alone (or a restarted controller) counts nothing."""
        old = (before.phase if before else None) or "None"
        if old == phase:
            return
        with self._lock:
            self.phase_transitions.labels(ns, name, old, phase).inc()
            self._transitions.setdefault((ns, name), set()).add((old, phase))

    def observe(self, rollout: Rollout, before: RolloutStatus | None, after: RolloutStatus) -> None:
        """Record what one reconcile changed: phase, weight, step and finished analyses."""
        ns, name = rollout.metadata.namespace, rollout.metadata.name
        phase = after.phase or "Unknown"
        with self._lock:
            if not self._paused:  # counters below still count: the reconcile did happen
                labels = (ns, name, phase, strategy_of(rollout), router_of(rollout))
                self._set_info((ns, name), labels)
                self.rollout_weight.labels(ns, name).set(after.weights.canary)
                self.rollout_step.labels(ns, name).set(after.current_step_index or 0)
        self._transition(ns, name, before, phase)
        was = {r.name: r.phase for r in (before.analysis_runs if before else [])}
        for run in after.analysis_runs:
            if run.phase in VERDICT_RESULTS and was.get(run.name) != run.phase:
                self.analysis_verdicts.labels(run.phase.lower()).inc()

    def invalid(
        self,
        namespace: str,
        name: str,
        before: RolloutStatus | None,
        after: RolloutStatus | None = None,
    ) -> None:
        """An invalid Rollout shows as Degraded (or the phase its status got) with unknown
        strategy and router; a valid Rollout turning invalid is a phase transition like any."""
        phase = (after.phase if after else None) or "Degraded"
        with self._lock:
            if not self._paused:
                self._set_info((namespace, name), (namespace, name, phase, "unknown", "unknown"))
        self._transition(namespace, name, before, phase)

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted Rollout's series (info, weight, step, transitions) so dashboards do
        not show ghosts and label sets do not pile up as Rollouts come and go."""
        with self._lock:
            old = self._info.pop((namespace, name), None)
            if old is not None:
                self.rollout_info.remove(*old)
            for from_phase, to_phase in self._transitions.pop((namespace, name), set()):
                with suppress(KeyError):
                    self.phase_transitions.remove(namespace, name, from_phase, to_phase)
        for gauge in (self.rollout_weight, self.rollout_step):
            with suppress(KeyError):
                gauge.remove(namespace, name)

    def pausing(self, peering: str) -> None:
        """This replica stops working: its Rollout series go, so a dashboard's ``max by`` over
        the replicas is not held up by the last values a paused replica saw (the working replica
        reports the Rollouts; this one reports them again once it resumes and reconciles)."""
        self.paused.labels(peering).set(1)
        with self._lock:
            self._paused = True
            keys = list(self._info)
        for namespace, name in keys:
            self.forget(namespace, name)

    def working(self, peering: str) -> None:
        with self._lock:
            self._paused = False
        self.paused.labels(peering).set(0)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
