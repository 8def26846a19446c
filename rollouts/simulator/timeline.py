"""What ``sluice simulate --plot`` draws, recorded while a :class:`~rollouts.simulator.simulation.Simulation`
runs.

Why a separate recorder: the simulation prints a line per change and keeps only the newest ten
measurements of each analysis metric, so a picture of the whole rollout has to be collected as it
happens. :class:`TimelineRecorder` listens to ``Simulation.run(on_line)``, reads the real
AnalysisRuns from ``sim.store`` at every analysis tick (each new measurement once), and turns the
canary weights, steps, pauses and events into a :class:`Timeline`: plain data, so the drawing
(:mod:`rollouts.simulator.plot`, matplotlib) stays separate and the recording needs no plotting library.

Times are simulated seconds since the simulation started, the clock the CLI prints.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from analysis.api import AnalysisRun, Measurement
from analysis.api import Metric as MetricSpec
from analysis.api_conventions import parse_duration
from analysis.stats.evidence import EdgeEvidence, Evidence
from rollouts.api.rollout import AnalysisMetricStatus, Rollout, RolloutStatus
from rollouts.cluster.memory import MemoryEvent
from rollouts.simulator.simulation import EPOCH, SimLine, SimResult, Simulation
from rollouts.verdicts.analysis_runs import AnalysisVerdicts

DecisionKind = Literal["start", "step", "promote", "abort", "request"]
Judgement = Literal["sequential", "mann-whitney", "threshold"]

PAUSE_LABELS = {
    "CanaryPauseStep": "pause step",
    "BlueGreenPause": "waiting to switch",
    "PausedByUser": "paused by request",
    "InconclusiveAnalysis": "paused: inconclusive",
    "WaitingForGate": "waiting for a gate",
}


@dataclass(frozen=True)
class DecisionMark:
    """A moment the controller decided something: a vertical line on every panel."""

    t: float
    kind: DecisionKind
    label: str
    metric: str | None = None  # the metric an analysis abort names
    steps: tuple[int, ...] = ()  # the steps (1-based) a "step N done" mark completes; else empty


@dataclass(frozen=True)
class Span:
    """A step (or pause) of the rollout, from ``start`` to ``end``."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class ArmPoint:
    """One window of a compared metric: the canary's and the stable (baseline) arm's value."""

    t: float  # the end of the window
    canary: float | None
    baseline: float | None
    run: str
    window: float = 0.0  # seconds the values cover, ending at t


@dataclass(frozen=True)
class ValuePoint:
    """One measurement of a threshold metric, with its phase (Successful, Failed, ...)."""

    t: float
    value: float | None
    phase: str
    run: str


@dataclass(frozen=True)
class EvidencePoint:
    """A metric's verdict after an analysis tick: the evidence record as status carries it."""

    t: float
    evidence: Evidence | None
    phase: str


@dataclass
class MetricTrack:
    """Everything recorded about one analysis metric, across the runs of every step."""

    name: str
    kind: str  # counts, histogram, gauge or value
    judgement: Judgement
    quantity: str  # what the arm values are, for the axis label
    scale: float = 1.0  # the arm values are multiplied by this for display (100 for %)
    interval: float = 0.0  # seconds between measurements (each window's length)
    dry_run: bool = False
    minimum: float | None = None  # threshold bounds
    maximum: float | None = None
    arms: list[ArmPoint] = field(default_factory=list)
    values: list[ValuePoint] = field(default_factory=list)
    evidence: list[EvidencePoint] = field(default_factory=list)

    @property
    def sequential(self) -> bool:
        return any(
            p.evidence is not None and p.evidence.log_e_value is not None for p in self.evidence
        )


@dataclass
class Timeline:
    """A finished simulation as a picture sees it."""

    rollout: str  # namespace/name
    strategy: str  # canary or blue-green
    scenario: str | None
    outcome: str  # e.g. "Degraded: aborted by error-rate"
    end: float
    started: float | None  # when the update started rolling out
    actual: list[tuple[float, float]]  # new revision's share of traffic (%), step-wise
    desired: list[tuple[float, float]]
    steps: list[Span]
    pauses: list[Span]
    decisions: list[DecisionMark]
    metrics: dict[str, MetricTrack]


