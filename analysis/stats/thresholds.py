"""Absolute bounds judged the way Argo Rollouts and Flagger judge them, and honest about noise.

These are the gates most teams run today: a value per interval compared with a fixed bound, with a
count of failures tolerated. Sluice offers them for users who ask for them and as comparators in
the benchmark, so their semantics follow the published behaviour of each tool (read from their
controllers' source):

* Argo Rollouts (``analysis/controller.go``): every completed measurement is Successful, Failed or
  Inconclusive and increments ``count``; an Error measurement (the query itself failed) does not
  increment ``count`` but increments ``consecutiveError``, which any completed measurement resets.
  After each measurement the metric is Failed if ``failed > failureLimit``, Inconclusive if
  ``inconclusive > inconclusiveLimit``, Error if ``consecutiveError > consecutiveErrorLimit``
  (checked in that order, a later one overriding), and otherwise Successful once ``count``
  measurements are done. The measurement's phase comes from ``successCondition`` and
  ``failureCondition``: with only a success condition anything not successful fails (a NaN
  included, since every comparison with NaN is false); with both, a value that satisfies neither
  (NaN) is Inconclusive.
* Flagger (``pkg/controller/scheduler.go``, ``scheduler_metrics.go``): each interval, a check
  fails when the value is below ``thresholdRange.min`` or above ``max`` (bounds inclusive), or when
  the query returns no value (Prometheus NaN is reported as "no values found", which halts
  advancement and counts as a failed check). Failed checks accumulate over the analysis (they
  need not be consecutive), and the canary is rolled back once ``failedChecks >= threshold``.
  Flagger notices that at the start of its *next* scheduler run, one interval later; the judges
  here report the tick of the deciding check, so add one interval to model Flagger's reaction.

What Sluice adds is the number of events behind each value in the evidence: a 1% bound judged on
40 requests says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from analysis.stats.evidence import Evidence, EvidenceDetails, Outcome

Conditions = Literal["both", "success", "failure"]

ARGO_METHOD = "argo-threshold"
FLAGGER_METHOD = "flagger-threshold"


class MeasurementPhase(StrEnum):
    """Argo's phase of one measurement (``AnalysisPhase`` values for a measurement)."""

    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


class RunPhase(StrEnum):
    """Phase of a whole run of checks of one metric (Argo's metric phase; Flagger maps onto it)."""

    RUNNING = "Running"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


_OUTCOME = {
    RunPhase.RUNNING: Outcome.CONTINUE,
    RunPhase.SUCCESSFUL: Outcome.ACCEPT,
    RunPhase.FAILED: Outcome.REJECT,
    RunPhase.INCONCLUSIVE: Outcome.INSUFFICIENT,
    RunPhase.ERROR: Outcome.INSUFFICIENT,
}


@dataclass(frozen=True)
class ArgoCounts:
    """Argo's per-metric tallies (``MetricResult.count/successful/failed/...``)."""

    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0


def _range_text(lo: float | None, hi: float | None) -> str:
    left = "(-inf" if lo is None else f"[{lo:g}"
    right = "+inf)" if hi is None else f"{hi:g}]"
    return f"{left}, {right}"


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def _inside(value: float, lo: float | None, hi: float | None) -> bool:
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _check_bounds(lo: float | None, hi: float | None) -> None:
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"min {lo} is above max {hi}")


def _noise_note(events: int | None) -> str:
    return "" if events is None else f"; the last value rests on {events} events"


def argo_measurement_phase(
    value: float | None,
    *,
    min: float | None = None,
    max: float | None = None,
    conditions: Conditions = "both",
) -> MeasurementPhase:
    """How Argo judges one value against ``min <= result <= max`` (see module docstring)."""
    if value is None or math.isnan(value):
        inside = outside = False  # every comparison with NaN is false
    else:
        inside = _inside(value, min, max)
        outside = not inside
    if conditions == "success":
        return MeasurementPhase.SUCCESSFUL if inside else MeasurementPhase.FAILED
    if conditions == "failure":
        return MeasurementPhase.FAILED if outside else MeasurementPhase.SUCCESSFUL
    if outside:
        return MeasurementPhase.FAILED
    return MeasurementPhase.SUCCESSFUL if inside else MeasurementPhase.INCONCLUSIVE


