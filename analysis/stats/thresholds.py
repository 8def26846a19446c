"""Absolute bounds judged the way Argo Rollouts and Flagger judge them, and honest about noise.

These are the gates most teams run today: a value per interval compared with a fixed bound, with a
count of failures tolerated. Sluice offers them for users who ask for them and as comparators in
the benchmark, so their semantics follow the published behaviour of each tool exactly (limits are
"more than", counts are not reset, a missing value is treated as each tool treats it). What Sluice
adds is the number of events behind each value in the evidence: a 1% bound judged on 40 requests
says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from analysis.stats.evidence import Evidence

Conditions = Literal["both", "success", "failure"]


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


@dataclass(frozen=True)
class ArgoCounts:
    """Argo's per-metric tallies (``MetricResult.count/successful/failed/...``)."""

    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0


class ArgoThresholdJudge:
    """One Argo Rollouts metric with ``successCondition: min <= result <= max``.

    ``conditions`` picks which of Argo's conditions the bounds are written as: ``"both"`` (success
    inside, failure outside, so NaN is Inconclusive), ``"success"`` only (anything not inside,
    NaN included, is Failed) or ``"failure"`` only (anything not outside, NaN included, is
    Successful). The run ends Failed when failed measurements exceed ``failure_limit``,
    Inconclusive when inconclusive ones exceed ``inconclusive_limit``, Error when consecutive
    errors exceed ``consecutive_error_limit``, and Successful after ``count`` measurements.
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
        raise NotImplementedError

    @property
    def phase(self) -> RunPhase:
        """The run's phase after the measurements seen so far."""
        raise NotImplementedError

    @property
    def counts(self) -> ArgoCounts:
        """Tallies so far, as Argo reports them in ``MetricResult``."""
        raise NotImplementedError

    def observe(
        self, value: float | None, *, events: int | None = None, error: str | None = None
    ) -> Evidence:
        """Judge one measurement and return the run's verdict so far.

        ``value`` None or NaN means the query gave no number (Argo's conditions then evaluate
        false); ``error`` set means the query itself failed (an Error measurement). Outcome is
        REJECT once Failed, INSUFFICIENT once Inconclusive or Error, ACCEPT once Successful,
        CONTINUE while running. Observing after the run has ended changes nothing.
        """
        raise NotImplementedError


class FlaggerThresholdJudge:
    """One Flagger metric check against ``thresholdRange{min, max}``, rollback after ``threshold``.

    Flagger counts failed checks over the whole analysis (they need not be consecutive) and rolls
    back once ``failedChecks >= threshold``. A check with no value (NaN, no data) fails, as
    Flagger's providers return "no values found" and the check counts as failed.
    """

    def __init__(
        self, *, min: float | None = None, max: float | None = None, threshold: int = 5
    ) -> None:
        raise NotImplementedError

    @property
    def phase(self) -> RunPhase:
        """RUNNING until rolled back (FAILED); Flagger's success is decided by the step schedule."""
        raise NotImplementedError

    @property
    def failed_checks(self) -> int:
        """Failed checks so far (Flagger's ``status.failedChecks``)."""
        raise NotImplementedError

    def observe(self, value: float | None, *, events: int | None = None) -> Evidence:
        """Judge one check; outcome REJECT once rolled back, else CONTINUE."""
        raise NotImplementedError


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
    raise NotImplementedError


def flagger_first_failure(
    values: NDArray[np.float64],
    *,
    min: float | None = None,
    max: float | None = None,
    threshold: int = 5,
) -> NDArray[np.int64]:
    """For each run (row), the tick at which Flagger rolls back (the ``threshold``-th failed check).

    Returns -1 when it never does. Agrees with feeding each row to :class:`FlaggerThresholdJudge`.
    """
    raise NotImplementedError


__all__ = [
    "ArgoCounts",
    "ArgoThresholdJudge",
    "Conditions",
    "FlaggerThresholdJudge",
    "MeasurementPhase",
    "RunPhase",
    "argo_first_failure",
    "flagger_first_failure",
]
