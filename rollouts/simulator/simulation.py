"""Fast-forward a Rollout through the real engine on the in-memory cluster.

A simulated clock drives the same reconcile ``cycle`` the operator runs, so a 30-minute rollout plays out
in well under a second and shows exactly the steps, weights and decisions production would see.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from analysis.api import InvalidAnalysisSpec, parse_template
from analysis.providers.port import MetricProvider
from analysis.store.memory import MemoryAnalysisStore
from analysis.store.port import AnalysisRunStore
from rollouts.api.rollout import AnalysisRunRecord, ObjectMeta, Rollout, RolloutStatus
from rollouts.api.validation import InvalidSpec, parse_rollout
from rollouts.cluster.memory import MemoryCluster, MemoryEvent
from rollouts.engine import Plan, Request
from rollouts.engine.context import services_of
from rollouts.engine.pauses import waits_for_person
from rollouts.engine.plan import AnalysisPhase, RequestKind
from rollouts.notifications.port import RecordingNotifier
from rollouts.reconcile import Ports, cycle
from rollouts.routing.memory import MemoryRouter
from rollouts.simulator.checks import SimulatedGates, SimulatedJobs, WebAnswer, web_factory
from rollouts.verdicts.analysis_runs import AnalysisVerdicts
from rollouts.verdicts.port import VerdictSource
from rollouts.verdicts.scripted import ScriptedVerdicts
from rollouts.workload_ref import resolve
from simulations.simulated_provider import Scenario, SimulatedProvider

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
PREVIEW_TEST_PERCENT = 5.0
"""A blue-green preview gets no production traffic; the simulator sends it this share of the
scenario's requests as the smoke tests or probers of its pre-promotion analysis would."""
LIVE_LAG_SECONDS = 3.0
"""Live (scraped) mode judges windows this far behind the wall clock: a 1 s scrape interval plus
the time Prometheus takes to make a scraped sample queryable."""


class SimulationError(ValueError):
    """The requested simulation cannot run on this Rollout (reported as one line by the CLI)."""


@dataclass(frozen=True)
class SimOptions:
    set_image: str | None = None
    update: dict[str, Any] | None = None  # a second Rollout document to roll out
    abort_at: int | None = None  # 1-based step at which to request an abort
    promote: bool = False  # answer every pause that waits for a person with a promote
    promote_full: bool = False
    analysis: dict[str, AnalysisPhase] = field(default_factory=lambda: {"*": "Successful"})
    analysis_seconds: float = 60.0
    ready_delay: float = 10.0
    tick: float = 5.0
    max_seconds: float = 12 * 3600.0
    scenario: Scenario | None = None  # real analysis on simulated traffic instead of scripted
    templates: tuple[dict[str, Any], ...] = ()  # (Cluster)AnalysisTemplate documents
    prometheus: str | None = None  # measure through this Prometheus, fed by the simulator
    serve_metrics: str | None = None  # live: serve /metrics on HOST:PORT for it to scrape
    workload: dict[str, Any] | None = None  # the Deployment a workloadRef adopts
    gates: dict[str, float] = field(default_factory=dict)
    """Gate URL -> simulated second it starts answering HTTP 200 (closed before; a URL not
    listed opens ``checks.DEFAULT_GATE_SECONDS`` after it is first asked)."""
    web: dict[str, WebAnswer] = field(default_factory=dict)
    """Web check URL -> its scripted answer (default: pass on healthy traffic, else fail)."""


@dataclass(frozen=True)
class SimLine:
    """One visible change: a status line, or an event when ``event`` is set."""

    t: float
    status: RolloutStatus
    event: MemoryEvent | None = None
    analysis: AnalysisRunRecord | None = None  # an analysis tick: its metrics' evidence


@dataclass
class SimResult:
    rollout: Rollout
    lines: list[SimLine]
    events: list[MemoryEvent]
    weights: list[tuple[float, int]]
    seconds: float
    reason: str  # why the simulation stopped