class ArgoThresholdJudge:
    """One Argo Rollouts metric with ``successCondition: min <= result <= max``.

    ``conditions`` picks which of Argo's conditions the bounds are written as: ``"both"`` (success
    inside, failure outside, so NaN is Inconclusive), ``"success"`` only (anything not inside,
    NaN included, is Failed) or ``"failure"`` only (anything not outside, NaN included, is
    Successful). The run ends Failed when failed measurements exceed ``failure_limit``,
    Inconclusive when inconclusive ones exceed ``inconclusive_limit``, Error when consecutive
    errors exceed ``consecutive_error_limit``, and Successful after ``count`` measurements
    (``None``: runs until stopped, as Argo does without ``count``).
    """

    def __init__(
        self,
        *,
        min: float | None = None,
        max: float | None = None,
        failure_limit: int = 0,
        inconclusive_limit: int = 0,
        consecutive_error_limit: int = 4,
        count: int | None = None,
        conditions: Conditions = "both",
    ) -> None:
        _check_bounds(min, max)
        if failure_limit < 0 or inconclusive_limit < 0 or consecutive_error_limit < 0:
            raise ValueError("limits must be non-negative")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1")
        self.min = min
        self.max = max
        self.failure_limit = failure_limit
        self.inconclusive_limit = inconclusive_limit
        self.consecutive_error_limit = consecutive_error_limit
        self.count = count
        self.conditions: Conditions = conditions
        self._counts = ArgoCounts()
        self._phase = RunPhase.RUNNING
        self._last_value: float | None = None
        self._last_events: int | None = None

    @property
    def phase(self) -> RunPhase:
        """The run's phase after the measurements seen so far."""
        return self._phase

    @property
    def counts(self) -> ArgoCounts:
        """Tallies so far, as Argo reports them in ``MetricResult``."""
        return self._counts

    def _assess(self) -> RunPhase:
        c = self._counts
        phase = RunPhase.RUNNING
        if c.failed > self.failure_limit:
            phase = RunPhase.FAILED
        if c.inconclusive > self.inconclusive_limit:
            phase = RunPhase.INCONCLUSIVE
        if c.consecutive_error > self.consecutive_error_limit:
            phase = RunPhase.ERROR
        if phase is RunPhase.RUNNING and self.count is not None and c.count >= self.count:
            phase = RunPhase.SUCCESSFUL
        return phase

    def observe(
        self, value: float | None, *, events: int | None = None, error: str | None = None
    ) -> Evidence:
        """Judge one measurement and return the run's verdict so far.

        ``value`` None or NaN means the query gave no number (Argo's conditions then evaluate
        false); ``error`` set means the query itself failed (an Error measurement). Outcome is
        REJECT once Failed, INSUFFICIENT once Inconclusive or Error, ACCEPT once Successful,
        CONTINUE while running. Observing after the run has ended changes nothing, as Argo stops
        measuring a completed metric.
        """
        if self._phase is not RunPhase.RUNNING:
            return self._evidence()
        c = self._counts
        if error is not None:
            self._counts = replace(c, error=c.error + 1, consecutive_error=c.consecutive_error + 1)
        else:
            m = argo_measurement_phase(
                value, min=self.min, max=self.max, conditions=self.conditions
            )
            self._counts = replace(
                c,
                count=c.count + 1,
                successful=c.successful + (m is MeasurementPhase.SUCCESSFUL),
                failed=c.failed + (m is MeasurementPhase.FAILED),
                inconclusive=c.inconclusive + (m is MeasurementPhase.INCONCLUSIVE),
                consecutive_error=0,
            )
        self._last_value = None if error is not None or _missing(value) else value
        self._last_events = events
        self._phase = self._assess()
        return self._evidence()

    def _evidence(self) -> Evidence:
        c = self._counts
        rule = (
            f"fail when more than {self.failure_limit} measurements fall outside "
            f"{_range_text(self.min, self.max)}; inconclusive when more than "
            f"{self.inconclusive_limit} have no value"
            + (" (conditions: " + self.conditions + ")" if self.conditions != "both" else "")
            + f"; error after more than {self.consecutive_error_limit} consecutive query errors"
            + ("" if self.count is None else f"; succeed after {self.count} measurements")
            + f". So far {c.failed} failed, {c.inconclusive} inconclusive, "
            f"{c.consecutive_error} consecutive errors, {c.count} measured"
            + _noise_note(self._last_events)
        )
        tally = (c.count, c.successful, c.failed, c.inconclusive, c.error, c.consecutive_error)
        return argo_evidence(
            _OUTCOME[self._phase],
            self._last_value,
            self._last_events,
            rule,
            self.min,
            self.max,
            tally,
        )


