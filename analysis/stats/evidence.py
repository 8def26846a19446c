"""The one record every statistical judgement reports in, from the statistics to the CLI.

Status, events, the CLI, the simulator and the benchmark all show *why* a decision was taken. They
can only do so uniformly, and without re-parsing one another's output, if every method
(sequential, Mann-Whitney, thresholds) fills in the same typed record and that very record is what
the AnalysisRun's status, the Rollout's status and the views carry. It is a pydantic model so that
the API models embed it as is (camelCase on the wire, documented in the CRD); it lives here, at the
bottom, because the statistics import nothing of the rest of the project.

E-values stay in log space (``log_e_value`` against ``log_threshold`` = log(1/alpha)) all the way:
exponentiating for status and taking the log again loses precision and overflows for strong
evidence. Only renderers call :meth:`Evidence.e_value`.
"""

from __future__ import annotations

import math
import numbers
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

# The wire conventions of the API models (analysis.api_conventions), repeated because the
# statistics may not import them: camelCase, unknown fields refused, frozen.
_CONFIG = ConfigDict(
    alias_generator=to_camel,
    populate_by_name=True,
    extra="forbid",
    frozen=True,
    use_attribute_docstrings=True,
)
_EXP_CAP = 700.0
"""exp(700) is near the largest float; a larger log e-value is shown as that."""


def _finite_or_none(value: Any) -> Any:
    """JSON (and so Kubernetes status) has no NaN or infinity: an undefined or unbounded number
    is absent. NumPy scalars become plain floats so the record dumps as JSON."""
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    out = float(value)
    return out if math.isfinite(out) else None


FiniteNumber = Annotated[float | None, BeforeValidator(_finite_or_none)]
"""A number as status carries it: absent when undefined (NaN) or unbounded (infinite)."""


class Outcome(StrEnum):
    """What a method concludes about one metric at one look.

    ``INSUFFICIENT`` is deliberately separate from ``CONTINUE``: "not enough valid data to say
    anything" (no traffic, NaN, gaps) must never be mistaken for "data says keep going", and it must
    never promote.
    """

    REJECT = "reject"  # canary worse than tolerated: abort
    ACCEPT = "accept"  # canary shown to be within tolerance: may promote
    CONTINUE = "continue"  # evidence so far decides nothing; keep looking
    INSUFFICIENT = "insufficient"  # not enough valid data to judge at all


def sequential_outcome(*, rejected: bool, has_data: bool, within: bool) -> Outcome:
    """The read-out every e-process shares: a rejection is final, no data judges nothing, and
    otherwise the confidence sequence either shows the canary within tolerance or not yet."""
    if rejected:
        return Outcome.REJECT
    if not has_data:
        return Outcome.INSUFFICIENT
    return Outcome.ACCEPT if within else Outcome.CONTINUE


class EdgeEvidence(BaseModel):
    """One latency edge of a histogram comparison: the exceedance e-process at that edge.

    The counts are cumulative over the whole analysis (the e-process never resets), so the
    difference between two looks is exactly what the test saw in between."""

    model_config = _CONFIG

    edge: float
    """The bucket bound (seconds): requests slower than this count as events."""
    baseline_point: FiniteNumber = None
    """Latency tolerance: the canary's slow requests are compared with the baseline's above this
    point, the edge divided by 1 + the tolerated increase; absent: at the edge."""
    tolerance: FiniteNumber = None
    """Latency tolerance: the ratio of slow-request rates at the edge that stands for the baseline
    at ``baselinePoint``, frozen before the rollout from the slope of the baseline's tail; absent:
    the baseline's count at ``baselinePoint`` is interpolated within its bucket each interval."""
    log_e_value: FiniteNumber = None
    """Natural log of this edge's e-value."""
    upper: FiniteNumber = None
    """Upper confidence bound on the canary/baseline ratio of slow-request rates (absent: none
    yet)."""
    canary_slow: float = 0.0
    """Canary requests slower than the edge."""
    canary_requests: float = 0.0
    """Canary requests counted at this edge."""
    baseline_slow: float = 0.0
    """Baseline (stable) requests slower than the edge."""
    baseline_requests: float = 0.0
    """Baseline requests counted at this edge."""


