"""The AnalysisRun lifecycle: when to measure, what to fold where, and when the run has concluded.

A run is ticked (:func:`advance`) whenever the controller reconciles; each tick takes every
measurement that has come due since the last one, judges each metric, and decides the run. All
that a tick needs to resume lives in a JSON ``state`` (the AnalysisRun's ``status.state``), so a
restarted controller, or the simulator, continues exactly where the last tick stopped.

Schedule. Metric ``m``'s k-th measurement (k = 1, 2, ...) covers the window
``[start + initialDelay + (k-1)·interval, start + initialDelay + k·interval]`` and is taken once
that window has ended: the warm-up is never measured, windows tile time without overlap (so each
count enters the e-process exactly once), and a controller that was away catches up window by
window. ``count`` (or ``duration // interval``) bounds the number of windows; without either a
metric measures until the run is stopped. A threshold's Error measurement is no measurement (as in
Argo): its ``count`` counts completed measurements, and a ``duration`` that ends on an error runs
on until a measurement completes, so a threshold never succeeds on windows it could not read;
``consecutiveErrorLimit`` ends it when the provider stays down. Windows never straddle a weight
change: a count or histogram compare measures a window that contains one as two pieces split at
the change (``weight_changes``), each folded as its own interval.

The error budget. Sequential compares are judged by :class:`analysis.stats.policy.RolloutAnalysis`
with each metric's alpha fixed by the caller (``alphas``: the Bonferroni split over the union of
metrics of all the Rollout's analyses, split once by ``analysis.stats.policy.split_budget`` when
the run is created, see ``analysis.lifecycle``). The e-process of each
metric is saved per metric in the state; ``inherit`` seeds a new run with a previous run's
e-processes (same rollout, revision and attempt; same metric name, kind and alpha), so evidence
keeps accumulating across analysis steps under one Ville bound instead of restarting, and
re-reading the same bound at every step is not a new test.

When a step run ends (``kind`` other than background):

- Failed: a gating metric failed (its e-value reached 1/alpha, Mann-Whitney said High/Low, a
  threshold's failureLimit was exceeded); the message names the metric and its evidence.
- Error: more consecutive measurement errors than ``consecutiveErrorLimit`` (4 for compares).
- Successful: the policy says PROMOTE_STEP (every critical sequential metric shown within
  tolerance, the minimum duration ``max(initialDelay + interval)`` passed) and the other metrics
  completed successfully.
- Inconclusive: a metric's horizon passed without a decision (or a threshold's inconclusiveLimit
  was exceeded); the template's ``inconclusive`` policy then makes it Inconclusive (``pause``),
  Successful with a warning (``promote``; never for a critical metric that saw no data) or Failed
  (``abort``).

Dry-run metrics are measured and judged like the others but never decide the run. A background
run never succeeds on its own; it runs until the engine stops it, or fails.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from analysis.api import ArmValues
from analysis.judge import (
    FINAL_PHASES,
    MetricVerdict,
    RunPhase,
    Tally,
    ThresholdRule,
    combine,
    describe,
    judge_mann_whitney,
    judge_sequential,
    judge_threshold,
    threshold_measurement,
)
from analysis.providers.port import (
    Arm,
    Buckets,
    Counts,
    Measured,
    MetricProvider,
    NoData,
    Pending,
    ProviderError,
    Queries,
    Value,
)
from analysis.stats.evidence import Evidence, Outcome
from analysis.stats.histogram import choose_edges, stretch_tolerances, tail_quantiles
from analysis.stats.policy import (
    CountsInterval,
    Decision,
    GaugeInterval,
    HistogramInterval,
    IntervalData,
    MetricSpec,
    PolicyConfig,
    RolloutAnalysis,
)
from analysis.stats.thresholds import MeasurementPhase

HISTORY = 10
"""Measurements kept per metric in status (the newest); the e-process holds all the evidence."""
CATCH_UP = 120
"""At most this many windows per metric per tick, so a controller back after a long outage
spreads its catch-up over several reconciles instead of blocking one."""
COMPARE_ERROR_LIMIT = 4
"""Consecutive measurement errors a compare metric tolerates (Argo's consecutiveErrorLimit)."""
GAUGE_TAU = 0.1
"""Mixture scale of the gauge mSPRT (log ratio units): tuned for shifts of about 10%."""
EDGE_LOOKBACK = 600.0
"""Seconds of baseline before the first evidence window that latency edges are chosen from (the
stable pods before the rollout and the warm-up): requests no evidence window contains."""
STRETCH_LOOKBACK = 3600.0
"""Seconds of baseline before the first evidence window that a latency tolerance's per-edge ratios
are read from (:func:`~analysis.stats.histogram.stretch_tolerances`): the tail's slope is read
from its rarest buckets, whose Poisson bounds an hour tightens about 2x over ``EDGE_LOOKBACK``."""

Judgement = Literal["sequential", "mann-whitney", "threshold"]
InconclusivePolicy = Literal["pause", "promote", "abort"]
RunKind = Literal["step", "background", "prePromotion", "postPromotion"]


class RunSpecError(ValueError):
    """A metric cannot be run as written; the message names the field (``spec.metrics[0]...``)."""


@dataclass(frozen=True)
class MetricPlan:
    """One metric as the run loop needs it: durations in seconds, queries per arm."""

    name: str
    kind: str
    interval: float
    initial_delay: float = 0.0
    count: int | None = None
    duration: float | None = None
    dry_run: bool = False
    judgement: Judgement = "sequential"
    direction: str = "increase"
    tolerance: float = 1.1
    alpha: float | None = None
    critical: bool = True
    edges: tuple[float, ...] | None = None
    canary_pods: int | None = None
    pod_spread: float | None = None
    latency_increase: float | None = None
    latency_quantile: float = 0.9
    threshold: ThresholdRule | None = None
    queries: Mapping[Arm, Queries] = field(default_factory=dict)
    field_path: str = ""

    @property
    def horizon(self) -> int | None:
        """How many windows the metric measures (None: until stopped)."""
        if self.count is not None:
            return self.count
        if self.duration is not None:
            return max(int(self.duration // self.interval), 1)
        return None

    def window(self, start: float, k: int) -> tuple[float, float]:
        """The k-th (1-based) measurement window."""
        end = start + self.initial_delay + k * self.interval
        return end - self.interval, end

    def check(self) -> None:
        """Refuse what the judges cannot do, naming the field, before anything is measured."""
        p = self.field_path
        if self.interval <= 0:
            raise RunSpecError(f"{p}.interval: must be > 0")
        if self.judgement == "threshold":
            if "absolute" not in self.queries:
                raise RunSpecError(f"{p}.provider.prometheus.query: a threshold needs one query")
            return
        if "canary" not in self.queries or "baseline" not in self.queries:
            raise RunSpecError(
                f"{p}.provider.prometheus: a compare needs canary and baseline queries"
            )
        if self.judgement == "sequential":
            if self.kind not in ("counts", "histogram", "gauge"):
                raise RunSpecError(
                    f"{p}.kind: a sequential compare needs counts, histogram or gauge "
                    f"(got {self.kind})"
                )
            if self.direction not in ("increase", "decrease"):
                raise RunSpecError(
                    f"{p}.compare.direction: sequential compares are one-sided (increase or "
                    f"decrease); use method mann-whitney for either"
                )
        if self.judgement == "mann-whitney":
            if self.horizon is None:
                raise RunSpecError(
                    f"{p}.count: mann-whitney is a fixed-horizon test; set count or duration"
                )
            if self.kind == "histogram":
                raise RunSpecError(
                    f"{p}.compare.method: mann-whitney compares numbers per window; use "
                    "sequential for histograms"
                )


@dataclass(frozen=True)
class MeasurementRecord:
    """One measurement for status: when, its phase, what was read, and why if not Successful."""

    at: float
    phase: str
    value: float | None = None
    values: ArmValues | None = None
    message: str = ""


@dataclass(frozen=True)
class MetricReport:
    """A metric after a tick: its verdict, counters and the newest measurements."""

    name: str
    phase: RunPhase
    tally: Tally
    measurements: tuple[MeasurementRecord, ...]
    evidence: Evidence | None
    message: str
    dry_run: bool


@dataclass(frozen=True)
class TickResult:
    phase: RunPhase
    message: str
    metrics: tuple[MetricReport, ...]
    state: dict[str, Any]


# ------------------------------------------------------------------------------ measuring


def _counts(m: Measured, what: str) -> Counts:
    if not isinstance(m, Counts):
        raise ProviderError(f"{what}: expected counts, got {type(m).__name__}")
    return m


def _buckets(m: Measured, what: str) -> Buckets:
    if not isinstance(m, Buckets):
        raise ProviderError(f"{what}: expected buckets, got {type(m).__name__}")
    return m


def _value(m: Measured) -> float:
    if isinstance(m, Value):
        return m.value
    if isinstance(m, Counts):
        if m.total <= 0:
            raise NoData("no requests: a ratio of counts needs a total")
        return m.events / m.total
    raise ProviderError("expected a number, got histogram buckets")


def _events(m: Measured) -> float:
    if isinstance(m, Counts):
        return m.total
    if isinstance(m, Buckets):
        return m.counts[-1] if m.counts else 0.0
    return 1.0


@dataclass
class _MetricState:
    done: int = 0
    tally: Tally = field(default_factory=Tally)
    canary: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    last_value: float | None = None
    last_events: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    bounds: list[float] | None = None  # histogram: finite le bounds
    edges: list[float] | None = None
    edge_tolerances: list[float | None] | None = None  # latency tolerance: stretch_tolerances

    @classmethod
    def load(cls, d: Mapping[str, Any] | None) -> _MetricState:
        if not d:
            return cls()
        return cls(
            done=int(d.get("done", 0)),
            tally=Tally(**d.get("tally", {})),
            canary=[float(x) for x in d.get("canary", [])],
            baseline=[float(x) for x in d.get("baseline", [])],
            last_value=d.get("lastValue"),
            last_events=d.get("lastEvents"),
            history=list(d.get("history", [])),
            bounds=d.get("bounds"),
            edges=d.get("edges"),
            edge_tolerances=d.get("edgeTolerances"),
        )

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {"done": self.done, "tally": asdict(self.tally)}
        if self.canary or self.baseline:
            out["canary"], out["baseline"] = self.canary, self.baseline
        if self.last_value is not None:
            out["lastValue"] = self.last_value
        if self.last_events is not None:
            out["lastEvents"] = self.last_events
        out["history"] = self.history[-HISTORY:]
        if self.bounds is not None:
            out["bounds"], out["edges"] = self.bounds, self.edges
        if self.edge_tolerances is not None:
            out["edgeTolerances"] = self.edge_tolerances
        return out

    def record(
        self,
        at: float,
        phase: MeasurementPhase | str,
        message: str = "",
        *,
        value: float | None = None,
        values: ArmValues | None = None,
    ) -> None:
        rec: dict[str, Any] = {"at": at, "phase": str(phase)}
        if value is not None and math.isfinite(value):
            rec["value"] = value
        if values is not None:
            rec["values"] = values.wire()
        if message:
            rec["message"] = message
        self.history = [*self.history, rec][-HISTORY:]


def _orient(plan: MetricPlan, canary: Measured, baseline: Measured) -> tuple[Measured, Measured]:
    """``decrease`` is bad: test the baseline against the canary (the arms swap roles)."""
    return (baseline, canary) if plan.direction == "decrease" else (canary, baseline)


def _measure_compare(
    plan: MetricPlan,
    ms: _MetricState,
    provider: MetricProvider,
    lo: float,
    hi: float,
    data: dict[str, IntervalData],
    inherited: Mapping[str, Any] | None = None,
    requests: dict[str, tuple[float, float]] | None = None,
) -> None:
    """One compare window: both arms, folded into the e-process data or the Mann-Whitney sample.

    ``requests`` receives the window's canary and baseline request totals (counts and histogram
    metrics, as measured: never swapped by ``direction``), for the sample-ratio guard."""
    try:
        choosing = plan.kind == "histogram" and plan.judgement == "sequential"
        if choosing and ms.bounds is None and _freeze_edges(plan, ms, provider, lo, hi, inherited):
            ms.tally = ms.tally.add(MeasurementPhase.INCONCLUSIVE)
            ms.record(
                hi,
                MeasurementPhase.INCONCLUSIVE,
                "window used to choose the latency edges, not evidence: choosing from the "
                "data that is tested would bias the test",
            )
            return
        try:
            canary = provider.measure(plan.kind, "canary", plan.queries["canary"], lo, hi)
        except NoData:
            if requests is not None and plan.kind in ("counts", "histogram"):
                _canary_silent(plan, provider, lo, hi, requests)
            raise
        baseline = provider.measure(plan.kind, "baseline", plan.queries["baseline"], lo, hi)
        values = ArmValues(canary=_value_or_total(canary), baseline=_value_or_total(baseline))
        if requests is not None and plan.kind in ("counts", "histogram"):
            requests[plan.name] = (_events(canary), _events(baseline))
        if plan.judgement == "mann-whitney":
            c, b = _value(canary), _value(baseline)
            ms.canary.append(c)
            ms.baseline.append(b)
            values = ArmValues(canary=c, baseline=b)
        else:
            c_m, b_m = _orient(plan, canary, baseline)
            if plan.kind == "counts":
                cc, bc = _counts(c_m, plan.name), _counts(b_m, plan.name)
                data[plan.name] = _counts_interval(plan, cc, bc)
                values = ArmValues(
                    canary_events=_counts(canary, plan.name).events,
                    canary_total=_counts(canary, plan.name).total,
                    baseline_events=_counts(baseline, plan.name).events,
                    baseline_total=_counts(baseline, plan.name).total,
                )
            elif plan.kind == "histogram":
                cb, bb = _buckets(c_m, plan.name), _buckets(b_m, plan.name)
                if list(cb.bounds[:-1]) != ms.bounds or list(bb.bounds[:-1]) != ms.bounds:
                    raise ProviderError(
                        f"{plan.name}: histogram bucket bounds changed during the analysis"
                    )
                data[plan.name] = HistogramInterval(cb.counts, bb.counts)
            else:
                data[plan.name] = GaugeInterval(_value(c_m), _value(b_m))
                values = ArmValues(canary=_value(canary), baseline=_value(baseline))
    except NoData as e:
        ms.tally = ms.tally.add(MeasurementPhase.INCONCLUSIVE)
        ms.record(hi, MeasurementPhase.INCONCLUSIVE, f"insufficient evidence: {e}")
        return
    except ProviderError as e:
        ms.tally = ms.tally.add(MeasurementPhase.ERROR)
        ms.record(hi, MeasurementPhase.ERROR, str(e))
        return
    ms.tally = ms.tally.add(MeasurementPhase.SUCCESSFUL)
    ms.last_events = round(_events(canary) + _events(baseline))
    ms.record(hi, MeasurementPhase.SUCCESSFUL, values=values)


def _canary_silent(
    plan: MetricPlan,
    provider: MetricProvider,
    lo: float,
    hi: float,
    requests: dict[str, tuple[float, float]],
) -> None:
    """A window where the canary reported no requests: for the sample-ratio guard, zero canary
    requests against the baseline's, when the baseline has some (a canary routed traffic that
    reports none is the grossest loss; the window is still no evidence for the metric)."""
    try:
        baseline = provider.measure(plan.kind, "baseline", plan.queries["baseline"], lo, hi)
    except (NoData, ProviderError):
        return
    total = _events(baseline)
    if total > 0:
        requests[plan.name] = (0.0, total)


def _counts_interval(plan: MetricPlan, canary: Counts, baseline: Counts) -> CountsInterval:
    """The aggregate counts, with the per-pod ones when both arms came per pod (pods as the
    sampling unit; not for ``direction: decrease``, whose arms swap roles)."""
    agg = CountsInterval(canary.events, canary.total, baseline.events, baseline.total)
    if plan.canary_pods is None or plan.direction == "decrease" or baseline.per_pod is None:
        return agg
    return CountsInterval(
        canary.events,
        canary.total,
        baseline.events,
        baseline.total,
        baseline_pod_events=[[e for _, e, _ in baseline.per_pod]],
        baseline_pod_total=[[t for _, _, t in baseline.per_pod]],
        canary_pod_total=None if canary.per_pod is None else [[t for _, _, t in canary.per_pod]],
    )


def _value_or_total(m: Measured) -> float:
    return m.value if isinstance(m, Value) else _events(m)


def _freeze_edges(
    plan: MetricPlan,
    ms: _MetricState,
    provider: MetricProvider,
    lo: float,
    hi: float,
    inherited: Mapping[str, Any] | None,
) -> bool:
    """Fix the latency edges before any evidence is folded; True when the window ``[lo, hi]``
    was spent choosing them (it is then not evidence).

    Edges an earlier step's e-process already tests are kept (its evidence is about them).
    ``compare.edges`` are snapped up to the nearest bucket bound. Otherwise they come from the
    baseline alone (never the canary), near its quantiles: from the ``EDGE_LOOKBACK`` seconds
    before the first evidence window, else from this window, which is then not folded. Why not
    both: edges chosen from the counts they are tested on sit where that window's baseline
    happened to be fast, so the canary looks slower than it is (a biased test)."""
    if inherited and inherited.get("kind") == "histogram" and inherited.get("edges"):
        ms.bounds = [float(b) for b in inherited["finite_bounds"]]
        ms.edges = [float(e) for e in inherited["edges"]]
        frozen = inherited.get("edge_tolerances")
        ms.edge_tolerances = None if frozen is None else [_float_or_none(k) for k in frozen]
        return False
    arm: Arm = "canary" if plan.direction == "decrease" else "baseline"
    start = lo - ms.done * plan.interval  # where the first evidence window starts
    consumed = False
    try:
        baseline = _buckets(
            provider.measure(plan.kind, arm, plan.queries[arm], start - EDGE_LOOKBACK, start),
            plan.name,
        )
        if not baseline.counts or baseline.counts[-1] <= 0:
            raise NoData("no baseline requests before the analysis")
        before = True
    except (NoData, ProviderError):
        before = False
        baseline = _buckets(provider.measure(plan.kind, arm, plan.queries[arm], lo, hi), plan.name)
        consumed = True
    finite = [b for b in baseline.bounds if math.isfinite(b)]
    if plan.edges:
        # fixed edges only take the bucket bounds from the data: nothing to bias, so the window
        # stays evidence
        edges = sorted({next((b for b in finite if b >= e), finite[-1]) for e in plan.edges})
        consumed = False
    else:
        # a ratio tolerance keeps p90 and p99: on coarse buckets a third edge only dilutes alpha
        # (benchmarks/latency_tail.py); a latency tolerance covers the tail from its quantile up
        quantiles = (
            (0.9, 0.99) if plan.latency_increase is None else tail_quantiles(plan.latency_quantile)
        )
        try:
            edges = choose_edges(
                baseline.bounds, baseline.counts, quantiles, latency_increase=plan.latency_increase
            )
        except ValueError as e:
            raise NoData(f"cannot choose latency edges yet: {e}") from None
    if plan.latency_increase is not None and (before or consumed):
        # frozen from the baseline before the rollout (never the canary); not from a window that
        # is also evidence (fixed edges without a lookback): that would be the bias described
        # above, so those edges interpolate the baseline live
        slope = baseline
        if before:
            try:
                slope = _buckets(
                    provider.measure(
                        plan.kind, arm, plan.queries[arm], start - STRETCH_LOOKBACK, start
                    ),
                    plan.name,
                )
            except (NoData, ProviderError):
                slope = baseline  # the edges' own window: shorter, so its bounds are wider
        ms.edge_tolerances = list(_stretch(slope, baseline, edges, plan.latency_increase))
    ms.bounds, ms.edges = finite, edges
    return consumed


def _stretch(
    slope: Buckets, edges_from: Buckets, edges: list[float], increase: float
) -> tuple[float | None, ...]:
    """Per-edge ratios from the longer window when its buckets are the edges' (a scrape may have
    changed them), else from the edges' own window."""
    source = slope if list(slope.bounds) == list(edges_from.bounds) else edges_from
    try:
        return stretch_tolerances(source.bounds, source.counts, edges, increase)
    except ValueError:
        return (None,) * len(edges)


def _float_or_none(x: Any) -> float | None:
    return None if x is None else float(x)


def _measure_threshold(
    plan: MetricPlan, ms: _MetricState, provider: MetricProvider, lo: float, hi: float
) -> None:
    assert plan.threshold is not None
    value: float | None = None
    message = ""
    error = False
    try:
        measured = provider.measure(plan.kind, "absolute", plan.queries["absolute"], lo, hi)
        value = _value(measured)
        message = measured.note if isinstance(measured, Value) else ""
    except NoData as e:
        message = f"insufficient evidence: {e}"
    except ProviderError as e:
        error, message = True, str(e)
    phase = threshold_measurement(plan.threshold, value, error)
    ms.tally = ms.tally.add(phase)
    if not error:
        ms.last_value = value
    if phase is MeasurementPhase.FAILED and value is not None:
        outside = f"value {value:g} outside the threshold"
        message = f"{outside}; {message}" if message else outside
    ms.record(hi, phase, message, value=value)


# ------------------------------------------------------------------------------ the sequential part


def _spec(plan: MetricPlan, ms: _MetricState, alpha: float) -> MetricSpec | None:
    """The policy's view of a sequential metric; None while a histogram has no edges yet."""
    kind: Literal["counts", "histogram", "gauge"]
    if plan.kind == "histogram":
        if ms.bounds is None or ms.edges is None:
            return None
        return MetricSpec(
            plan.name,
            "histogram",
            tolerance=plan.tolerance if plan.latency_increase is None else 1.0,
            latency_increase=plan.latency_increase,
            edge_tolerances=None if ms.edge_tolerances is None else tuple(ms.edge_tolerances),
            critical=plan.critical,
            alpha=alpha,
            bucket_bounds=(*ms.bounds, math.inf),
            edges=tuple(ms.edges),
        )
    kind = "counts" if plan.kind == "counts" else "gauge"
    return MetricSpec(
        plan.name,
        kind,
        tolerance=plan.tolerance,
        critical=plan.critical,
        alpha=alpha,
        tau=GAUGE_TAU if kind == "gauge" else None,
        canary_pods=None if plan.canary_pods is None else float(plan.canary_pods),
        # None: estimated from per-pod series when they come, else the default spread
        pod_spread=plan.pod_spread,
    )


def _build(
    specs: Sequence[MetricSpec],
    saved: Mapping[str, Any],
    config: PolicyConfig,
    t0: float,
    sample_ratio: Mapping[str, Any] | None = None,
) -> RolloutAnalysis:
    """One RolloutAnalysis over ``specs``, each metric resumed from its saved e-process when that
    was built for the same kind and alpha (else it starts afresh: evidence cannot carry over),
    and the sample-ratio guard from ``sample_ratio`` (the run's own: never inherited)."""
    fresh = RolloutAnalysis(specs, config, t0=t0)
    state = fresh.to_state()
    if sample_ratio is not None and sample_ratio.get("alpha") == config.srm_alpha:
        state["sample_ratio"] = dict(sample_ratio)
    for spec in specs:
        old = saved.get(spec.name)
        if old is None:
            continue
        if (
            # the e-process's own alpha: the metric's share, less what a pod model spends
            float(old.get("alpha", -1.0)) == state["metrics"][spec.name]["alpha"]
            and old.get("kind") == (state["metrics"][spec.name]["kind"])
        ):
            state["metrics"][spec.name] = old
    return RolloutAnalysis.from_state(state, specs, config)


POD_HISTORY_SECONDS = 3600.0
"""How far back the baseline's per-pod counts are read before the analysis starts: an hour gives
most fleets enough errors a pod to bound the spread before the first canary window."""


def _calibrate_pods(
    plan: MetricPlan,
    analysis: RolloutAnalysis,
    provider_for: Callable[[MetricPlan], MetricProvider],
    start: float,
) -> None:
    """Feed the baseline's per-pod counts of the hour before ``start`` to the pod model. Anything
    short of per-pod counts (no data, an error, an aggregate series) leaves the model as it is:
    it then assumes a wide spread until the analysis's own windows bound it."""
    if plan.canary_pods is None or plan.direction == "decrease" or plan.name not in analysis.pods:
        return
    queries = plan.queries.get("baseline")
    if queries is None or not queries.pod_label:
        return
    try:
        got = provider_for(plan).measure(
            plan.kind, "baseline", queries, start - POD_HISTORY_SECONDS, start
        )
    except (NoData, ProviderError):
        return
    if isinstance(got, Counts) and got.per_pod:
        analysis.calibrate_pods(
            plan.name, [[e for _, e, _ in got.per_pod]], [[t for _, _, t in got.per_pod]]
        )


# ------------------------------------------------------------------------------ one tick


def advance(
    plans: Sequence[MetricPlan],
    state: Mapping[str, Any] | None,
    *,
    start: float,
    now: float,
    provider_for: Callable[[MetricPlan], MetricProvider],
    alphas: Mapping[str, float],
    budget: float = 0.05,
    kind: RunKind = "step",
    inconclusive: InconclusivePolicy = "pause",
    inherit: Mapping[str, Any] | None = None,
    weight_changes: Sequence[float] = (),
    shares: Sequence[tuple[float, float]] = (),
) -> TickResult:
    """Take every measurement due by ``now``, judge, and decide the run (see module docstring).

    ``weight_changes`` are times the canary's weight changed (the Rollout's
    ``status.weightChangedAt`` as the run sees it on each tick); they are kept in the state, so
    each needs to be passed once, and every later window of a count or histogram compare is cut
    at them (see :func:`_cut`).

    ``shares`` are the canary's asked shares of requests, each ``(since, share)`` (the owner's
    weight as the run sees it on each tick; kept in the state like the weight changes). Each
    window piece of the guard's metric (see :func:`_guard_metric`) whose share is known is fed
    to the sample-ratio guard with its request totals; the guard pauses the run (Inconclusive)
    on gross loss only (``analysis.stats.sample_ratio``).

    ``alphas`` gives each sequential metric's share of the rollout's alpha ``budget`` (split by
    :func:`analysis.stats.policy.split_budget` when the run was created); ``inherit`` maps
    metric names to a previous run's saved e-process states (used only when this run has none).
    Never raises for provider trouble or bad data: those are measurements, not exceptions.
    """
    st = dict(state or {})
    cuts = _cuts(st.get("cuts", []), weight_changes, start)
    if cuts:
        st["cuts"] = cuts
    asked = _shares(st.get("shares", []), shares, start)
    if asked:
        st["shares"] = [list(p) for p in asked]
    guard = _guard_metric(plans)
    metric_states = {p.name: _MetricState.load(st.get("metrics", {}).get(p.name)) for p in plans}
    tests: dict[str, Any] = dict(inherit or {}) | dict(st.get("tests", {}))
    data: dict[str, IntervalData] = {}
    # 1. measure what came due (sequential data is folded below, one window per fold)
    windows: list[tuple[float, dict[str, IntervalData], tuple[float, float, float] | None]] = []
    for plan in plans:
        ms = metric_states[plan.name]
        provider: MetricProvider | None = None  # built when a window is due, not on every tick
        taken = 0
        while taken < CATCH_UP and not _measured_enough(plan, ms):
            if _decided_by_limits(plan, ms):
                break
            lo, hi = plan.window(start, ms.done + 1)
            if hi > now + 1e-9:
                break
            provider = provider if provider is not None else provider_for(plan)
            if plan.judgement == "threshold":
                try:
                    _measure_threshold(plan, ms, provider, lo, hi)
                except Pending:
                    break  # a Job still running: this window is measured again next tick
            else:
                for a, b in _cut(plan, lo, hi, cuts):
                    data = {}
                    requests: dict[str, tuple[float, float]] = {}
                    _measure_compare(plan, ms, provider, a, b, data, tests.get(plan.name), requests)
                    srm = None
                    share = _share_in(asked, a, b) if plan.name == guard else None
                    if share is not None and plan.name in requests:
                        srm = (*requests[plan.name], share)
                    if data or srm is not None:
                        windows.append((b, data, srm))
            ms.done += 1
            taken += 1
    # 2. fold sequential windows in time order into the rollout-wide e-processes
    seq = [p for p in plans if p.judgement == "sequential"]
    gate = [p for p in seq if not p.dry_run]
    config = _config(gate, inconclusive, budget)
    analyses: dict[bool, RolloutAnalysis] = {}
    for dry in (False, True):
        group = [p for p in seq if p.dry_run == dry]
        specs = [s for p in group if (s := _spec(p, metric_states[p.name], alphas[p.name]))]
        if specs:
            analyses[dry] = _build(
                specs, tests, config, start, None if dry else st.get("sampleRatio")
            )
            for p in group:
                if p.name not in tests:  # the metric's first tick: its pods' history, once
                    _calibrate_pods(p, analyses[dry], provider_for, start)
    windows.sort(key=lambda w: w[0])
    for hi, item, srm in windows:
        for dry, analysis in analyses.items():
            names = {m.name for m in analysis.metrics}
            part = {n: d for n, d in item.items() if n in names}
            if srm is not None and not dry:
                # the guard's metric's window, with its own asked share: once per window
                c, b, share = srm
                analysis.observe(hi, part, expected_canary_share=share, requests=(c, b))
            elif part:
                analysis.observe(hi, part)
    for analysis in analyses.values():
        tests.update(analysis.to_state()["metrics"])
    if False in analyses:
        st["sampleRatio"] = analyses[False].to_state()["sample_ratio"]
    # 3. judge each metric
    verdicts: dict[str, MetricVerdict] = {}
    for plan in plans:
        verdicts[plan.name] = _judge(plan, metric_states[plan.name], analyses, now, start)
    # 4. the sequential policy's say for the step, then the run's phase
    phase, message = _decide(
        plans, verdicts, analyses.get(False), metric_states, config, now, start, kind, inconclusive
    )
    st["metrics"] = {p.name: metric_states[p.name].dump() for p in plans}
    st["tests"] = {n: s for n, s in tests.items() if n in {p.name for p in seq}}
    reports = tuple(
        MetricReport(
            name=p.name,
            phase=verdicts[p.name].phase,
            tally=metric_states[p.name].tally,
            measurements=tuple(
                MeasurementRecord(
                    at=float(h["at"]),
                    phase=str(h["phase"]),
                    value=h.get("value"),
                    values=None
                    if h.get("values") is None
                    else ArmValues.model_validate(h["values"]),
                    message=str(h.get("message", "")),
                )
                for h in metric_states[p.name].history
            ),
            evidence=verdicts[p.name].evidence,
            message=verdicts[p.name].message,
            dry_run=p.dry_run,
        )
        for p in plans
    )
    return TickResult(phase, message, reports, st)


MAX_CUTS = 100
"""Weight-change times a run keeps (the newest): more steps than any Rollout has."""


def _shares(
    saved: Sequence[Sequence[float]], new: Sequence[tuple[float, float]], start: float
) -> list[tuple[float, float]]:
    """The run's asked canary shares, ``(since, share)`` sorted by time: those saved plus the
    new ones, the newest at or before the run's start kept (it holds from the start on). A
    share outside [0, 1] or at a non-finite time is not kept (it says nothing)."""
    points = {float(t): float(r) for t, r in saved}
    for t, r in new:
        if math.isfinite(t) and math.isfinite(r) and 0.0 <= r <= 1.0:
            points[float(t)] = float(r)
    ordered = sorted(points.items())
    before = [p for p in ordered if p[0] <= start]
    after = [p for p in ordered if p[0] > start]
    return (before[-1:] + after)[-MAX_CUTS:]


def _share_in(points: Sequence[tuple[float, float]], lo: float, hi: float) -> float | None:
    """The asked share over ``[lo, hi]``: the newest share set at or before ``lo``; None when
    none is known yet or one changes inside the window (then no one share holds for it)."""
    if any(lo + 1e-3 < t < hi - 1e-3 for t, _ in points):
        return None
    known = [r for t, r in points if t <= lo + 1e-3]
    return known[-1] if known else None


def _guard_metric(plans: Sequence[MetricPlan]) -> str | None:
    """The metric whose request totals the sample-ratio guard reads: the first gating
    sequential counts compare, else the first such histogram. One metric only: feeding the
    same requests through two metrics would count them twice, and the guard's evidence would
    no longer be a supermartingale."""
    for kind in ("counts", "histogram"):
        for p in plans:
            if p.judgement == "sequential" and p.kind == kind and not p.dry_run:
                return p.name
    return None


def _cuts(saved: Sequence[float], new: Sequence[float], start: float) -> list[float]:
    """The run's weight-change times: those saved plus the new ones after the run's start."""
    times = {float(t) for t in saved} | {float(t) for t in new if math.isfinite(t) and t > start}
    return sorted(times)[-MAX_CUTS:]


def _cut(
    plan: MetricPlan, lo: float, hi: float, cuts: Sequence[float]
) -> list[tuple[float, float]]:
    """The window ``[lo, hi]`` split at the weight changes inside it, for count and histogram
    compares; any other metric measures it whole.

    Why: the count tests take each window's canary share of requests as constant. A window
    straddling a weight change mixes two shares, and a shared rate that changes in time (an
    incident in the window's second half) then lands on the arm that had more traffic at that
    time: weight and time confound, and identical canaries abort. Split, each piece has one
    share, so the conditional test holds again; the pieces still count as one window of the
    schedule (``count``, ``duration`` and the next windows are unchanged)."""
    if plan.judgement != "sequential" or plan.kind not in ("counts", "histogram"):
        return [(lo, hi)]
    inner = [t for t in cuts if lo + 1e-3 < t < hi - 1e-3]
    edges = [lo, *inner, hi]
    return list(itertools.pairwise(edges))


def overdue(
    plans: Sequence[MetricPlan], state: Mapping[str, Any] | None, *, start: float, now: float
) -> dict[str, int]:
    """Per metric still measuring, how many windows have ended by ``now`` but are not in
    ``state``: what a tick would take. Right after a tick it is 0 (or what ``CATCH_UP`` left);
    a run whose status keeps lagging has ticks that fail (see ``RunLifecycle.stalled``)."""
    saved = dict(state or {}).get("metrics", {})
    out: dict[str, int] = {}
    for plan in plans:
        ms = _MetricState.load(saved.get(plan.name))
        if _measured_enough(plan, ms) or _decided_by_limits(plan, ms):
            continue
        ended = math.floor((now - start - plan.initial_delay) / plan.interval + 1e-9)
        if plan.horizon is not None and plan.judgement != "threshold":
            ended = min(ended, plan.horizon)
        if ended > ms.done:
            out[plan.name] = ended - ms.done
    return out


def _measured_enough(plan: MetricPlan, ms: _MetricState) -> bool:
    """Whether the metric has taken every measurement its ``count`` or ``duration`` asks for.

    A compare's horizon is its windows. A threshold's is its completed measurements: counting
    errored windows toward ``count`` made a metric whose every query failed Successful once its
    windows had passed, and a preview was promoted on no data at all."""
    if plan.horizon is None:
        return False
    if plan.judgement != "threshold":
        return ms.done >= plan.horizon
    if plan.count is not None:
        return ms.tally.count >= plan.count
    return ms.done >= plan.horizon and ms.tally.consecutive_errors == 0


def _decided_by_limits(plan: MetricPlan, ms: _MetricState) -> bool:
    """Whether the metric's tally already decides it (errors, failures or missing values over
    their limits), so it takes no further measurement, as in Argo.

    Why it matters: a controller catching up after time away measures every window that came due
    in one tick; against a Prometheus that times out, each measurement costs the timeout times the
    attempts, so measuring on past the limit would hold the reconcile for minutes and report more
    errors than the limit that decided the run."""
    t = ms.tally
    if plan.judgement == "threshold":
        assert plan.threshold is not None
        rule = plan.threshold
        return (
            t.consecutive_errors > rule.consecutive_error_limit
            or t.failed > rule.failure_limit
            or t.inconclusive > rule.inconclusive_limit
        )
    return t.consecutive_errors > COMPARE_ERROR_LIMIT


def _config(
    gate: Sequence[MetricPlan], inconclusive: InconclusivePolicy, budget: float
) -> PolicyConfig:
    """Minimum step: the first measurement after the warm-up plus one more interval; maximum:
    the last metric's horizon (none when a gating metric runs until stopped)."""
    min_s = max((p.initial_delay + 2 * p.interval for p in gate), default=0.0)
    ends = [p.initial_delay + p.horizon * p.interval for p in gate if p.horizon is not None]
    max_s = max(ends) if ends and len(ends) == len(gate) else None
    if max_s is not None:
        max_s = max(max_s, min_s)
    return PolicyConfig(
        alpha=budget,  # each metric's alpha is its share of it: the policy checks their sum
        warmup_seconds=0.0,
        min_step_seconds=min_s,
        max_step_seconds=max_s,
        on_max_duration="promote" if inconclusive == "promote" else "pause",
    )


def _judge(
    plan: MetricPlan,
    ms: _MetricState,
    analyses: Mapping[bool, RolloutAnalysis],
    now: float,
    start: float,
) -> MetricVerdict:
    horizon_reached = _measured_enough(plan, ms)
    errors = ms.tally.consecutive_errors
    if plan.judgement == "threshold":
        assert plan.threshold is not None
        verdict = judge_threshold(
            plan.name, plan.threshold, ms.tally, ms.last_value, ms.last_events, horizon_reached
        )
        if verdict.phase == "Error" and ms.history and ms.history[-1].get("message"):
            # as for compares: the run's message (and so the Rollout's) names the cause
            verdict = replace(
                verdict, message=f"{verdict.message}; last: {ms.history[-1]['message']}"
            )
        return verdict
    if errors > COMPARE_ERROR_LIMIT:
        last = ms.history[-1].get("message", "") if ms.history else ""
        return MetricVerdict(
            "Error",
            None,
            f"metric {plan.name!r}: {errors} consecutive measurement errors "
            f"(limit {COMPARE_ERROR_LIMIT}); last: {last}",
        )
    if plan.judgement == "mann-whitney":
        return judge_mann_whitney(
            plan.name,
            ms.canary,
            ms.baseline,
            direction=_direction(plan.direction),
            tolerance=plan.tolerance,
            horizon_reached=horizon_reached,
            critical=plan.critical,
        )
    analysis = analyses.get(plan.dry_run)
    if analysis is None or plan.name not in analysis.tests:
        return MetricVerdict(
            "Running",
            Evidence(method="sequential", outcome=Outcome.INSUFFICIENT, rule="no data yet"),
            "",
        )
    return judge_sequential(plan.name, analysis.evidence(plan.name))


def _direction(d: str) -> Literal["increase", "decrease", "either"]:
    return "decrease" if d == "decrease" else "either" if d == "either" else "increase"


def _decide(
    plans: Sequence[MetricPlan],
    verdicts: dict[str, MetricVerdict],
    gate: RolloutAnalysis | None,
    metric_states: Mapping[str, _MetricState],
    config: PolicyConfig,
    now: float,
    start: float,
    kind: RunKind,
    inconclusive: InconclusivePolicy,
) -> tuple[RunPhase, str]:
    seq_gate = [p for p in plans if p.judgement == "sequential" and not p.dry_run]
    guard = ""  # the sample-ratio guard's reason and evidence, when it holds the step
    if seq_gate:
        decision = Decision.INSUFFICIENT
        reason = "no sequential evidence yet"
        held_by: list[str] = []  # the metrics an inconclusive step lacks evidence on
        if gate is not None:
            pv = gate.verdict(now, start)
            decision, reason = pv.decision, pv.reason
            held_by = gate.holding()
            if decision is Decision.INCONCLUSIVE and bool(gate.sample_ratio.mismatch[0]):
                assert pv.sample_ratio is not None
                guard = f"{reason} ({describe(pv.sample_ratio)})"
        missing = [p.name for p in seq_gate if gate is None or p.name not in gate.tests]
        elapsed = now - start
        maxed = config.max_step_seconds is not None and elapsed >= config.max_step_seconds
        if missing and decision is not Decision.ABORT:
            critical_missing = [
                n for n in missing if next(p for p in seq_gate if p.name == n).critical
            ]
            if critical_missing:
                decision = Decision.INCONCLUSIVE if maxed else Decision.INSUFFICIENT
                reason = "insufficient evidence: no data yet for " + ", ".join(
                    map(repr, critical_missing)
                )
                held_by = critical_missing
        step_phase: RunPhase = {
            Decision.ABORT: "Failed",
            Decision.PROMOTE_STEP: "Successful",
            Decision.INCONCLUSIVE: "Inconclusive",
        }.get(decision, "Running")  # type: ignore[assignment]
        for p in seq_gate:
            v = verdicts[p.name]
            if v.phase in ("Failed", "Error"):
                continue
            if step_phase == "Successful":
                if reason.startswith("WARNING"):
                    verdicts[p.name] = MetricVerdict("Successful", v.evidence, reason)
                else:
                    verdicts[p.name] = MetricVerdict("Successful", v.evidence)
            elif step_phase == "Inconclusive" and guard:
                evidence = "" if v.evidence is None else f" ({describe(v.evidence)})"
                verdicts[p.name] = MetricVerdict(
                    "Inconclusive",
                    v.evidence,
                    f"metric {p.name!r}: not judged while the sample-ratio guard holds the step"
                    f"{evidence}",
                )
            elif step_phase == "Inconclusive":
                evidence = "" if v.evidence is None else f" ({describe(v.evidence)})"
                # the step's reason names the metrics it lacks evidence on; another metric is
                # inconclusive only with its step, and says so rather than borrow their reason
                own = p.name in held_by or not held_by
                verdicts[p.name] = MetricVerdict(
                    "Inconclusive",
                    v.evidence,
                    f"metric {p.name!r}: insufficient evidence: {reason}{evidence}"
                    if own
                    else f"metric {p.name!r}: no verdict of its own; the step is inconclusive "
                    f"on {', '.join(map(repr, held_by))}{evidence}",
                )
    dry = frozenset(p.name for p in plans if p.dry_run)
    blind = _without_evidence(plans, metric_states, gate)
    unshown = [p.name for p in plans if p.name in blind and _gates(p)]
    for name in unshown:
        v = verdicts[name]
        if v.phase == "Successful":
            # a horizon reached on NaN/empty windows only (a threshold's count counts them, as in
            # Argo) is not a pass: nothing was shown about the canary
            verdicts[name] = MetricVerdict(
                "Inconclusive", v.evidence, f"metric {name!r}: no valid measurement"
            )
    phase, message = combine(verdicts, dry)
    if phase == "Inconclusive" and guard:
        message = guard  # one reason for the run, not one copy per metric
    if phase == "Inconclusive":
        note = (
            f"; no valid measurement of {', '.join(map(repr, unshown))} ({_NO_EVIDENCE})"
            if unshown
            else ""
        )
        if inconclusive == "abort":
            return "Failed", f"{message}{note} (inconclusive: policy abort)"
        if inconclusive == "promote" and not unshown:
            phase, message = "Successful", f"WARNING: promoted while inconclusive: {message}"
        elif inconclusive == "promote":
            # promote means "nothing failed, but not enough evidence of no harm": it needs some
            message = f"{message}{note}; not promoted (inconclusive: policy promote)"
        else:
            message = f"{message}{note}"
    if kind == "background" and phase == "Successful":
        return "Running", ""
    if phase == "Successful" and not message:
        warned = [
            v.message
            for n, v in verdicts.items()
            if n not in dry and v.message.startswith("WARNING")
        ]
        message = warned[0] if warned else "every metric passed"
    return phase, message


_NO_EVIDENCE = "NaN or empty query results are not evidence"


def _gates(plan: MetricPlan) -> bool:
    """Whether the metric must have evidence before a promotion: every threshold (it has no
    ``critical`` flag: each one gates) and every critical compare; never a dry-run metric."""
    return not plan.dry_run and (plan.judgement == "threshold" or plan.critical)


def _without_evidence(
    plans: Sequence[MetricPlan],
    metric_states: Mapping[str, _MetricState],
    gate: RolloutAnalysis | None,
) -> frozenset[str]:
    """The metrics with no valid measurement: every window NaN, empty, or an error.

    A valid measurement is one with a value (a threshold's in or out of its range, a compare's
    two arms). A sequential metric also counts the e-process it inherited from an earlier step
    of the same revision: that evidence was measured, and carries over by design."""
    out = set()
    for p in plans:
        t = metric_states[p.name].tally
        if t.successful + t.failed > 0:
            continue
        inherited = p.judgement == "sequential" and gate is not None and p.name in gate.tests
        if inherited and gate is not None and gate.tests[p.name].evidence().events > 0:
            continue
        out.add(p.name)
    return frozenset(out)


def is_final(phase: str) -> bool:
    return phase in FINAL_PHASES