def next_revision(rollout: Rollout, opts: SimOptions) -> Rollout:
    """The update to roll out: a second document, a new image, or (default) a template change."""
    if opts.update is not None:
        new = parse_rollout(opts.update)
        return new.model_copy(update={"status": rollout.status, "metadata": _bump(rollout)})
    template = copy.deepcopy(rollout.spec.template)
    if opts.set_image is not None:
        containers = (template.get("spec") or {}).get("containers") or []
        if not containers:
            raise SimulationError("--set-image: spec.template.spec.containers is empty")
        containers[0]["image"] = opts.set_image
    else:
        meta = template.setdefault("metadata", {})
        meta.setdefault("annotations", {})["sluice.dev/simulated-update"] = "1"
    spec = rollout.spec.model_copy(update={"template": template})
    return rollout.model_copy(update={"spec": spec, "metadata": _bump(rollout)})


def _bump(rollout: Rollout) -> ObjectMeta:
    return rollout.metadata.model_copy(
        update={"generation": (rollout.metadata.generation or 1) + 1}
    )


class Simulation:
    def __init__(self, rollout: Rollout, opts: SimOptions | None = None) -> None:
        self.opts = opts or SimOptions()
        self.t = 0.0
        self._wall0 = time.time()
        self.cluster = MemoryCluster(lambda: self.t, ready_delay=self.opts.ready_delay)
        self.router = MemoryRouter()
        self.verdicts: VerdictSource = ScriptedVerdicts(
            lambda: self.t, self.opts.analysis, self.opts.analysis_seconds
        )
        self.store: MemoryAnalysisStore | None = None
        self.feed: Any = None
        self.endpoint: Any = None  # the live /metrics endpoint, when serving one
        self.live = self.opts.serve_metrics is not None
        if self.live and self.opts.prometheus is None:
            raise SimulationError("--serve-metrics needs --prometheus (the server that scrapes it)")
        if self.opts.scenario is not None:
            self.verdicts = self._analysis(rollout, self.opts.scenario)
        self.gates = SimulatedGates(
            {url: EPOCH.timestamp() + at for url, at in self.opts.gates.items()},
            lambda: self.now.timestamp(),
        )
        self.notifier = RecordingNotifier()
        """The notifications the run would send (``sluice simulate --notifications``)."""
        self.ports = Ports(
            self.cluster, self.router, self.verdicts, gates=self.gates, notifier=self.notifier
        )
        ref = rollout.spec.workload_ref
        if ref is not None:
            if self.opts.workload is None:
                raise SimulationError(
                    f"spec.workloadRef: Deployment {ref.name} is not in the file: add its manifest"
                )
            self.cluster.add_workload(rollout.metadata.namespace, self.opts.workload)
        meta = rollout.metadata.model_copy(update={"generation": rollout.metadata.generation or 1})
        self.rollout = rollout.model_copy(update={"metadata": meta})
        self.lines: list[SimLine] = []
        self.weights: list[tuple[float, int]] = []
        self._requests = 0

    def _analysis(self, rollout: Rollout, scenario: Scenario) -> AnalysisVerdicts:
        """Real AnalysisRuns whose provider is the simulator (or a Prometheus the simulator feeds)."""
        store = self.store = MemoryAnalysisStore()
        for i, doc in enumerate(self.opts.templates):
            try:
                store.add_template(parse_template(doc), rollout.metadata.namespace)
            except InvalidAnalysisSpec as e:
                name = (doc.get("metadata") or {}).get("name", f"#{i + 1}")
                raise SimulationError(f"template {name}: " + "; ".join(e.problems)) from None
        # with a real Prometheus, simulated time starts an hour ago on the wall clock, so the
        # remote-written samples fall in the window Prometheus's head block accepts, or after the
        # newest sample it holds (an earlier run's): each run's series then have their own span
        # of time, never refused as out of order nor summed with another run's. Served live for
        # scraping, it is the wall clock itself
        origin = EPOCH.timestamp()
        if self.live:
            origin = time.time()
        elif self.opts.prometheus is not None:
            origin = self._free_origin(self.opts.prometheus)

        def weight() -> float:
            st = self.rollout.status or RolloutStatus()
            if self.rollout.blue_green is not None:
                # the preview gets no production traffic, only test traffic; after the switch the
                # new revision gets all of it (the canary arm), the old pods none
                if st.current_revision is None:
                    return 0.0
                if st.current_revision == st.stable_revision:
                    return 100.0
                return PREVIEW_TEST_PERCENT
            return float(st.weights.canary)

        provider: MetricProvider
        if self.opts.prometheus is None:
            provider = SimulatedProvider(scenario, weight, origin=origin)
        else:
            provider = self._prometheus(rollout, scenario, weight, origin)

        def factory(_spec: object, _ns: str, _store: AnalysisRunStore) -> MetricProvider:
            return provider

        # live, a window is judged only once the scrape covering its end has landed
        lag = LIVE_LAG_SECONDS if self.live else 0.0
        verdicts = AnalysisVerdicts(store, factory, lambda: origin + self.t - lag)
        # web checks have no server here: scripted from the scenario (rollouts.simulator.checks)
        verdicts.lifecycle.web_factory = web_factory(self.opts.web, scenario.model.effect.is_null)
        verdicts.lifecycle.jobs = SimulatedJobs(scenario.model.effect.is_null)
        return verdicts

    @staticmethod
    def _free_origin(url: str) -> float:
        from simulations.prometheus_feed import newest_sample

        try:
            newest = newest_sample(url)
        except RuntimeError as e:
            raise SimulationError(f"--prometheus {url}: {e}") from None
        origin = time.time() - 3600.0
        return origin if newest is None else max(origin, newest + 60.0)

    def _prometheus(
        self, rollout: Rollout, scenario: Scenario, weight: Callable[[], float], origin: float
    ) -> MetricProvider:
        """The simulator's traffic remote-written into a real Prometheus, measured by PromQL.

        Samples carry simulated timestamps from ``origin`` (an hour before the wall clock), so
        the Prometheus must run with ``--web.enable-remote-write-receiver`` (and an out-of-order
        window if it already holds newer samples of these series). The feed pushes up to each measurement's end before querying.
        """
        from analysis.providers.prometheus import PrometheusProvider
        from simulations.prometheus_feed import FeedLabels, MetricsEndpoint, TrafficFeed

        assert self.opts.prometheus is not None
        url = self.opts.prometheus.rstrip("/")
        stable_svc, canary_svc = services_of(rollout)
        labels = FeedLabels.for_services(rollout.metadata.namespace, canary_svc, stable_svc)
        if self.live:
            assert self.opts.serve_metrics is not None
            host, _, port = self.opts.serve_metrics.rpartition(":")
            feed = self.feed = TrafficFeed(
                scenario.model, weight, labels, origin=origin, seed=scenario.seed, tick_s=1.0
            )
            try:
                self.endpoint = MetricsEndpoint(feed, host=host or "127.0.0.1", port=int(port))
            except (ValueError, OSError) as e:
                raise SimulationError(f"--serve-metrics {self.opts.serve_metrics}: {e}") from None
            self.endpoint.start()
            return PrometheusProvider(url)
        feed = self.feed = TrafficFeed(
            scenario.model, weight, labels, origin=origin, seed=scenario.seed
        )
        prom = PrometheusProvider(url)

        class Fed:
            def measure(self, kind: str, arm: Any, queries: Any, start: float, end: float) -> Any:
                try:
                    feed.push_until(f"{url}/api/v1/write", end)
                except RuntimeError as e:  # the simulation cannot go on without its traffic
                    raise SimulationError(f"--prometheus {url}: {e}") from None
                return prom.measure(kind, arm, queries, start, end)

        return Fed()

    @property
    def now(self) -> datetime:
        return EPOCH + timedelta(seconds=self.t)

    def request(self, kind: RequestKind) -> Request:
        """A manual request with a fresh id, as a person running ``sluice promote`` would send."""
        self._requests += 1
        return Request(kind, f"{kind}@sim-{self._requests}")

    def step(self, request: Request | None = None) -> Plan:
        """One reconcile at the simulated time, with an optional manual request."""
        try:  # workloadRef: the Deployment's template, read as the operator reads it
            resolved = resolve(self.rollout, self.cluster.read_workload(self.rollout))
        except InvalidSpec as e:
            raise SimulationError("; ".join(e.problems)) from None
        plan = cycle(resolved, self.ports, self.now, request)
        self.rollout = self.rollout.model_copy(update={"status": plan.status})
        return plan

    def settle(
        self, on_line: Callable[[SimLine], None] | None = None, stop_when_healthy: bool = True
    ) -> str:
        """Tick until the rollout is Healthy, Degraded or waits for a person; returns why it stopped."""
        seen_events = sum(len(v) for v in self.cluster.events.values())
        last_key: tuple[Any, ...] | None = None
        abort_sent = promote_full_sent = False
        seen_runs: dict[str, Any] = {}
        start = self.t
        while self.t - start <= self.opts.max_seconds:
            request = None
            st = self.rollout.status or RolloutStatus()
            in_flight = (
                st.current_revision is not None and st.current_revision != st.stable_revision
            )
            idx = st.current_step_index
            if in_flight and self.opts.promote_full and not promote_full_sent:
                request, promote_full_sent = self.request("promote-full"), True
            elif (
                in_flight
                and self.opts.abort_at is not None
                and not abort_sent
                and (idx is None or idx + 1 >= self.opts.abort_at)
            ):
                request, abort_sent = self.request("abort"), True
            elif self.opts.promote and waits_for_person(self.rollout):
                request = self.request("promote")
            requeue = self.step(request).requeue_after
            st = self.rollout.status or RolloutStatus()
            self.weights.append((self.t, st.weights.canary))
            events = [e for v in self.cluster.events.values() for e in v]
            for e in events[seen_events:]:
                self._emit(SimLine(self.t, st, e), on_line)
            seen_events = len(events)
            key = (
                st.phase,
                st.step,
                st.weights.canary,
                st.message,
                st.stable_revision,
                tuple((s.name, s.replicas, s.ready_replicas) for s in st.slots),
            )
            if key != last_key:
                self._emit(SimLine(self.t, st), on_line)
                last_key = key
            for run in st.analysis_runs:
                seen = (run.name, run.phase, tuple(m.measurements for m in run.metrics))
                if run.metrics and seen_runs.get(run.name) != seen:
                    seen_runs[run.name] = seen
                    self._emit(SimLine(self.t, st, analysis=run), on_line)
            settled = not st.scale_downs and all(s.ready_replicas == s.replicas for s in st.slots)
            if st.phase == "Healthy" and settled and stop_when_healthy:
                return "Healthy"
            if st.phase == "Degraded" and settled:
                return "Degraded"
            if st.phase == "Paused" and waits_for_person(self.rollout) and not self.opts.promote:
                return "Paused: waiting for a person (rerun with --promote to answer pauses)"
            wait = self.opts.tick if requeue is None else min(max(requeue, 0.5), self.opts.tick)
            self.t += wait
            if self.live:
                # the scraped traffic runs on the wall clock, so the rollout must too
                time.sleep(max(0.0, self._wall0 + self.t - time.time()))
        return f"stopped after {self.opts.max_seconds:.0f}s of simulated time"

    def _emit(self, line: SimLine, on_line: Callable[[SimLine], None] | None) -> None:
        self.lines.append(line)
        if on_line is not None:
            on_line(line)

    def run(self, on_line: Callable[[SimLine], None] | None = None) -> SimResult:
        """Deploy the file's revision as stable, then roll out the update to the end."""
        try:
            first = self.settle(on_line)
            if first != "Healthy":
                return self._result(f"initial revision did not become Healthy: {first}")
            if self.rollout.spec.workload_ref is not None and self.opts.update is None:
                self.edit_workload()  # the update arrives as a Git change of the Deployment
            else:
                self.rollout = next_revision(self.rollout, self.opts)
            reason = self.settle(on_line)
            return self._result(reason)
        finally:
            self.close()

    def edit_workload(self, template: dict[str, Any] | None = None) -> None:
        """A new pod template for the adopted Deployment: ``template``, or the update the options
        ask for (a new image, or by default a template change)."""
        ref = self.rollout.spec.workload_ref
        assert ref is not None
        ns = self.rollout.metadata.namespace
        if template is None:
            current = resolve(self.rollout, self.cluster.read_workload(self.rollout))
            template = next_revision(current, self.opts).spec.template
        self.cluster.edit_workload(ns, ref.name, copy.deepcopy(template))

    def close(self) -> None:
        """Stop the live /metrics endpoint, if one is serving."""
        if self.endpoint is not None:
            self.endpoint.stop()
            self.endpoint = None

    def _result(self, reason: str) -> SimResult:
        events = [e for v in self.cluster.events.values() for e in v]
        return SimResult(self.rollout, self.lines, events, self.weights, self.t, reason)