class EvidenceDetails(BaseModel):
    """The method's own numbers behind a verdict, for a person auditing it. Each method fills the
    fields that apply to it; the rest stay absent."""

    model_config = _CONFIG

    tolerance: FiniteNumber = None
    """The tolerated canary/baseline ratio (sequential tests)."""
    promote_tolerance: FiniteNumber = None
    """Rate ratio the canary must be shown below to promote (rate-ratio tests)."""
    alpha: FiniteNumber = None
    """The metric's share of the Rollout's error budget."""
    canary_events: FiniteNumber = None
    """Rate-ratio tests: canary events (errors) so far."""
    canary_exposure: FiniteNumber = None
    """Rate-ratio tests: canary requests so far."""
    baseline_events: FiniteNumber = None
    """Rate-ratio tests: baseline events (errors) so far."""
    baseline_exposure: FiniteNumber = None
    """Rate-ratio tests: baseline requests so far."""
    intervals: FiniteNumber = None
    """Rate-ratio tests: measurement windows folded in."""
    accept_log_e_value: FiniteNumber = None
    """Rate-ratio tests: log e-value for "within tolerance" (promotion)."""
    sigma: FiniteNumber = None
    """Normal-mixture tests: standard deviation of the log ratios."""
    tau: FiniteNumber = None
    """Normal-mixture tests: mixture scale."""
    observations: FiniteNumber = None
    """Normal-mixture tests: paired windows folded in."""
    observed_share: FiniteNumber = None
    """Sample-ratio check: the canary's share of requests."""
    expected_share: FiniteNumber = None
    """Sample-ratio check: the share the weights asked for."""
    loss_ratio: FiniteNumber = None
    """Sample-ratio check: the canary pauses the rollout only when shown to receive less than this
    fraction of the share the weights asked for (gross loss)."""
    pod_spread: FiniteNumber = None
    """Rate-ratio tests with pods as the sampling unit: the between-pod spread (sd of log event
    rates) the tolerance was widened by; an upper confidence bound when estimated."""
    pod_spread_estimate: FiniteNumber = None
    """Rate-ratio tests: the point estimate of the spread from the baseline's pods (absent when
    declared or not yet estimated)."""
    pod_spread_estimated: bool | None = None
    """Rate-ratio tests: True when the spread comes from the baseline's per-pod counts, False when
    it is the declared (or default) one."""
    canary_pods: FiniteNumber = None
    """Rate-ratio tests: the (traffic-weighted) number of canary pods judged."""
    baseline_pods: FiniteNumber = None
    """Rate-ratio tests: the baseline pods the spread was estimated from."""
    widened_tolerance: FiniteNumber = None
    """Rate-ratio tests: the tolerance actually tested, widened by the pod spread."""
    latency_increase: FiniteNumber = None
    """Histogram tests: the tolerated relative latency increase (0.1 = 10%); absent when the
    tolerance is a ratio of slow-request rates."""
    deciding_edge: FiniteNumber = None
    """Histogram tests: the latency edge (seconds) the verdict rests on."""
    edges: list[EdgeEvidence] = Field(default_factory=list)
    """Histogram tests: every edge's e-process."""
    n_control: FiniteNumber = None
    """Mann-Whitney: baseline points."""
    n_experiment: FiniteNumber = None
    """Mann-Whitney: canary points."""
    confidence: FiniteNumber = None
    """Mann-Whitney: confidence level of the interval."""
    p_value: FiniteNumber = None
    """Mann-Whitney: two-sided p-value of the U test."""
    effect_size: FiniteNumber = None
    """Mann-Whitney: the canary/baseline mean ratio the label's gate compares."""
    min: FiniteNumber = None
    """Thresholds: the lower bound."""
    max: FiniteNumber = None
    """Thresholds: the upper bound."""
    count: FiniteNumber = None
    """Thresholds: measurements taken."""
    successful: FiniteNumber = None
    """Thresholds: measurements inside the bounds."""
    failed: FiniteNumber = None
    """Thresholds: measurements outside the bounds."""
    inconclusive: FiniteNumber = None
    """Thresholds: measurements without a value."""
    errors: FiniteNumber = None
    """Thresholds: measurements whose query failed."""
    consecutive_errors: FiniteNumber = None
    """Thresholds: query failures in a row, up to now."""
    checks: FiniteNumber = None
    """Flagger-style thresholds: checks made."""
    failed_checks: FiniteNumber = None
    """Flagger-style thresholds: checks outside the bounds or without a value."""


