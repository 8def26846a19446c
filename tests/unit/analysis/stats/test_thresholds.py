"""Argo Rollouts and Flagger threshold gates: scalar judges, batch forms, and their agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from analysis.stats.evidence import Evidence, Outcome
from analysis.stats.thresholds import (
    ArgoThresholdJudge,
    Conditions,
    FlaggerThresholdJudge,
    MeasurementPhase,
    RunPhase,
    argo_first_failure,
    argo_measurement_phase,
    argo_run_end,
    flagger_first_failure,
)

NAN = math.nan


def phase_of(judge: ArgoThresholdJudge) -> RunPhase:
    """Read the phase afresh (mypy would otherwise keep an earlier narrowing across observe())."""
    return judge.phase


# ---------------------------------------------------------------------------------------------
# Argo: one measurement


@pytest.mark.parametrize(
    ("value", "conditions", "expected"),
    [
        (0.995, "both", MeasurementPhase.SUCCESSFUL),
        (0.99, "both", MeasurementPhase.SUCCESSFUL),  # bound is inclusive (result >= 0.99)
        (0.98, "both", MeasurementPhase.FAILED),
        (NAN, "both", MeasurementPhase.INCONCLUSIVE),  # neither condition is true for NaN
        (None, "both", MeasurementPhase.INCONCLUSIVE),
        (NAN, "success", MeasurementPhase.FAILED),  # only successCondition: not true → Failed
        (0.98, "success", MeasurementPhase.FAILED),
        (NAN, "failure", MeasurementPhase.SUCCESSFUL),  # only failureCondition: not true → ok
        (0.98, "failure", MeasurementPhase.FAILED),
    ],
)
def test_argo_measurement_phase(
    value: float | None, conditions: Conditions, expected: MeasurementPhase
) -> None:
    assert argo_measurement_phase(value, min=0.99, conditions=conditions) is expected


def test_argo_upper_bound_only() -> None:
    assert argo_measurement_phase(0.5, max=0.5) is MeasurementPhase.SUCCESSFUL
    assert argo_measurement_phase(0.51, max=0.5) is MeasurementPhase.FAILED


# ---------------------------------------------------------------------------------------------
# Argo: the run


def test_argo_default_failure_limit_fails_on_first_failed_measurement() -> None:
    judge = ArgoThresholdJudge(min=0.99)
    assert judge.observe(0.995).outcome is Outcome.CONTINUE
    ev = judge.observe(0.98, events=40)
    assert judge.phase is RunPhase.FAILED
    assert ev.outcome is Outcome.REJECT
    assert ev.estimate == 0.98 and ev.threshold == 0.99 and ev.events == 40
    assert "fail when more than 0 measurements fall outside [0.99, +inf)" in ev.rule
    assert "40 events" in ev.rule
    assert ev.details.failed == 1 and ev.details.count == 2
    assert Evidence.model_validate_json(ev.model_dump_json()) == ev


def test_argo_failure_limit_is_more_than() -> None:
    judge = ArgoThresholdJudge(max=0.5, failure_limit=2)
    judge.observe(0.9)
    judge.observe(0.1)
    judge.observe(0.9)
    assert judge.phase is RunPhase.RUNNING  # 2 failures: not more than 2
    judge.observe(0.9)
    assert phase_of(judge) is RunPhase.FAILED
    assert judge.counts.failed == 3 and judge.counts.successful == 1


def test_argo_inconclusive_limit() -> None:
    judge = ArgoThresholdJudge(min=0.99, inconclusive_limit=1)
    assert judge.observe(NAN).outcome is Outcome.CONTINUE
    ev = judge.observe(None)
    assert judge.phase is RunPhase.INCONCLUSIVE
    assert ev.outcome is Outcome.INSUFFICIENT
    assert ev.estimate is None


def test_argo_consecutive_error_limit_boundary() -> None:
    judge = ArgoThresholdJudge(min=0.99)  # default consecutiveErrorLimit 4
    for _ in range(4):
        judge.observe(None, error="connection refused")
    assert judge.phase is RunPhase.RUNNING  # exactly 4 consecutive errors: still running
    assert judge.counts.count == 0 and judge.counts.error == 4
    ev = judge.observe(None, error="connection refused")
    assert phase_of(judge) is RunPhase.ERROR  # the 5th fails the metric with Error
    assert ev.outcome is Outcome.INSUFFICIENT


def test_argo_completed_measurement_resets_consecutive_errors() -> None:
    judge = ArgoThresholdJudge(min=0.99, count=10)
    for _ in range(4):
        judge.observe(None, error="timeout")
    judge.observe(0.999)
    assert judge.counts.consecutive_error == 0 and judge.counts.error == 4
    for _ in range(4):
        judge.observe(None, error="timeout")
    assert judge.phase is RunPhase.RUNNING


def test_argo_count_reached_is_successful_and_errors_do_not_count() -> None:
    judge = ArgoThresholdJudge(min=0.99, count=3)
    judge.observe(0.999)
    judge.observe(None, error="timeout")
    judge.observe(0.999)
    assert judge.phase is RunPhase.RUNNING  # an Error measurement does not add to count
    ev = judge.observe(0.999)
    assert phase_of(judge) is RunPhase.SUCCESSFUL
    assert ev.outcome is Outcome.ACCEPT


def test_argo_failure_on_last_counted_measurement_wins_over_success() -> None:
    judge = ArgoThresholdJudge(min=0.99, count=2)
    judge.observe(0.999)
    judge.observe(0.5)
    assert judge.phase is RunPhase.FAILED


def test_argo_ended_run_ignores_later_measurements() -> None:
    judge = ArgoThresholdJudge(min=0.99)
    judge.observe(0.5)
    ev = judge.observe(0.999)
    assert judge.phase is RunPhase.FAILED
    assert judge.counts.count == 1
    assert ev.outcome is Outcome.REJECT


def test_argo_rejects_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        ArgoThresholdJudge(min=1.0, max=0.0)
    with pytest.raises(ValueError):
        ArgoThresholdJudge(min=0.0, failure_limit=-1)
    with pytest.raises(ValueError):
        ArgoThresholdJudge(min=0.0, count=0)


# ---------------------------------------------------------------------------------------------
# Flagger


def test_flagger_counts_failed_checks_not_necessarily_consecutive() -> None:
    judge = FlaggerThresholdJudge(min=99.0, threshold=3)
    outcomes = [judge.observe(v).outcome for v in (98.0, 99.5, 98.0, 100.0)]
    assert outcomes == [Outcome.CONTINUE] * 4
    assert judge.failed_checks == 2
    ev = judge.observe(97.0, events=12)
    assert judge.phase is RunPhase.FAILED
    assert ev.outcome is Outcome.REJECT
    assert ev.details.failed_checks == 3 and ev.details.checks == 5
    assert ev.events == 12 and "12 events" in ev.rule
    assert Evidence.model_validate_json(ev.model_dump_json()) == ev


def test_flagger_no_value_is_a_failed_check_and_bounds_are_inclusive() -> None:
    judge = FlaggerThresholdJudge(min=99.0, max=100.0, threshold=2)
    judge.observe(99.0)
    judge.observe(100.0)
    assert judge.failed_checks == 0
    judge.observe(NAN)
    judge.observe(None)
    assert judge.failed_checks == 2
    assert judge.phase is RunPhase.FAILED


def test_flagger_latency_max_bound() -> None:
    judge = FlaggerThresholdJudge(max=500.0, threshold=1)
    assert judge.observe(500.0).outcome is Outcome.CONTINUE
    assert judge.observe(501.0).outcome is Outcome.REJECT


def test_flagger_rejects_invalid_threshold() -> None:
    with pytest.raises(ValueError):
        FlaggerThresholdJudge(min=0.0, threshold=0)


# ---------------------------------------------------------------------------------------------
# Batch forms


def test_batch_examples() -> None:
    values = np.array(
        [
            [0.999, 0.999, 0.98, 0.999],  # fails at tick 2
            [0.999, NAN, 0.999, 0.98],  # inconclusive at tick 1 (limit 0), never fails
            [0.999, 0.999, 0.999, 0.999],  # succeeds at count (tick 2)
            [0.999, 0.999, 0.98, NAN],  # fails at tick 2 on the count-th measurement
        ]
    )
    ticks, phases = argo_run_end(values, min=0.99, count=3)
    assert ticks.tolist() == [2, 1, 2, 2]
    assert phases.tolist() == ["Failed", "Inconclusive", "Successful", "Failed"]
    assert argo_first_failure(values, min=0.99, count=3).tolist() == [2, -1, -1, 2]
    # Without a count the third run keeps running; with success-only conditions NaN fails.
    ticks, phases = argo_run_end(values, min=0.99)
    assert (ticks[2], phases[2]) == (-1, "Running")
    assert argo_first_failure(values, min=0.99, conditions="success").tolist() == [2, 1, -1, 2]
    assert flagger_first_failure(values, min=0.99, threshold=2).tolist() == [-1, 3, -1, 3]


def run_argo(row: NDArray[np.float64], **kw: object) -> int:
    judge = ArgoThresholdJudge(**kw)  # type: ignore[arg-type]
    for t, v in enumerate(row):
        judge.observe(float(v))
        if judge.phase is RunPhase.FAILED:
            return t
        if judge.phase is not RunPhase.RUNNING:
            return -1
    return -1


def run_flagger(row: NDArray[np.float64], **kw: object) -> int:
    judge = FlaggerThresholdJudge(**kw)  # type: ignore[arg-type]
    for t, v in enumerate(row):
        judge.observe(float(v))
        if judge.phase is RunPhase.FAILED:
            return t
    return -1


# Values on a coarse grid around the bounds, with NaN, so ties with the bounds and missing
# values are common.
cells = st.one_of(st.just(NAN), st.sampled_from([0.0, 0.5, 0.98, 0.99, 0.995, 1.0]))
matrices = hnp.arrays(
    np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12), elements=cells
)
bounds = st.sampled_from([(0.99, None), (None, 0.5), (0.5, 0.99), (None, None)])


@settings(max_examples=200, deadline=None)
@given(
    values=matrices,
    bound=bounds,
    failure_limit=st.integers(0, 3),
    inconclusive_limit=st.integers(0, 3),
    count=st.one_of(st.none(), st.integers(1, 12)),
    conditions=st.sampled_from(["both", "success", "failure"]),
)
def test_argo_batch_agrees_with_scalar(
    values: NDArray[np.float64],
    bound: tuple[float | None, float | None],
    failure_limit: int,
    inconclusive_limit: int,
    count: int | None,
    conditions: Conditions,
) -> None:
    kw = dict(
        min=bound[0],
        max=bound[1],
        failure_limit=failure_limit,
        inconclusive_limit=inconclusive_limit,
        count=count,
        conditions=conditions,
    )
    batch = argo_first_failure(values, **kw)  # type: ignore[arg-type]
    assert batch.tolist() == [run_argo(row, **kw) for row in values]


@settings(max_examples=200, deadline=None)
@given(values=matrices, bound=bounds, threshold=st.integers(1, 5))
def test_flagger_batch_agrees_with_scalar(
    values: NDArray[np.float64], bound: tuple[float | None, float | None], threshold: int
) -> None:
    batch = flagger_first_failure(values, min=bound[0], max=bound[1], threshold=threshold)
    expected = [run_flagger(row, min=bound[0], max=bound[1], threshold=threshold) for row in values]
    assert batch.tolist() == expected


def test_batch_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError):
        argo_first_failure(np.zeros(5), min=0.0)
    with pytest.raises(ValueError):
        flagger_first_failure(np.zeros((2, 3)), min=0.0, threshold=0)