def argo_evidence(
    outcome: Outcome,
    value: float | None,
    events: int | None,
    rule: str,
    lo: float | None,
    hi: float | None,
    tally: tuple[int, int, int, int, int, int],
) -> Evidence:
    """An Argo-style threshold verdict's evidence, one shape for this judge (the benchmark's) and
    the controller's (``analysis.judge``). ``tally``: measurements counted, successful, failed,
    inconclusive, errors, consecutive errors."""
    count, successful, failed, inconclusive, errors, consecutive = tally
    return Evidence(
        method=ARGO_METHOD,
        outcome=outcome,
        estimate=value,
        statistic=value,
        threshold=lo if lo is not None else hi,
        events=events or 0,
        rule=rule,
        details=EvidenceDetails(
            min=lo,
            max=hi,
            count=count,
            successful=successful,
            failed=failed,
            inconclusive=inconclusive,
            errors=errors,
            consecutive_errors=consecutive,
        ),
    )


class FlaggerThresholdJudge:
    """One Flagger metric check against ``thresholdRange{min, max}``, rollback after ``threshold``.

    Flagger counts failed checks over the whole analysis (they need not be consecutive) and rolls
    back once ``failedChecks >= threshold``. A check with no value (NaN, no data) fails, as
    Flagger's providers return "no values found" and the check counts as failed.
    """

    def __init__(
        self, *, min: float | None = None, max: float | None = None, threshold: int = 5
    ) -> None:
        _check_bounds(min, max)
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.min = min
        self.max = max
        self.threshold = threshold
        self._failed = 0
        self._checks = 0
        self._phase = RunPhase.RUNNING

    @property
    def phase(self) -> RunPhase:
        """RUNNING until rolled back (FAILED); Flagger's success is decided by the step schedule."""
        return self._phase

    @property
    def failed_checks(self) -> int:
        """Failed checks so far (Flagger's ``status.failedChecks``)."""
        return self._failed

    def observe(self, value: float | None, *, events: int | None = None) -> Evidence:
        """Judge one check; outcome REJECT once rolled back, else CONTINUE.

        Checks after the rollback change nothing: Flagger has stopped analysing.
        """
        if self._phase is RunPhase.RUNNING:
            self._checks += 1
            if value is None or math.isnan(value) or not _inside(value, self.min, self.max):
                self._failed += 1
            if self._failed >= self.threshold:
                self._phase = RunPhase.FAILED
        shown = None if _missing(value) else value
        rule = (
            f"roll back after {self.threshold} checks outside {_range_text(self.min, self.max)} "
            f"or without a value (not necessarily consecutive). So far {self._failed} of "
            f"{self._checks} checks failed" + _noise_note(events)
        )
        details = EvidenceDetails(
            min=self.min, max=self.max, failed_checks=self._failed, checks=self._checks
        )
        return Evidence(
            method=FLAGGER_METHOD,
            outcome=_OUTCOME[self._phase],
            estimate=shown,
            statistic=shown,
            threshold=self.min if self.min is not None else self.max,
            events=events or 0,
            rule=rule,
            details=details,
        )


# --------------------------------------------------------------------------------------------
# Batch forms for the benchmark: thousands of runs at once, same semantics as the judges.

_NEVER = np.iinfo(np.int64).max


