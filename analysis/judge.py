"""One metric's verdict from its measurements, and a run's verdict from its metrics' verdicts.

Three judgements, one vocabulary (``MetricVerdict``: an AnalysisRun phase, the method's
``Evidence`` and a message a person can act on):

* ``compare`` with ``method: sequential``: the rollout-wide e-processes of
  :class:`analysis.stats.policy.RolloutAnalysis` decide; this module only maps their evidence to a
  metric phase (REJECT is Failed; nothing else ends a metric, the run's policy decides when a step
  has seen enough).
* ``compare`` with ``method: mann-whitney``: Kayenta's classifier on the per-measurement values of
  both arms, once, at the end of the metric's horizon (it is a fixed-horizon test: judging it at
  every look would inflate its false alarms, which is the flaw the sequential tests fix).
* ``threshold``: Argo Rollouts' semantics (``failureLimit``, ``inconclusiveLimit``,
  ``consecutiveErrorLimit``, ``count``), with the number of events behind the last value.

Missing data is never success: a ``NoData`` measurement is Inconclusive for a threshold (as Argo
judges a NaN against both conditions), adds nothing to a sequential e-process, and is left out of a
Mann-Whitney sample. A provider error is an Error measurement that counts toward
``consecutiveErrorLimit`` for every kind of judgement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from analysis.stats.evidence import Evidence, Outcome
from analysis.stats.mann_whitney import Direction, classify_metric
from analysis.stats.thresholds import MeasurementPhase, argo_evidence, argo_measurement_phase

RunPhase = Literal["Pending", "Running", "Successful", "Failed", "Inconclusive", "Error"]
FINAL_PHASES: frozenset[str] = frozenset({"Successful", "Failed", "Inconclusive", "Error"})

#: Kayenta's default tolerance band (a fraction of |estimate|) for the Mann-Whitney classifier.
KAYENTA_TOLERANCE = 0.25
#: Kayenta's default confidence of the interval on the shift.
KAYENTA_CONFIDENCE = 0.98


@dataclass(frozen=True)
class Tally:
    """Argo's per-metric counters (``MetricResult``): completed measurements by phase, and errors.

    ``count`` counts completed (non-Error) measurements; an Error measurement increments
    ``errors`` and ``consecutive_errors``, and any completed measurement resets the latter.
    """

    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    errors: int = 0
    consecutive_errors: int = 0

    def add(self, phase: MeasurementPhase) -> Tally:
        if phase is MeasurementPhase.ERROR:
            return replace(
                self, errors=self.errors + 1, consecutive_errors=self.consecutive_errors + 1
            )
        return replace(
            self,
            count=self.count + 1,
            successful=self.successful + (phase is MeasurementPhase.SUCCESSFUL),
            failed=self.failed + (phase is MeasurementPhase.FAILED),
            inconclusive=self.inconclusive + (phase is MeasurementPhase.INCONCLUSIVE),
            consecutive_errors=0,
        )


@dataclass(frozen=True)
class MetricVerdict:
    """A metric's phase now, the evidence behind it, and why (empty while nothing is wrong)."""

    phase: RunPhase
    evidence: Evidence | None = None
    message: str = ""


@dataclass(frozen=True)
class ThresholdRule:
    """Argo's threshold judgement: ``min <= value <= max`` per measurement, with limits."""

    min: float | None = None
    max: float | None = None
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4
    count: int | None = None


def threshold_measurement(
    rule: ThresholdRule, value: float | None, error: bool
) -> MeasurementPhase:
    """One measurement's phase: Error when the query failed, else Argo's two-condition rule (a
    missing value satisfies neither condition, so it is Inconclusive, never Successful)."""
    if error:
        return MeasurementPhase.ERROR
    return argo_measurement_phase(value, min=rule.min, max=rule.max, conditions="both")


def _range(lo: float | None, hi: float | None) -> str:
    return ("(-inf" if lo is None else f"[{lo:g}") + ", " + ("+inf)" if hi is None else f"{hi:g}]")


