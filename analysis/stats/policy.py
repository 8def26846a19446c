"""The rollout-wide error budget: which metric may abort, when a step may promote.

Why one e-process per metric for the whole rollout: every look, pause, extension and step of a
rollout is then covered by one Ville bound, so ``P(false abort) <= alpha_m`` per metric and
``<= alpha`` per rollout (Bonferroni across metrics, valid under any dependence between them).
Steps never reset evidence; a step only decides *when* it is allowed to promote.

Decision precedence per run: ABORT (any metric's e-value reached ``1/alpha_m``; the count tests
condition on the observed split, so they stay valid even under a sample-ratio mismatch) >
INCONCLUSIVE (sample-ratio mismatch) > INSUFFICIENT during warm-up > PROMOTE_STEP > at the step's
maximum duration ``on_max_duration`` > INSUFFICIENT (a critical metric has fewer than
``max(min_events, 1)`` events) > CONTINUE.

"Enough" to promote is evidence of no harm, at any time including the step's end: every critical
metric shown within tolerance (its one-sided confidence sequence's upper bound below the promote
tolerance) and its ``min_events`` reached. Counting events is not evidence: one error seen, or a
thousand, says nothing about a canary five times worse when the baseline saw as few. So a canary
worse than the tolerance is promoted with probability at most its metric's ``alpha_m`` (the
acceptance test's Ville bound), at any traffic level: that is the policy's beta. A step at its
maximum duration without that evidence is inconclusive, and ``on_max_duration`` says what then
happens: "pause" (the default: INCONCLUSIVE, a person decides) or "promote", which means "enough
evidence of no harm was not reached but nothing failed" (issue 13's reading, the template's
``inconclusive: promote``): PROMOTE_STEP with a WARNING when no metric aborted, the sample ratio
holds and every critical metric has valid data and its ``min_events``. It gives up beta: at low
traffic a regression can be promoted this way, and the reason says so. A critical metric with no
valid data (NaN, empty, no traffic) never promotes, not even then.

``observe`` takes ``t`` as the *end* of the interval the data covers; intervals with
``t <= t0 + warmup_seconds`` lie in the warm-up and are excluded from evidence. Requests for the
sample-ratio check come from ``requests=`` when given, else from the first counts metric's totals,
else from the first histogram's ``+Inf`` bucket. ``min_events`` counts events over the whole rollout, like the evidence
(errors for counts, requests for histograms, observations for gauges). With no critical metric a
step promotes on time alone: the metrics can then only abort.

Additions to the issue's API, kept small: ``RolloutAnalysis(t0=...)``, ``observe(requests=...)``,
``PolicyVerdict.sample_ratio`` (the guard's own evidence), and ``from_state(state, metrics,
config)``: the specs and config come from the Rollout's spec, only the evidence lives in status.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analysis.stats.count_eprocess import (
    DEFAULT_ACCEPT_SCALES,
    DEFAULT_PRIOR_SCALES,
    DEFAULT_TOLERANCE,
    STATE_VERSION,
    RateRatioEProcess,
    as_batch,
)
from analysis.stats.evidence import Evidence
from analysis.stats.histogram import HistogramEProcess
from analysis.stats.msprt import NormalMixtureSPRT
from analysis.stats.pod_spread import DEFAULT_POD_ALPHA_SHARE, PodTolerance
from analysis.stats.sample_ratio import SampleRatioCheck

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]


class Decision(StrEnum):
    """What the controller should do with the current step, per run."""

    ABORT = "abort"
    PROMOTE_STEP = "promote-step"
    CONTINUE = "continue"
    INCONCLUSIVE = "inconclusive"
    INSUFFICIENT = "insufficient"


@dataclass(frozen=True)
class CountsInterval:
    """One interval's increments of an event counter and its exposure (usually requests).

    The optional per-pod arrays, shape ``(batch, pods)``, feed the pod model
    (:mod:`analysis.stats.pod_spread`, needs ``MetricSpec.canary_pods``): the baseline's per-pod
    events and totals estimate the between-pod spread, the canary's per-pod totals give the
    traffic-weighted number of canary pods. The aggregate fields stay the sums. Aggregate fields
    given per pod, shape ``(batch, pods)``, are read as such: summed, and the per-pod arrays taken
    from them (:meth:`per_pod_split`).
    """

    canary_events: ArrayLike
    canary_total: ArrayLike
    baseline_events: ArrayLike
    baseline_total: ArrayLike
    baseline_pod_events: ArrayLike | None = None
    baseline_pod_total: ArrayLike | None = None
    canary_pod_total: ArrayLike | None = None

    def per_pod_split(self) -> CountsInterval:
        """The same interval with per-pod aggregate fields (2-D) summed into the aggregates and
        kept as the per-pod arrays; unchanged when the aggregates are per run already."""
        arrays = [
            np.asarray(a, dtype=np.float64)
            for a in (
                self.canary_events,
                self.canary_total,
                self.baseline_events,
                self.baseline_total,
            )
        ]
        if all(a.ndim < 2 for a in arrays):
            return self
        if not all(a.ndim == 2 for a in arrays):
            raise ValueError("counts per pod need all four of events and totals as (batch, pods)")
        ce, ct, be, bt = arrays
        return CountsInterval(
            ce.sum(axis=1),
            ct.sum(axis=1),
            be.sum(axis=1),
            bt.sum(axis=1),
            baseline_pod_events=be
            if self.baseline_pod_events is None
            else self.baseline_pod_events,
            baseline_pod_total=bt if self.baseline_pod_total is None else self.baseline_pod_total,
            canary_pod_total=ct if self.canary_pod_total is None else self.canary_pod_total,
        )


@dataclass(frozen=True)
class HistogramInterval:
    """One interval's increments of cumulative ``le`` buckets, shape ``(batch, n_buckets)``."""

    canary_buckets: ArrayLike
    baseline_buckets: ArrayLike