class Evidence(BaseModel):
    """Everything a person needs to audit one verdict.

    Sequential tests report ``log_e_value`` against ``log_threshold``; the other methods report
    their ``statistic`` (Mann-Whitney U, the measured value) against ``threshold``. ``rule`` says
    how the two are compared.
    """

    model_config = _CONFIG

    method: str
    """sequential-rate-ratio, sequential-histogram-exceedance, sequential-normal-mixture,
    mann-whitney, argo-threshold, ..."""
    outcome: Outcome
    """reject, accept, continue or insufficient (not enough valid data to judge)."""
    estimate: FiniteNumber = None
    """Canary/baseline ratio (compare) or the last value (threshold). Under a latency tolerance,
    the deciding edge's ratio against the stable pods stretched by the tolerance (1: at the
    tolerance)."""
    lower: FiniteNumber = None
    """Lower end of the confidence interval (sequence) on the estimate."""
    upper: FiniteNumber = None
    """Upper end of the confidence interval (sequence); absent when unbounded so far."""
    log_e_value: FiniteNumber = None
    """Sequential tests: natural log of the e-value, the evidence against "within tolerance"."""
    log_threshold: FiniteNumber = None
    """Sequential tests: natural log of 1/alpha; the metric fails when logEValue reaches it."""
    statistic: FiniteNumber = None
    """Other methods: their statistic (Mann-Whitney U, the measured value)."""
    threshold: FiniteNumber = None
    """Other methods: the bound the statistic is compared with."""
    events: int = 0
    """Events (errors, requests, observations) behind the evidence."""
    rule: str = ""
    """The decision rule, in words."""
    approximate: bool = False
    """True when the method's error guarantee is only approximate."""
    details: EvidenceDetails = Field(default_factory=EvidenceDetails)

    @model_validator(mode="before")
    @classmethod
    def _read_legacy(cls, data: Any) -> Any:
        """Read the untyped form earlier versions wrote into AnalysisRun status (``interval`` as a
        pair; a sequential test's log e-value and log threshold in ``statistic`` and
        ``threshold``; snake_case ``details``), so runs recorded before an upgrade still load."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        interval = out.pop("interval", None)
        if isinstance(interval, list | tuple) and len(interval) == 2:
            out.setdefault("lower", interval[0])
            out.setdefault("upper", interval[1])
        logs = {"logEValue", "log_e_value", "logThreshold", "log_threshold"}
        if str(out.get("method", "")).startswith("sequential") and not logs & set(out):
            out["log_e_value"] = out.pop("statistic", None)
            out["log_threshold"] = out.pop("threshold", None)
        details = out.get("details")
        if isinstance(details, dict) and not set(details) <= _DETAIL_KEYS:
            # per-edge keys (edge_0.25_log_e_value) and renamed counters have no field now
            legacy = {"error": "errors", "consecutive_error": "consecutive_errors"}
            renamed = {legacy.get(k, k): v for k, v in details.items()}
            out["details"] = {k: v for k, v in renamed.items() if k in _DETAIL_KEYS}
        return out

    @property
    def interval(self) -> tuple[float, float] | None:
        """The confidence interval with its open ends as infinities, for arithmetic."""
        if self.lower is None and self.upper is None:
            return None
        lo = -math.inf if self.lower is None else self.lower
        return lo, math.inf if self.upper is None else self.upper

    def e_value(self) -> float | None:
        """The e-value for display (capped where exp overflows); never store it."""
        return None if self.log_e_value is None else _exp(self.log_e_value)

    def e_threshold(self) -> float | None:
        """1/alpha for display."""
        return None if self.log_threshold is None else _exp(self.log_threshold)

    def crossed(self) -> bool:
        """Whether the e-value reached its threshold (compared in log space)."""
        return (
            self.log_e_value is not None
            and self.log_threshold is not None
            and self.log_e_value >= self.log_threshold
        )


def _exp(x: float) -> float:
    return math.exp(min(x, _EXP_CAP))


_DETAIL_KEYS = frozenset(
    [*EvidenceDetails.model_fields]
    + [f.alias for f in EvidenceDetails.model_fields.values() if f.alias is not None]
)