def _first(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Index of the first True in each row, or a huge number when there is none."""
    idx = mask.argmax(axis=1).astype(np.int64)
    return np.where(mask.any(axis=1), idx, _NEVER)


def _masks(
    values: NDArray[np.float64], lo: float | None, hi: float | None
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError("values must have shape (runs, ticks)")
    missing = np.isnan(v)
    inside = ~missing
    if lo is not None:
        inside &= v >= lo
    if hi is not None:
        inside &= v <= hi
    outside = ~missing & ~inside
    return inside, outside


def argo_run_end(
    values: NDArray[np.float64],
    *,
    min: float | None = None,
    max: float | None = None,
    failure_limit: int = 0,
    inconclusive_limit: int = 0,
    count: int | None = None,
    conditions: Conditions = "both",
) -> tuple[NDArray[np.int64], NDArray[np.str_]]:
    """For each run, the tick at which Argo ends it and the phase it ends in.

    Returns ``(tick, phase)``: ``tick`` is -1 and ``phase`` "Running" for runs still running after
    the last tick; otherwise ``phase`` is a :class:`RunPhase` value. NaN is a measurement with no
    value; query errors are not modelled in the batch form.
    """
    _check_bounds(min, max)
    inside, outside = _masks(values, min, max)
    if conditions == "success":
        failed, inconclusive = ~inside, np.zeros_like(inside)
    elif conditions == "failure":
        failed, inconclusive = outside, np.zeros_like(inside)
    else:
        failed, inconclusive = outside, ~inside & ~outside
    t_fail = _first(np.cumsum(failed, axis=1) > failure_limit)
    t_inc = _first(np.cumsum(inconclusive, axis=1) > inconclusive_limit)
    ticks = inside.shape[1]
    t_count = np.full(
        inside.shape[0], _NEVER if count is None or count > ticks else count - 1, dtype=np.int64
    )
    # One measurement per tick, so failing and going inconclusive never happen at the same tick;
    # at the count-th tick the limits are checked before success, as Argo does.
    end = np.minimum(np.minimum(t_fail, t_inc), t_count)
    phase = np.full(end.shape, RunPhase.RUNNING.value, dtype="<U12")
    phase[(end == t_count) & (end != _NEVER)] = RunPhase.SUCCESSFUL.value
    phase[(end == t_inc) & (end != _NEVER)] = RunPhase.INCONCLUSIVE.value
    phase[(end == t_fail) & (end != _NEVER)] = RunPhase.FAILED.value
    return np.where(end == _NEVER, -1, end), phase


def argo_first_failure(
    values: NDArray[np.float64],
    *,
    min: float | None = None,
    max: float | None = None,
    failure_limit: int = 0,
    inconclusive_limit: int = 0,
    count: int | None = None,
    conditions: Conditions = "both",
) -> NDArray[np.int64]:
    """For each run (row of ``values``, shape (runs, ticks)), the tick at which Argo fails it.

    Returns -1 for runs that never fail, including runs that end first as Inconclusive (more than
    ``inconclusive_limit`` inconclusive measurements) or Successful (``count`` measurements done).
    NaN is a measurement with no value; query errors are not modelled in the batch form.
    Agrees with feeding each row to :class:`ArgoThresholdJudge`.
    """
    tick, phase = argo_run_end(
        values,
        min=min,
        max=max,
        failure_limit=failure_limit,
        inconclusive_limit=inconclusive_limit,
        count=count,
        conditions=conditions,
    )
    return np.where(phase == RunPhase.FAILED.value, tick, -1)


def flagger_first_failure(
    values: NDArray[np.float64],
    *,
    min: float | None = None,
    max: float | None = None,
    threshold: int = 5,
) -> NDArray[np.int64]:
    """For each run (row), the tick at which Flagger rolls back (the ``threshold``-th failed check).

    Returns -1 when it never does. Agrees with feeding each row to :class:`FlaggerThresholdJudge`.
    Flagger acts on it at its next scheduler run, one tick later.
    """
    _check_bounds(min, max)
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    inside, _ = _masks(values, min, max)
    t = _first(np.cumsum(~inside, axis=1) >= threshold)
    return np.where(t == _NEVER, -1, t)


__all__ = [
    "ARGO_METHOD",
    "FLAGGER_METHOD",
    "ArgoCounts",
    "ArgoThresholdJudge",
    "Conditions",
    "FlaggerThresholdJudge",
    "MeasurementPhase",
    "RunPhase",
    "argo_first_failure",
    "argo_measurement_phase",
    "argo_run_end",
    "flagger_first_failure",
]