class TimelineRecorder:
    """Collects a :class:`Timeline` from the lines of a running simulation.

    Use: ``rec = TimelineRecorder(sim, scenario)``, pass ``rec.on_line`` (alone or chained with a
    printer) to ``sim.run``, then ``rec.timeline(result)``.
    """

    def __init__(self, sim: Simulation, scenario: str | None = None) -> None:
        self.sim = sim
        self.scenario = scenario
        self.rollout: Rollout = sim.rollout
        self.started: float | None = None
        self.promoted: float | None = None
        self.decisions: list[DecisionMark] = []
        self.desired: list[tuple[float, float]] = [(0.0, 0.0)]
        self.steps: list[Span] = []
        self.pauses: list[Span] = []
        self.metrics: dict[str, MetricTrack] = {}
        self._step: tuple[float, str] | None = None  # open step span
        self._pause: tuple[float, str] | None = None
        self._seen: set[tuple[str, str, float]] = set()
        self._exceed: dict[str, dict[float, list[float]]] = {}  # metric -> edge -> last counts
        self._by_edge: dict[str, dict[float, list[ArmPoint]]] = {}
        self._specs: dict[str, MetricSpec] = {}
        self._deciding: dict[str, float] = {}  # histogram metric -> deciding edge
        self._step_index = 0  # the step the next StepCompleted/StepSkipped event completes

    # ------------------------------------------------------------------ listening
    def on_line(self, line: SimLine) -> None:
        if line.event is not None:
            self._event(line.t, line.event, line.status)
        elif line.analysis is not None:
            self._analysis(line)
        else:
            self._status(line.t, line.status)

    def _event(self, t: float, e: MemoryEvent, after: RolloutStatus) -> None:
        """A decision mark from the event's reason and the typed status written with it; the
        message is for people and is never read back. Events of one reconcile come before its
        status line, so the step an event completes is counted from the last status seen."""
        decision: DecisionMark | None = None
        if e.reason == "RolloutStarted":
            self.started = t
            self._step_index = 0
            decision = DecisionMark(t, "start", "update started")
        elif e.reason in ("StepCompleted", "StepSkipped"):
            self._step_index += 1
            n = self._step_index
            done = "done" if e.reason == "StepCompleted" else "skipped"
            steps = (n,) if e.reason == "StepCompleted" else ()
            decision = DecisionMark(t, "step", f"step {n} {done}", steps=steps)
        elif e.reason == "RolloutPromoted":
            self.promoted = t
            decision = DecisionMark(t, "promote", "promoted")
        elif e.reason == "RolloutAborted":
            abort = after.abort
            if abort is not None and abort.metric is not None:
                label = f"aborted: {abort.metric} failed"
                decision = DecisionMark(t, "abort", label, abort.metric)
            elif abort is not None and abort.reason == "AbortedByUser":
                decision = DecisionMark(t, "abort", "aborted by request")
            else:
                decision = DecisionMark(t, "abort", f"aborted: {abort.reason if abort else '?'}")
        elif e.reason in ("Paused", "Resumed", "Retrying"):
            decision = DecisionMark(t, "request", f"{e.reason.lower()} by request")
        elif e.reason == "RolloutSuperseded":
            decision = DecisionMark(t, "abort", "superseded")
        if decision is not None:
            self.decisions.append(decision)

    def _in_flight(self, st: RolloutStatus) -> bool:
        return (
            self.started is not None
            and st.current_revision is not None
            and st.current_revision != st.stable_revision
            and st.phase in ("Progressing", "Paused")
            and st.abort is None
        )

    def _status(self, t: float, st: RolloutStatus) -> None:
        self._step_index = st.current_step_index or 0
        flying = self._in_flight(st)
        # steps: one span per step index while the update is in flight
        label = self._step_label(st) if flying else None
        if self._step is not None and (label is None or label != self._step[1]):
            self.steps.append(Span(self._step[0], t, self._step[1]))
            self._step = None
        if label is not None and self._step is None:
            self._step = (t, label)
        # pauses
        reason = None
        if st.phase == "Paused":
            reasons = [p.reason for p in st.pause_conditions]
            reason = PAUSE_LABELS.get(reasons[-1], "paused") if reasons else "paused"
        if self._pause is not None and reason != self._pause[1]:
            self.pauses.append(Span(self._pause[0], t, self._pause[1]))
            self._pause = None
        if reason is not None and self._pause is None:
            self._pause = (t, reason)
        # desired traffic to the new revision
        if flying:
            want = self._desired(st)
        elif self.started is not None and st.current_revision == st.stable_revision:
            want = 100.0
        else:
            want = 0.0
        if self.desired[-1][1] != want:
            self.desired.append((t, want))

    def _step_label(self, st: RolloutStatus) -> str | None:
        c = self.rollout.canary
        if c is None:
            return st.step  # blue-green: "preview" / "active"
        idx = st.current_step_index
        if idx is None:
            return None
        if idx >= len(c.steps):
            return "promote"
        return f"{idx + 1}. {c.steps[idx].describe()}"

    def _desired(self, st: RolloutStatus) -> float:
        c = self.rollout.canary
        idx = st.current_step_index
        if c is None or idx is None:
            return 0.0
        if idx >= len(c.steps):
            return 100.0  # promoting: every request goes to the new revision next
        for step in reversed(c.steps[: idx + 1]):
            if step.set_weight is not None:
                return float(step.set_weight)
        return 0.0

    # ------------------------------------------------------------------ analysis
    def _offset(self, t: float) -> float:
        """The analysis clock minus the simulated one (measurements carry analysis-clock times)."""
        verdicts = self.sim.verdicts
        if isinstance(verdicts, AnalysisVerdicts):
            return verdicts.clock() - t
        return EPOCH.timestamp()

    def _analysis(self, line: SimLine) -> None:
        status = line.analysis
        assert status is not None
        run = None
        if self.sim.store is not None:
            run = self.sim.store.get_run(self.rollout.metadata.namespace, status.name)
        if run is not None:
            for spec in run.spec.metrics:
                self._specs.setdefault(spec.name, spec)
        for m in status.metrics:
            self._track(m).evidence.append(EvidencePoint(line.t, m.evidence, m.phase))
        if run is not None and run.status is not None:
            self._measurements(line.t, run)

    def _track(self, m: AnalysisMetricStatus) -> MetricTrack:
        if m.name in self.metrics:
            return self.metrics[m.name]
        spec = self._specs.get(m.name)
        kind = spec.kind if spec is not None else "value"
        judgement: Judgement = "sequential"
        if spec is not None and spec.threshold is not None:
            judgement = "threshold"
        elif spec is not None and spec.compare is not None and spec.compare.method != "sequential":
            judgement = "mann-whitney"
        quantity, scale = "value", 1.0
        if kind == "counts":
            quantity, scale = "errors per request (%)", 100.0
        elif kind == "histogram":
            quantity, scale = "requests slower than the edge (%)", 100.0
        elif kind == "gauge":
            quantity = "gauge value"
        track = MetricTrack(
            m.name,
            kind,
            judgement,
            quantity,
            scale,
            dry_run=m.dry_run,
            interval=float(parse_duration(spec.interval)) if spec is not None else 0.0,
            minimum=spec.threshold.min if spec is not None and spec.threshold else None,
            maximum=spec.threshold.max if spec is not None and spec.threshold else None,
        )
        self.metrics[m.name] = track
        return track

    def _measurements(self, t: float, run: AnalysisRun) -> None:
        assert run.status is not None
        offset = self._offset(t)
        name = run.metadata.name
        for result in run.status.metrics:
            track = self.metrics.get(result.name)
            if track is None:
                continue
            fresh = []
            for meas in result.measurements:
                at = meas.at.timestamp() - offset
                key = (name, result.name, round(at, 3))
                if key not in self._seen:
                    self._seen.add(key)
                    fresh.append((at, meas))
            if not fresh:
                continue
            if track.kind == "histogram":
                details = result.evidence.details if result.evidence is not None else None
                if details is not None and details.deciding_edge is not None:
                    self._deciding[result.name] = details.deciding_edge
                window = track.interval * len(fresh)
                edges = details.edges if details is not None else []
                self._exceedances(track, fresh[-1][0], window, name, edges)
                continue
            for at, meas in fresh:
                if track.judgement == "threshold":
                    track.values.append(ValuePoint(at, meas.value, meas.phase, name))
                else:
                    track.arms.append(_arms(at, meas, name, track.interval))

    def _exceedances(
        self, track: MetricTrack, at: float, window: float, run: str, edges: list[EdgeEvidence]
    ) -> None:
        """Per arm, the share of requests slower than each latency edge since the last tick.

        Why from the evidence's edges: a histogram measurement in status keeps only the requests
        per arm, while the sequential test folds each window's bucket counts into per-edge
        exceedance counts (canary slow, canary requests, stable slow, stable requests), which its
        evidence reports cumulatively. The difference between two ticks is exactly what the test
        saw in the windows between them.
        """
        last = self._exceed.setdefault(track.name, {})
        by_edge = self._by_edge.setdefault(track.name, {})
        for e in edges:
            edge = e.edge
            now = [e.canary_slow, e.canary_requests, e.baseline_slow, e.baseline_requests]
            before = last.get(edge, [0.0] * 4)
            delta = [a - b for a, b in zip(now, before, strict=True)]
            if any(d < 0 for d in delta):  # a fresh e-process (a new revision or attempt)
                delta = now
            last[edge] = now
            by_edge.setdefault(edge, []).append(
                ArmPoint(at, _ratio(delta[0], delta[1]), _ratio(delta[2], delta[3]), run, window)
            )

    # ------------------------------------------------------------------ result
    def timeline(self, result: SimResult) -> Timeline:
        """The recorded timeline, closed at the end of ``result``."""
        end = result.seconds
        steps = [*self.steps]
        if self._step is not None:
            steps.append(Span(self._step[0], end, self._step[1]))
        pauses = [*self.pauses]
        if self._pause is not None:
            pauses.append(Span(self._pause[0], end, self._pause[1]))
        for name, by_edge in self._by_edge.items():
            track = self.metrics[name]
            edge = self._deciding_edge(name, by_edge)
            if edge is not None:
                track.arms = by_edge[edge]
                track.quantity = f"requests slower than {edge:g} s (%)"
        st = result.rollout.status or RolloutStatus()
        outcome: str = st.phase or "?"
        aborts = [d for d in self.decisions if d.kind == "abort"]
        if aborts:
            outcome += f": {aborts[-1].label}"
        elif st.phase == "Healthy" and self.promoted is not None:
            outcome += ": promoted"
        elif result.reason not in (st.phase or ""):
            outcome += f": {result.reason}"
        return Timeline(
            rollout=f"{self.rollout.metadata.namespace}/{self.rollout.metadata.name}",
            strategy="canary" if self.rollout.canary is not None else "blue-green",
            scenario=self.scenario,
            outcome=outcome,
            end=end,
            started=self.started,
            actual=self._actual(result.weights),
            desired=[*self.desired],
            steps=steps,
            pauses=pauses,
            decisions=[*self.decisions],
            metrics=dict(self.metrics),
        )

    def _actual(self, weights: list[tuple[float, int]]) -> list[tuple[float, float]]:
        """The new revision's share of traffic: the canary weight until promotion, then all of it
        (the canary slot becomes stable, so its *canary* weight drops to 0 but it serves 100%)."""
        out: list[tuple[float, float]] = []
        for t, w in weights:
            share = 100.0 if self.promoted is not None and t >= self.promoted else float(w)
            if not out or out[-1][1] != share:
                out.append((t, share))
        return out or [(0.0, 0.0)]

    def _deciding_edge(self, name: str, by_edge: dict[float, list[ArmPoint]]) -> float | None:
        """The edge the latest verdict rests on (its evidence names it), else the highest."""
        edge = self._deciding.get(name)
        if edge is not None and edge in by_edge:
            return edge
        return max(by_edge) if by_edge else None


def _ratio(events: float, total: float) -> float | None:
    return events / total if total > 0 and math.isfinite(events) else None


def _arms(at: float, meas: Measurement, run: str, window: float) -> ArmPoint:
    if meas.values is None or meas.phase not in ("Successful", "Failed"):
        return ArmPoint(at, None, None, run, window)
    canary, baseline = meas.values.per_arm()
    return ArmPoint(at, canary, baseline, run, window)


def chain(*listeners: Callable[[SimLine], None] | None) -> Callable[[SimLine], None] | None:
    """One ``on_line`` callback calling each listener given (None when there is none)."""
    active = [f for f in listeners if f is not None]
    if not active:
        return None

    def call(line: SimLine) -> None:
        for f in active:
            f(line)

    return call