@dataclass(frozen=True)
class GaugeInterval:
    """One interval's (batch-mean) gauge value per arm."""

    canary: ArrayLike
    baseline: ArrayLike


IntervalData = CountsInterval | HistogramInterval | GaugeInterval


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is judged.

    ``tolerance`` is the ratio canary/baseline that is still fine (rate ratio for counts and
    histogram exceedances, geometric-mean ratio for gauges). ``critical`` metrics must be shown
    within tolerance before a step promotes; every metric can abort. ``alpha=None`` takes an
    equal share of what explicit alphas leave of the rollout's budget.
    ``edge_weights`` (histograms) split the metric's alpha across its edges in proportion, fixed
    with the edges before the rollout (equal when None). ``prior_scales`` and
    ``accept_prior_scales`` are the mixing scales of the abort and "within tolerance" tests
    (see :mod:`analysis.stats.count_eprocess`); any fixed choice keeps the guarantee.
    ``promote_tolerance`` (counts and histograms; default ``tolerance``) is the ratio a critical
    metric must be shown below before a step promotes early.
    ``canary_pods`` (counts) turns on pods as the sampling unit: the tolerance (and the promote
    bar) is widened by the between-pod spread for that many canary pods, the smallest number the
    rollout judges with (:mod:`analysis.stats.pod_spread`). ``pod_spread`` declares the spread
    (sd of log rates between pods); None estimates it from per-pod baseline counts, with
    :data:`~analysis.stats.pod_spread.DEFAULT_POD_SPREAD` until they suffice. ``pod_alpha_share``
    of the metric's alpha goes to the pod draw (and the spread's bound), the rest to the test.
    ``latency_increase`` (histograms) tolerates latency growing by that fraction (0.1: 10%):
    the baseline is read at ``edge/(1+x)`` and ``tolerance`` is then the ratio there (1 exact;
    see :mod:`analysis.stats.histogram`). ``edge_tolerances`` (with it) stand for that point per
    edge: the slow-rate ratio at the edge itself, frozen from the baseline's tail before the
    rollout (:func:`~analysis.stats.histogram.stretch_tolerances`; None: interpolate live).
    """

    name: str
    kind: Literal["counts", "histogram", "gauge"]
    tolerance: float = DEFAULT_TOLERANCE
    critical: bool = True
    alpha: float | None = None
    min_events: int = 0
    bucket_bounds: tuple[float, ...] | None = None
    edges: tuple[float, ...] | None = None
    tau: float | None = None
    edge_weights: tuple[float, ...] | None = None
    prior_scales: tuple[float, ...] = DEFAULT_PRIOR_SCALES
    accept_prior_scales: tuple[float, ...] = DEFAULT_ACCEPT_SCALES
    promote_tolerance: float | None = None
    canary_pods: float | None = None
    pod_spread: float | None = None
    pod_alpha_share: float = DEFAULT_POD_ALPHA_SHARE
    latency_increase: float | None = None
    edge_tolerances: tuple[float | None, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("counts", "histogram", "gauge"):
            raise ValueError(f"metric {self.name!r}: unknown kind {self.kind!r}")
        if not (math.isfinite(self.tolerance) and self.tolerance > 0):
            raise ValueError(f"metric {self.name!r}: tolerance must be a positive ratio")
        if self.alpha is not None and not 0.0 < self.alpha < 1.0:
            raise ValueError(f"metric {self.name!r}: alpha must be in (0, 1), got {self.alpha}")
        if self.promote_tolerance is not None and not (
            math.isfinite(self.promote_tolerance) and self.promote_tolerance > 0
        ):
            raise ValueError(f"metric {self.name!r}: promote_tolerance must be a positive ratio")
        if self.min_events < 0:
            raise ValueError(f"metric {self.name!r}: min_events must be >= 0")
        if self.kind == "histogram" and (not self.bucket_bounds or not self.edges):
            raise ValueError(f"metric {self.name!r}: a histogram needs bucket_bounds and edges")
        if self.kind == "gauge" and self.tau is None:
            raise ValueError(f"metric {self.name!r}: a gauge needs tau (the mixture scale)")
        if self.edge_weights is not None and (
            self.edges is None or len(self.edge_weights) != len(self.edges)
        ):
            raise ValueError(f"metric {self.name!r}: edge_weights needs one weight per edge")
        self._check_pods()

    def _check_pods(self) -> None:
        pods = self.canary_pods is not None or self.pod_spread is not None
        if pods and self.kind != "counts":
            raise ValueError(f"metric {self.name!r}: canary_pods/pod_spread are for counts metrics")
        if self.canary_pods is None and self.pod_spread is not None:
            raise ValueError(f"metric {self.name!r}: pod_spread needs canary_pods")
        if self.canary_pods is not None and not (
            math.isfinite(self.canary_pods) and self.canary_pods >= 1
        ):
            raise ValueError(f"metric {self.name!r}: canary_pods must be >= 1")
        if self.pod_spread is not None and not (
            math.isfinite(self.pod_spread) and self.pod_spread >= 0
        ):
            raise ValueError(f"metric {self.name!r}: pod_spread must be >= 0")
        if not 0.0 < self.pod_alpha_share < 1.0:
            raise ValueError(f"metric {self.name!r}: pod_alpha_share must be in (0, 1)")


@dataclass(frozen=True)
class PolicyConfig:
    """Rollout-wide knobs of the decision rule."""

    alpha: float = 0.05
    warmup_seconds: float = 0.0
    warmup_events: float = 0.0
    """Warm-up by traffic: intervals are excluded until the canary has served this many requests
    (the interval that reaches it included). Why by events: what a cold canary must get over
    (caches, JIT, connection pools) is measured in requests served, not seconds; a fixed time is
    too long at high traffic (it alone exceeded the oracle's time to abort large regressions)
    and too short at low traffic. With ``warmup_seconds`` too, both must have passed."""
    cold_start: tuple[float, float] | None = None
    """``(factor, seconds)``: during the timed warm-up, count metrics are not discarded but
    judged for abort against a raised null, ``canary <= tolerance·(1 + (factor - 1)·e^(-a/seconds))
    × baseline`` at age ``a`` (from ``t0`` to the interval's start, where the envelope is
    highest): a cold start up to that envelope never aborts (same Ville bound), while a
    regression well above it aborts without waiting out the warm-up. Histograms and promotion
    still ignore the warm-up. None (the default): the warm-up is discarded."""
    min_step_seconds: float = 60.0
    max_step_seconds: float | None = None
    on_max_duration: Literal["promote", "pause"] = "pause"
    srm_alpha: float = 0.001

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not (math.isfinite(self.warmup_events) and self.warmup_events >= 0):
            raise ValueError(f"warmup_events must be >= 0, got {self.warmup_events}")
        if self.cold_start is not None:
            factor, seconds = self.cold_start
            if not (
                math.isfinite(factor) and factor >= 1 and math.isfinite(seconds) and seconds > 0
            ):
                raise ValueError(
                    f"cold_start must be (factor >= 1, seconds > 0), got {self.cold_start}"
                )
        if not 0.0 < self.srm_alpha < 1.0:
            raise ValueError(f"srm_alpha must be in (0, 1), got {self.srm_alpha}")
        if self.on_max_duration not in ("promote", "pause"):
            raise ValueError(
                f"on_max_duration must be 'promote' or 'pause', not {self.on_max_duration!r}"
            )
        if self.max_step_seconds is not None and self.max_step_seconds < self.min_step_seconds:
            raise ValueError("max_step_seconds must be >= min_step_seconds")


@dataclass(frozen=True)
class PolicyVerdict:
    """The decision for one run, why, and every metric's evidence."""

    decision: Decision
    reason: str
    metrics: dict[str, Evidence] = field(default_factory=dict)
    sample_ratio: Evidence | None = None


class SequentialTest(Protocol):
    """What the policy needs from any of the e-processes."""

    @property
    def rejected(self) -> BoolArray: ...
    @property
    def events(self) -> FloatArray: ...
    @property
    def within_tolerance(self) -> BoolArray: ...
    @property
    def log_e_value(self) -> FloatArray: ...
    def evidence(self, index: int = 0) -> Evidence: ...
    def to_state(self) -> dict[str, Any]: ...


class BudgetError(ValueError):
    """Explicit alphas that overspend the rollout's budget; the message names the field."""


@dataclass(frozen=True)
class BudgetClaim:
    """One metric asking for its share of the rollout's alpha.

    ``field`` says where its alpha is (or would be) set, so an error names it. ``uses`` is how
    many separate e-processes judge the metric (a metric named in both background and step
    analysis is judged by two, which can each reject): its share is split between them, so the
    metric draws once from the budget however often it is named.
    """

    name: str
    alpha: float | None
    field: str
    uses: int = 1


def split_budget(claims: Sequence[BudgetClaim], alpha: float) -> dict[str, float]:
    """The one place the rollout's budget is split (Bonferroni): each metric's alpha per use.

    Explicit alphas are taken as given; the metrics without one share equally what is left.
    Raises :class:`BudgetError` naming the field whose explicit alpha takes the total over
    ``alpha``, the metrics left with nothing, or a metric given two different alphas.
    """
    explicit: dict[str, BudgetClaim] = {}
    rest: dict[str, BudgetClaim] = {}
    uses: dict[str, int] = {}
    spent = 0.0
    for c in claims:
        if c.uses < 1:
            raise ValueError(f"{c.field}: uses must be >= 1, got {c.uses}")
        uses[c.name] = max(uses.get(c.name, 0), c.uses)
        if c.alpha is None:
            if c.name not in explicit:
                rest.setdefault(c.name, c)
            continue
        seen = explicit.get(c.name)
        if seen is not None:
            if seen.alpha != c.alpha:
                raise BudgetError(
                    f"{c.field}: {c.alpha:g} differs from {seen.field}: {seen.alpha:g}; a metric "
                    "draws once from the rollout's alpha, so it takes one alpha"
                )
            continue
        explicit[c.name] = c
        rest.pop(c.name, None)
        spent += c.alpha
        if spent > alpha * (1 + 1e-12):
            raise BudgetError(
                f"{c.field}: {c.alpha:g} brings the explicit alphas to {spent:g}, over the "
                f"rollout's alpha {alpha:g}"
            )
    out = {n: c.alpha for n, c in explicit.items() if c.alpha is not None}
    if rest:
        left = alpha - spent
        if left <= alpha * 1e-9:
            them = "it" if len(rest) == 1 else "them"
            raise BudgetError(
                f"{', '.join(c.field for c in rest.values())}: not set, and no alpha is left for "
                f"{them}: explicit alphas already spend the rollout's alpha {alpha:g}"
            )
        out.update({name: left / len(rest) for name in rest})
    return {name: a / uses[name] for name, a in out.items()}


def split_alpha(metrics: Sequence[MetricSpec], alpha: float) -> dict[str, float]:
    """Bonferroni over the metrics of one analysis: :func:`split_budget`, one use each.

    Raises ``ValueError`` naming the metric whose explicit alpha takes the total over budget, or
    the metrics left with nothing.
    """
    return split_budget(
        [BudgetClaim(m.name, m.alpha, f"metric {m.name!r}") for m in metrics], alpha
    )


def _build(spec: MetricSpec, alpha: float, batch: int) -> SequentialTest:
    if spec.kind == "counts":
        return RateRatioEProcess(
            tolerance=spec.tolerance,
            alpha=alpha,
            batch=batch,
            prior_scales=spec.prior_scales,
            accept_prior_scales=spec.accept_prior_scales,
            promote_tolerance=spec.promote_tolerance,
        )
    if spec.kind == "histogram":
        assert spec.bucket_bounds is not None and spec.edges is not None
        return HistogramEProcess(
            spec.bucket_bounds,
            spec.edges,
            tolerance=spec.tolerance,
            alpha=alpha,
            batch=batch,
            edge_weights=spec.edge_weights,
            prior_scales=spec.prior_scales,
            accept_prior_scales=spec.accept_prior_scales,
            promote_tolerance=spec.promote_tolerance,
            latency_increase=spec.latency_increase,
            edge_tolerances=spec.edge_tolerances,
        )
    assert spec.tau is not None
    return NormalMixtureSPRT(
        tau=spec.tau, theta0=math.log(spec.tolerance), alpha=alpha, batch=batch
    )


def _restore(spec: MetricSpec, state: Mapping[str, Any]) -> SequentialTest:
    if spec.kind == "counts":
        return RateRatioEProcess.from_state(state)
    if spec.kind == "histogram":
        return HistogramEProcess.from_state(state)
    return NormalMixtureSPRT.from_state(state)


class RolloutAnalysis:
    """All metrics of one rollout (or a batch of simulated rollouts), judged under one budget."""

    def __init__(
        self,
        metrics: Sequence[MetricSpec],
        config: PolicyConfig,
        *,
        batch: int = 1,
        t0: float | None = None,
    ) -> None:
        names = [m.name for m in metrics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"metric names must be unique: {', '.join(dupes)}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.metrics = tuple(metrics)
        self.config = config
        self.batch = int(batch)
        self.t0 = t0
        self._alphas = split_alpha(self.metrics, config.alpha)
        self._pods: dict[str, PodTolerance] = {
            m.name: _pod_tolerance(m, self._alphas[m.name], self.batch)
            for m in self.metrics
            if m.canary_pods is not None
        }
        self._tests: dict[str, SequentialTest] = {
            m.name: _build(m, self._test_alpha(m.name), self.batch) for m in self.metrics
        }
        self._srm = SampleRatioCheck(alpha=config.srm_alpha, batch=self.batch)
        self._warm_requests = np.zeros(self.batch)  # canary requests seen, warm-up included
        self._last_t: float | None = None  # end of the previous interval: the next one's start

    def _test_alpha(self, name: str) -> float:
        """The metric's alpha left for its e-process once the pod model took its share."""
        pods = self._pods.get(name)
        return self._alphas[name] if pods is None else pods.test_alpha

    @property
    def pods(self) -> Mapping[str, PodTolerance]:
        """The pod model of each metric that has one."""
        return dict(self._pods)

    @property
    def alphas(self) -> dict[str, float]:
        """Each metric's share of the rollout's alpha."""
        return dict(self._alphas)

    @property
    def tests(self) -> Mapping[str, SequentialTest]:
        """The e-process of each metric (one for the whole rollout)."""
        return dict(self._tests)

    @property
    def sample_ratio(self) -> SampleRatioCheck:
        return self._srm

    def holding(self, index: int = 0) -> list[str]:
        """The critical metrics that keep run ``index`` from promoting: those short of events,
        else those not yet shown within tolerance. An inconclusive step names these, and only
        these, as lacking evidence."""
        crit = [m for m in self.metrics if m.critical]
        short = [m.name for m in crit if not bool(self._enough(m)[index])]
        return short or [
            m.name for m in crit if not bool(self._tests[m.name].within_tolerance[index])
        ]

    def in_warmup(self, t: float) -> bool:
        """Whether an interval ending at ``t`` lies in the timed warm-up (before any data,
        everything); :meth:`warming` adds the warm-up by events, per run."""
        if self.t0 is None:
            return True
        return self.config.warmup_seconds > 0 and t <= self.t0 + self.config.warmup_seconds

    def warming(self, t: float) -> BoolArray:
        """Per run, whether an interval ending at ``t`` is still excluded as warm-up."""
        by_events = self._warm_requests < self.config.warmup_events
        return np.asarray(by_events | self.in_warmup(t))

    def observe(
        self,
        t: float,
        data: Mapping[str, IntervalData],
        *,
        expected_canary_share: ArrayLike | None = None,
        requests: tuple[ArrayLike, ArrayLike] | None = None,
    ) -> None:
        """Fold in one interval ending at ``t``; a metric absent from ``data`` is missing."""
        unknown = set(data) - set(self._tests)
        if unknown:
            raise ValueError(f"data for unknown metrics: {', '.join(sorted(unknown))}")
        if self.t0 is None:
            self.t0 = t
        data = {
            n: d.per_pod_split() if isinstance(d, CountsInterval) else d for n, d in data.items()
        }
        self._observe_pods(data)
        started, self._last_t = self._last_t, t
        split = requests if requests is not None else self._requests_from(data)
        if self.config.cold_start is not None and self.in_warmup(t):
            self._observe_cold(data, self.t0 if started is None else started)
        if self.config.warmup_events > 0:
            # the interval that brings the canary to warmup_events requests is still warm-up
            cold = self._warm_requests < self.config.warmup_events
            if split is not None:
                seen = np.nan_to_num(as_batch(split[0], self.batch, "canary requests"))
                self._warm_requests += np.maximum(seen, 0.0)
            if cold.all() or self.in_warmup(t):
                return
            data = {n: _mask(d, cold) for n, d in data.items()} if cold.any() else data
        elif self.in_warmup(t):
            return
        for spec in self.metrics:
            item = data.get(spec.name)
            if item is None:
                continue
            test = self._tests[spec.name]
            if isinstance(test, RateRatioEProcess) and isinstance(item, CountsInterval):
                canary_total = item.canary_total
                pods = self._pods.get(spec.name)
                if pods is not None:
                    canary_total = np.asarray(canary_total, dtype=np.float64) * pods.scale(
                        canary_total, item.canary_pod_total
                    )
                test.update(
                    item.canary_events, canary_total, item.baseline_events, item.baseline_total
                )
            elif isinstance(test, HistogramEProcess) and isinstance(item, HistogramInterval):
                test.update(item.canary_buckets, item.baseline_buckets)
            elif isinstance(test, NormalMixtureSPRT) and isinstance(item, GaugeInterval):
                test.update(item.canary, item.baseline)
            else:
                raise TypeError(
                    f"metric {spec.name!r} is a {spec.kind} metric; got {type(item).__name__}"
                )
        if expected_canary_share is not None and split is not None:
            self._srm.update(split[0], split[1], expected_canary_share)

    def _observe_cold(self, data: Mapping[str, IntervalData], started: float) -> None:
        """A warm-up interval: count metrics judged for abort against the cold-start envelope."""
        assert self.config.cold_start is not None and self.t0 is not None
        factor, seconds = self.config.cold_start
        age = max(started - self.t0, 0.0)
        raised = 1.0 + (factor - 1.0) * math.exp(-age / seconds)
        for spec in self.metrics:
            item = data.get(spec.name)
            test = self._tests[spec.name]
            if isinstance(test, RateRatioEProcess) and isinstance(item, CountsInterval):
                pods = self._pods.get(spec.name)
                canary_total = item.canary_total
                if pods is not None:  # the pod draw widens the envelope's null too
                    canary_total = np.asarray(canary_total, dtype=np.float64) * pods.scale(
                        canary_total, item.canary_pod_total
                    )
                test.update_warmup(
                    item.canary_events,
                    canary_total,
                    item.baseline_events,
                    item.baseline_total,
                    raised,
                )

    def _observe_pods(self, data: Mapping[str, IntervalData]) -> None:
        """Baseline per-pod counts feed the spread estimate, warm-up included (the warm-up is
        about the canary's pods; the baseline's are as good then as later)."""
        for name, item in data.items():
            if not isinstance(item, CountsInterval):
                continue
            per_pod = item.baseline_pod_events is not None or item.canary_pod_total is not None
            pods = self._pods.get(name)
            if pods is None:
                if per_pod:
                    raise ValueError(
                        f"metric {name!r}: per-pod data needs canary_pods (the pod model)"
                    )
                continue
            if item.baseline_pod_events is not None:
                if item.baseline_pod_total is None:
                    raise ValueError(
                        f"metric {name!r}: baseline_pod_events needs baseline_pod_total"
                    )
                pods.observe_baseline_pods(item.baseline_pod_events, item.baseline_pod_total)

    def calibrate_pods(self, name: str, events: ArrayLike, exposure: ArrayLike) -> None:
        """Baseline per-pod counts from before the rollout (a longer history than the first
        intervals), for metric ``name``'s spread estimate."""
        pods = self._pods.get(name)
        if pods is None:
            raise ValueError(f"metric {name!r} has no pod model (canary_pods is not set)")
        pods.observe_baseline_pods(events, exposure)

    def _requests_from(
        self, data: Mapping[str, IntervalData]
    ) -> tuple[ArrayLike, ArrayLike] | None:
        for kind in ("counts", "histogram"):
            for spec in self.metrics:
                item = data.get(spec.name)
                if spec.kind != kind or item is None:
                    continue
                if isinstance(item, CountsInterval):
                    return item.canary_total, item.baseline_total
                if isinstance(item, HistogramInterval):
                    c = np.asarray(item.canary_buckets, dtype=np.float64)
                    b = np.asarray(item.baseline_buckets, dtype=np.float64)
                    return c[..., -1], b[..., -1]
        return None

    def _enough(self, spec: MetricSpec) -> BoolArray:
        """At least ``max(min_events, 1)`` events: short of it a metric is still gathering data
        (INSUFFICIENT). Never evidence of no harm on its own: that is ``within_tolerance``."""
        test = self._tests[spec.name]
        ok = test.events >= max(spec.min_events, 1)
        if isinstance(test, NormalMixtureSPRT):
            ok &= test.ready
        return np.asarray(ok)

    def _measured(self, spec: MetricSpec) -> BoolArray:
        """Valid data (a folded interval with requests on both arms; a gauge ready to judge) and
        ``min_events`` reached: what "nothing failed" needs before ``on_max_duration="promote"``
        may promote without evidence of no harm. NaN and empty intervals are never folded, so
        they never count."""
        test = self._tests[spec.name]
        if isinstance(test, RateRatioEProcess):
            ok = test.intervals > 0
        elif isinstance(test, NormalMixtureSPRT):
            ok = np.asarray(test.ready)
        else:
            ok = test.events > 0
        return np.asarray(ok & (test.events >= spec.min_events))

    def _state_arrays(
        self,
        now: float,
        step_started_at: ArrayLike,
        max_step_seconds: ArrayLike | None = None,
    ) -> dict[str, Any]:
        crit = [m for m in self.metrics if m.critical]
        ones = np.ones(self.batch, dtype=bool)
        elapsed = now - np.broadcast_to(np.asarray(step_started_at, dtype=np.float64), self.batch)
        limit = self.config.max_step_seconds if max_step_seconds is None else max_step_seconds
        maxed = (
            ~ones
            if limit is None
            else elapsed >= np.broadcast_to(np.asarray(limit, dtype=np.float64), self.batch)
        )
        return {
            "abort": np.any([t.rejected for t in self._tests.values()], axis=0)
            if self._tests
            else ~ones,
            "srm": self._srm.mismatch,
            "enough": np.all([self._enough(m) for m in crit], axis=0) if crit else ones,
            "within": np.all([self._tests[m.name].within_tolerance for m in crit], axis=0)
            if crit
            else ones,
            "measured": np.all([self._measured(m) for m in crit], axis=0) if crit else ones,
            "min_ok": elapsed >= self.config.min_step_seconds,
            "maxed": maxed,
            "warm": self.warming(now),
        }

    def decide(
        self,
        now: float,
        step_started_at: ArrayLike,
        *,
        max_step_seconds: ArrayLike | None = None,
    ) -> NDArray[np.str_]:
        """Decision per run: a string array of :class:`Decision` values (``== Decision.ABORT``).

        ``step_started_at`` (and ``max_step_seconds``, default the config's) may be one value for
        every run or one per run, for a batch of runs each at its own step."""
        s = self._state_arrays(now, step_started_at, max_step_seconds)
        out = np.full(self.batch, Decision.CONTINUE.value, dtype="<U16")
        out[~s["enough"]] = Decision.INSUFFICIENT.value
        # at the maximum duration without evidence of no harm: the inconclusive policy; promote
        # only when nothing failed and every critical metric was measured (see module docstring)
        promote_at_max = self.config.on_max_duration == "promote"
        at_max = np.where(
            s["measured"] & promote_at_max,
            Decision.PROMOTE_STEP.value,
            Decision.INCONCLUSIVE.value,
        )
        out = np.where(s["maxed"], at_max, out)
        # evidence of no harm promotes, at the maximum duration too
        out[s["min_ok"] & s["enough"] & s["within"]] = Decision.PROMOTE_STEP.value
        out[s["warm"]] = Decision.INSUFFICIENT.value
        out[s["srm"]] = Decision.INCONCLUSIVE.value
        out[s["abort"]] = Decision.ABORT.value
        return out

    def verdict(self, now: float, step_started_at: float, index: int = 0) -> PolicyVerdict:
        """The decision of run ``index`` with a reason a person can act on."""
        decision = Decision(str(self.decide(now, step_started_at)[index]))
        evidence = {name: self.evidence(name, index) for name in self._tests}
        srm = self._srm.evidence(index)
        reason = self._reason(decision, evidence, srm, now, step_started_at, index)
        return PolicyVerdict(decision, reason, evidence, srm)

    def evidence(self, name: str, index: int = 0) -> Evidence:
        """Metric ``name``'s evidence for run ``index``, in the units of the measured ratio.

        With a pod model the e-process runs on the canary's exposure scaled by ``r0'/r0``; its
        estimate and interval are scaled back (exact while the widening stays the same) and the
        details show the spread, the pods and the widened tolerance.
        """
        ev = self._tests[name].evidence(index)
        pods = self._pods.get(name)
        if pods is None:
            return ev
        c = float(pods.widened[index]) / pods.tolerance

        def back(v: float | None) -> float | None:
            return None if v is None else v * c

        d = ev.details
        widened = float(pods.widened[index])
        details = d.model_copy(
            update={
                **pods.details(index),
                "canary_exposure": float(pods.raw_canary_exposure[index]),
                "promote_tolerance": back(d.promote_tolerance),
                "alpha": self._alphas[name],
            }
        )
        rule = (
            f"{ev.rule}; pods as the sampling unit: tolerance {pods.tolerance:g} widened to "
            f"{widened:.4g} for a between-pod spread of {float(pods.details(index)['pod_spread'] or 0):.3g} "
            f"over {float(pods.details(index)['canary_pods'] or 0):.3g} canary pod(s), "
            f"{pods.alpha_draw + pods.alpha_spread:g} of the metric's alpha for the pod draw"
        )
        return ev.model_copy(
            update={
                "estimate": back(ev.estimate),
                "lower": back(ev.lower),
                "upper": back(ev.upper),
                "rule": rule,
                "details": details,
            }
        )

    def _reason(
        self,
        decision: Decision,
        evidence: Mapping[str, Evidence],
        srm: Evidence,
        now: float,
        step_started_at: float,
        index: int,
    ) -> str:
        elapsed = now - step_started_at
        crit = [m for m in self.metrics if m.critical]
        not_shown = [m.name for m in crit if not bool(self._tests[m.name].within_tolerance[index])]
        short = [m for m in crit if not bool(self._enough(m)[index])]
        if decision is Decision.ABORT:
            failing = sorted(
                (n for n, t in self._tests.items() if t.rejected[index]),
                key=lambda n: -float(self._tests[n].log_e_value[index]),
            )
            parts = []
            for n in failing:
                ev = evidence[n]
                known = ev.estimate is not None and math.isfinite(ev.estimate)
                est = f", estimated ratio {ev.estimate:.3g}" if known else ""
                tol = f"{self._spec(n).tolerance:g}"
                if ev.details.widened_tolerance is not None:
                    tol += f" widened to {ev.details.widened_tolerance:.4g} for pod spread"
                parts.append(
                    f"metric {n!r} rejected: e-value reached 1/alpha = "
                    f"{1 / self._test_alpha(n):g} (tolerance {tol}{est})"
                )
            return "; ".join(parts)
        if decision is Decision.INCONCLUSIVE and bool(self._srm.mismatch[index]):
            obs, exp = srm.details.observed_share, srm.details.expected_share
            return (
                f"sample-ratio mismatch: the canary received {100 * (obs or 0):.2f}% of requests "
                f"against {100 * (exp or 0):.2f}% configured, shown below "
                f"{srm.details.loss_ratio or 0:g} of its share (gross loss); its metrics do not "
                f"describe the traffic it was routed"
            )
        if decision is Decision.INSUFFICIENT and bool(self.warming(now)[index]):
            if self.in_warmup(now):
                return f"warm-up: intervals before {self.config.warmup_seconds:g} s are excluded"
            return (
                f"warm-up: the canary has served {self._warm_requests[index]:g} of "
                f"{self.config.warmup_events:g} requests; intervals until then are excluded"
            )
        if decision is Decision.INSUFFICIENT:
            return "not enough data yet: " + ", ".join(
                f"{m.name!r} has {self._tests[m.name].events[index]:g} of "
                f"{max(m.min_events, 1)} events"
                for m in short
            )
        if decision is Decision.INCONCLUSIVE:
            missing = self.holding(index)
            return (
                f"step reached its maximum duration ({self.config.max_step_seconds:g} s) without "
                f"showing {', '.join(map(repr, missing))} within tolerance; paused for a person"
            )
        if decision is Decision.PROMOTE_STEP and not_shown:
            return (
                f"WARNING: promoted at the step's maximum duration "
                f"({self.config.max_step_seconds:g} s) without showing "
                f"{', '.join(map(repr, not_shown))} within tolerance (on_max_duration promote: "
                "evidence of no harm was not reached, but nothing failed)"
            )
        if decision is Decision.PROMOTE_STEP:
            return f"after {elapsed:g} s every critical metric is shown within tolerance" + (
                "" if crit else " (no critical metrics: promotion on time alone)"
            )
        if elapsed < self.config.min_step_seconds:
            return (
                f"waiting for the step's minimum duration "
                f"({elapsed:g} of {self.config.min_step_seconds:g} s)"
            )
        return "evidence so far decides nothing; not yet within tolerance: " + ", ".join(
            f"{n!r} (upper bound {self._upper(evidence[n])} vs {self._promote_bar(n, index):g})"
            for n in not_shown
        )

    @staticmethod
    def _upper(ev: Evidence) -> str:
        return "unknown" if ev.interval is None else f"{ev.interval[1]:.3g}"

    def _promote_bar(self, name: str, index: int = 0) -> float:
        spec = self._spec(name)
        bar = spec.tolerance if spec.promote_tolerance is None else spec.promote_tolerance
        pods = self._pods.get(name)
        return bar if pods is None else bar * float(pods.widened[index]) / pods.tolerance

    def _spec(self, name: str) -> MetricSpec:
        return next(m for m in self.metrics if m.name == name)

    def to_state(self) -> dict[str, Any]:
        """JSON-able state (batch == 1) of every metric's evidence, for Kubernetes status."""
        if self.batch != 1:
            raise ValueError("to_state is for a single run (batch == 1)")
        return {
            "version": STATE_VERSION,
            "kind": "rollout-analysis",
            "t0": self.t0,
            "alphas": dict(self._alphas),
            "metrics": {name: self._metric_state(name) for name in self._tests},
            "sample_ratio": self._srm.to_state(),
            "warmup_requests": float(self._warm_requests[0]),
        }

    def _metric_state(self, name: str) -> dict[str, Any]:
        """A metric's e-process state, with its pod model's inside (``pods``) so that callers
        that keep metrics' states one by one keep it too."""
        state = self._tests[name].to_state()
        pods = self._pods.get(name)
        return state if pods is None else {**state, "pods": pods.to_state()}

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], metrics: Sequence[MetricSpec], config: PolicyConfig
    ) -> Self:
        """Resume from :meth:`to_state`; the metric set must be the one the state was built with."""
        if state.get("version") != STATE_VERSION or state.get("kind") != "rollout-analysis":
            raise ValueError("not a rollout-analysis state of a known version")
        t0 = state.get("t0")
        obj = cls(metrics, config, t0=None if t0 is None else float(t0))
        saved = {str(k): float(v) for k, v in state["alphas"].items()}
        if saved != obj._alphas:
            raise ValueError(
                "the metrics or their alphas changed since this state was saved "
                f"(saved {saved}, now {obj._alphas}); evidence cannot carry over"
            )
        obj._tests = {m.name: _restore(m, state["metrics"][m.name]) for m in obj.metrics}
        obj._srm = SampleRatioCheck.from_state(state["sample_ratio"])
        for name, pods in obj._pods.items():
            saved_pods = state["metrics"][name].get("pods")
            if isinstance(saved_pods, Mapping):
                pods.restore(dict(saved_pods))
        obj._warm_requests[0] = float(state.get("warmup_requests", 0.0))
        return obj


def _pod_tolerance(spec: MetricSpec, alpha: float, batch: int) -> PodTolerance:
    assert spec.canary_pods is not None
    return PodTolerance(
        tolerance=spec.tolerance,
        alpha=alpha,
        batch=batch,
        canary_pods=spec.canary_pods,
        spread=spec.pod_spread,
        share=spec.pod_alpha_share,
    )


def _mask(item: IntervalData, cold: BoolArray) -> IntervalData:
    """The interval with the runs still in warm-up made missing (NaN: never folded)."""

    def m(x: ArrayLike) -> FloatArray:
        a = np.array(x, dtype=np.float64)
        if a.ndim == 0:
            a = np.full(cold.shape, float(a))
        a[cold] = np.nan
        return a

    if isinstance(item, CountsInterval):
        return CountsInterval(
            m(item.canary_events),
            m(item.canary_total),
            m(item.baseline_events),
            m(item.baseline_total),
            canary_pod_total=item.canary_pod_total,  # the pod count, for the runs still judged
        )
    if isinstance(item, HistogramInterval):
        return HistogramInterval(m(item.canary_buckets), m(item.baseline_buckets))
    return GaugeInterval(m(item.canary), m(item.baseline))
