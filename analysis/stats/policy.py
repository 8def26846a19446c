"""The rollout-wide error budget: which metric may abort, when a step may promote.

Why one e-process per metric for the whole rollout: every look, pause, extension and step of a
rollout is then covered by one Ville bound, so ``P(false abort) <= alpha_m`` per metric and
``<= alpha`` per rollout (Bonferroni across metrics, valid under any dependence between them).
Steps never reset evidence; a step only decides *when* it is allowed to promote.

Decision precedence per run: ABORT (any metric's e-value reached ``1/alpha_m``; the count tests
condition on the observed split, so they stay valid even under a sample-ratio mismatch) >
INCONCLUSIVE (sample-ratio mismatch) > INSUFFICIENT during warm-up > PROMOTE_STEP > at the step's
maximum duration ``on_max_duration`` ("promote" with a warning, or "pause" = INCONCLUSIVE) >
INSUFFICIENT (a critical metric has fewer than ``max(min_events, 1)`` events) > CONTINUE.
A critical metric with no valid data never promotes, not even at the maximum duration.

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
)
from analysis.stats.evidence import Evidence
from analysis.stats.histogram import HistogramEProcess
from analysis.stats.msprt import NormalMixtureSPRT
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
    """One interval's increments of an event counter and its exposure (usually requests)."""

    canary_events: ArrayLike
    canary_total: ArrayLike
    baseline_events: ArrayLike
    baseline_total: ArrayLike


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
    ``latency_increase`` (histograms) tolerates latency growing by that fraction (0.1: 10%):
    the baseline is read at ``edge/(1+x)`` and ``tolerance`` is then the ratio there (1 exact;
    see :mod:`analysis.stats.histogram`).
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
    latency_increase: float | None = None

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


@dataclass(frozen=True)
class PolicyConfig:
    """Rollout-wide knobs of the decision rule."""

    alpha: float = 0.05
    warmup_seconds: float = 0.0
    min_step_seconds: float = 60.0
    max_step_seconds: float | None = None
    on_max_duration: Literal["promote", "pause"] = "pause"
    srm_alpha: float = 0.001

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
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
        self._tests: dict[str, SequentialTest] = {
            m.name: _build(m, self._alphas[m.name], self.batch) for m in self.metrics
        }
        self._srm = SampleRatioCheck(alpha=config.srm_alpha, batch=self.batch)

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
        """Whether an interval ending at ``t`` lies in the warm-up (before any data, everything)."""
        if self.t0 is None:
            return True
        return self.config.warmup_seconds > 0 and t <= self.t0 + self.config.warmup_seconds

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
        if self.in_warmup(t):
            return
        for spec in self.metrics:
            item = data.get(spec.name)
            if item is None:
                continue
            test = self._tests[spec.name]
            if isinstance(test, RateRatioEProcess) and isinstance(item, CountsInterval):
                test.update(
                    item.canary_events, item.canary_total, item.baseline_events, item.baseline_total
                )
            elif isinstance(test, HistogramEProcess) and isinstance(item, HistogramInterval):
                test.update(item.canary_buckets, item.baseline_buckets)
            elif isinstance(test, NormalMixtureSPRT) and isinstance(item, GaugeInterval):
                test.update(item.canary, item.baseline)
            else:
                raise TypeError(
                    f"metric {spec.name!r} is a {spec.kind} metric; got {type(item).__name__}"
                )
        if expected_canary_share is not None:
            split = requests if requests is not None else self._requests_from(data)
            if split is not None:
                self._srm.update(split[0], split[1], expected_canary_share)

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
        test = self._tests[spec.name]
        ok = test.events >= max(spec.min_events, 1)
        if isinstance(test, NormalMixtureSPRT):
            ok &= test.ready
        return np.asarray(ok)

    def _state_arrays(self, now: float, step_started_at: float) -> dict[str, Any]:
        crit = [m for m in self.metrics if m.critical]
        ones = np.ones(self.batch, dtype=bool)
        elapsed = now - step_started_at
        maxed = self.config.max_step_seconds is not None and elapsed >= self.config.max_step_seconds
        return {
            "abort": np.any([t.rejected for t in self._tests.values()], axis=0)
            if self._tests
            else ~ones,
            "srm": self._srm.mismatch,
            "enough": np.all([self._enough(m) for m in crit], axis=0) if crit else ones,
            "within": np.all([self._tests[m.name].within_tolerance for m in crit], axis=0)
            if crit
            else ones,
            "min_ok": elapsed >= self.config.min_step_seconds,
            "maxed": maxed,
            "warm": self.in_warmup(now),
        }

    def decide(self, now: float, step_started_at: float) -> NDArray[np.str_]:
        """Decision per run: a string array of :class:`Decision` values (``== Decision.ABORT``)."""
        s = self._state_arrays(now, step_started_at)
        out = np.full(self.batch, Decision.CONTINUE.value, dtype="<U16")
        out[~s["enough"]] = Decision.INSUFFICIENT.value
        if s["maxed"]:
            promote_at_max = self.config.on_max_duration == "promote"
            out[:] = np.where(
                s["enough"] & promote_at_max,
                Decision.PROMOTE_STEP.value,
                Decision.INCONCLUSIVE.value,
            )
        if s["min_ok"]:
            out[s["enough"] & s["within"]] = Decision.PROMOTE_STEP.value
        if s["warm"]:
            out[:] = Decision.INSUFFICIENT.value
        out[s["srm"]] = Decision.INCONCLUSIVE.value
        out[s["abort"]] = Decision.ABORT.value
        return out

    def verdict(self, now: float, step_started_at: float, index: int = 0) -> PolicyVerdict:
        """The decision of run ``index`` with a reason a person can act on."""
        decision = Decision(str(self.decide(now, step_started_at)[index]))
        evidence = {name: t.evidence(index) for name, t in self._tests.items()}
        srm = self._srm.evidence(index)
        reason = self._reason(decision, evidence, srm, now, step_started_at, index)
        return PolicyVerdict(decision, reason, evidence, srm)

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
                est = "" if ev.estimate is None else f", estimated ratio {ev.estimate:.3g}"
                parts.append(
                    f"metric {n!r} rejected: e-value reached 1/alpha = "
                    f"{1 / self._alphas[n]:g} (tolerance {self._spec(n).tolerance:g}{est})"
                )
            return "; ".join(parts)
        if decision is Decision.INCONCLUSIVE and bool(self._srm.mismatch[index]):
            obs, exp = srm.details.observed_share, srm.details.expected_share
            return (
                f"sample-ratio mismatch: the canary received {100 * (obs or 0):.2f}% of requests "
                f"against {100 * (exp or 0):.2f}% configured; comparisons are not trustworthy"
            )
        if decision is Decision.INSUFFICIENT and self.in_warmup(now):
            return f"warm-up: intervals before {self.config.warmup_seconds:g} s are excluded"
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
                f"{', '.join(map(repr, not_shown))} within tolerance"
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
            f"{n!r} (upper bound {self._upper(evidence[n])} vs {self._promote_bar(n):g})"
            for n in not_shown
        )

    @staticmethod
    def _upper(ev: Evidence) -> str:
        return "unknown" if ev.interval is None else f"{ev.interval[1]:.3g}"

    def _promote_bar(self, name: str) -> float:
        spec = self._spec(name)
        return spec.tolerance if spec.promote_tolerance is None else spec.promote_tolerance

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
            "metrics": {name: t.to_state() for name, t in self._tests.items()},
            "sample_ratio": self._srm.to_state(),
        }

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
        return obj