def judge_threshold(
    name: str,
    rule: ThresholdRule,
    tally: Tally,
    last_value: float | None = None,
    events: int | None = None,
    horizon_reached: bool = False,
) -> MetricVerdict:
    """Argo's ``assessMetricStatus``: Failed over ``failureLimit``, Inconclusive over
    ``inconclusiveLimit``, Error over ``consecutiveErrorLimit`` (a later check overriding an
    earlier one, as in Argo), else Successful after ``count`` measurements (or when the metric's
    ``duration`` has passed: ``horizon_reached``), else Running."""
    phase: RunPhase = "Running"
    message = ""
    if tally.failed > rule.failure_limit:
        phase = "Failed"
        message = (
            f"metric {name!r}: {tally.failed} measurements outside {_range(rule.min, rule.max)} "
            f"(failureLimit {rule.failure_limit})"
        )
    if tally.inconclusive > rule.inconclusive_limit:
        phase = "Inconclusive"
        message = (
            f"metric {name!r}: {tally.inconclusive} measurements without a value "
            f"(inconclusiveLimit {rule.inconclusive_limit})"
        )
    if tally.consecutive_errors > rule.consecutive_error_limit:
        phase = "Error"
        message = (
            f"metric {name!r}: {tally.consecutive_errors} consecutive measurement errors "
            f"(consecutiveErrorLimit {rule.consecutive_error_limit})"
        )
    done = horizon_reached or (rule.count is not None and tally.count >= rule.count)
    if phase == "Running" and done:
        phase = "Successful"
    if last_value is not None and message:
        message += f"; last value {last_value:g}"
    if events is not None and message:
        message += f" from {events} events"
    outcome = {
        "Running": Outcome.CONTINUE,
        "Successful": Outcome.ACCEPT,
        "Failed": Outcome.REJECT,
        "Inconclusive": Outcome.INSUFFICIENT,
        "Error": Outcome.INSUFFICIENT,
        "Pending": Outcome.INSUFFICIENT,
    }[phase]
    rule_text = (
        f"each value must lie in {_range(rule.min, rule.max)}; fail after more than "
        f"{rule.failure_limit} outside, inconclusive after more than {rule.inconclusive_limit} "
        f"without a value, error after more than {rule.consecutive_error_limit} consecutive "
        "query errors" + ("" if rule.count is None else f"; succeed after {rule.count}")
    )
    counted = (
        tally.count,
        tally.successful,
        tally.failed,
        tally.inconclusive,
        tally.errors,
        tally.consecutive_errors,
    )
    evidence = argo_evidence(outcome, last_value, events, rule_text, rule.min, rule.max, counted)
    return MetricVerdict(phase, evidence, message)


def judge_mann_whitney(
    name: str,
    canary: Sequence[float],
    baseline: Sequence[float],
    *,
    direction: Direction,
    tolerance: float,
    horizon_reached: bool,
    critical: bool = True,
) -> MetricVerdict:
    """Kayenta's classifier, applied once the metric's horizon is reached.

    The mean-ratio gate of a High (Low) label is the metric's ``tolerance`` (``1/tolerance``): a
    shift the interval proves but that stays within the tolerated ratio does not fail the canary,
    which is what ``tolerance`` means for the sequential tests too.
    """
    if not horizon_reached:
        return MetricVerdict(
            "Running",
            Evidence(
                method="mann-whitney",
                outcome=Outcome.CONTINUE,
                events=len(canary) + len(baseline),
                rule="judged once, at the end of the metric's count or duration",
            ),
        )
    c = classify_metric(
        baseline,
        canary,
        direction=direction,
        confidence=KAYENTA_CONFIDENCE,
        tolerance=KAYENTA_TOLERANCE,
        allowed_increase=tolerance,
        allowed_decrease=1.0 / tolerance,
        critical=critical,
    )
    if c.label in ("High", "Low"):
        return MetricVerdict(
            "Failed", c.evidence, f"metric {name!r}: Mann-Whitney says {c.label}: {c.reason}"
        )
    if c.label == "Pass":
        return MetricVerdict("Successful", c.evidence)
    return MetricVerdict(
        "Inconclusive", c.evidence, f"metric {name!r}: insufficient evidence ({c.reason})"
    )


def judge_sequential(name: str, evidence: Evidence) -> MetricVerdict:
    """A sequential metric's own phase: Failed once its e-value crossed 1/alpha, else Running
    (the run's policy, not the metric, decides when a step has seen enough to promote)."""
    if evidence.outcome is Outcome.REJECT:
        return MetricVerdict("Failed", evidence, f"metric {name!r} failed: {describe(evidence)}")
    return MetricVerdict("Running", evidence)


def describe(evidence: Evidence) -> str:
    """The evidence in one line for status.message and events: estimate, interval, e-value."""
    parts = []
    if evidence.estimate is not None:
        parts.append(f"estimate {evidence.estimate:.3g}")
    if evidence.interval is not None:
        lo, hi = evidence.interval
        parts.append(f"interval [{lo:.3g}, {hi:.3g}]")
    e, bar = evidence.e_value(), evidence.e_threshold()
    if e is not None and bar is not None:
        parts.append(
            f"e-value {e:.3g} >= {bar:.3g}"
            if evidence.crossed()
            else f"e-value {e:.3g} < {bar:.3g}"
        )
    elif evidence.statistic is not None:
        parts.append(f"statistic {evidence.statistic:.3g}")
    parts.append(f"{evidence.events} events")
    return ", ".join(parts)


def combine(verdicts: Mapping[str, MetricVerdict], dry_run: frozenset[str]) -> tuple[RunPhase, str]:
    """A run's phase from its metrics', as Argo combines them: the worst gating metric wins
    (Failed > Error > Inconclusive > Running > Successful); dry-run metrics never gate."""
    gating = {n: v for n, v in verdicts.items() if n not in dry_run}
    ranks: tuple[RunPhase, ...] = ("Failed", "Error", "Inconclusive")
    for rank in ranks:
        bad = [v.message or f"metric {n!r}: {rank}" for n, v in gating.items() if v.phase == rank]
        if bad:
            return rank, "; ".join(bad)
    if any(v.phase in ("Running", "Pending") for v in gating.values()):
        return "Running", ""
    return "Successful", ""
