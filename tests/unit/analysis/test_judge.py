"""Metric verdicts: Argo's threshold counters, Kayenta's classifier at the horizon, and the
worst-metric-wins combination with dry-run metrics that never gate."""

from __future__ import annotations

import numpy as np

from analysis.judge import (
    MetricVerdict,
    Tally,
    ThresholdRule,
    combine,
    judge_mann_whitney,
    judge_threshold,
    threshold_measurement,
)
from analysis.stats.evidence import Outcome
from analysis.stats.thresholds import MeasurementPhase


def _tally(*phases: MeasurementPhase) -> Tally:
    t = Tally()
    for p in phases:
        t = t.add(p)
    return t


S, F, INC, E = (
    MeasurementPhase.SUCCESSFUL,
    MeasurementPhase.FAILED,
    MeasurementPhase.INCONCLUSIVE,
    MeasurementPhase.ERROR,
)


def test_missing_value_is_inconclusive_never_successful() -> None:
    rule = ThresholdRule(min=0.99)
    assert threshold_measurement(rule, None, error=False) is INC
    assert threshold_measurement(rule, float("nan"), error=False) is INC
    assert threshold_measurement(rule, 0.995, error=False) is S
    assert threshold_measurement(rule, 0.98, error=False) is F
    assert threshold_measurement(rule, 0.995, error=True) is E


def test_errors_count_consecutively_and_a_completed_measurement_resets_them() -> None:
    t = _tally(E, E, S, E)
    assert (t.count, t.errors, t.consecutive_errors, t.successful) == (1, 3, 1, 1)


def test_failure_limit_is_exceeded_not_reached() -> None:
    rule = ThresholdRule(max=0.01, failure_limit=1, count=5)
    assert judge_threshold("err", rule, _tally(F)).phase == "Running"
    v = judge_threshold("err", rule, _tally(F, F), last_value=0.02, events=40)
    assert v.phase == "Failed"
    assert "'err'" in v.message and "0.02" in v.message and "40 events" in v.message
    assert v.evidence is not None and v.evidence.outcome is Outcome.REJECT


def test_consecutive_error_limit_overrides_and_count_completes() -> None:
    rule = ThresholdRule(min=0.5, consecutive_error_limit=2, count=3)
    assert judge_threshold("m", rule, _tally(E, E, E)).phase == "Error"
    assert judge_threshold("m", rule, _tally(S, S)).phase == "Running"
    assert judge_threshold("m", rule, _tally(S, S, S)).phase == "Successful"
    assert judge_threshold("m", ThresholdRule(min=0.5), _tally(S), horizon_reached=True).phase == (
        "Successful"
    )


def test_inconclusive_limit() -> None:
    v = judge_threshold("m", ThresholdRule(min=0.5, count=9), _tally(INC))
    assert v.phase == "Inconclusive" and "without a value" in v.message


def test_mann_whitney_waits_for_the_horizon_then_labels() -> None:
    rng = np.random.default_rng(7)
    base = list(rng.normal(1.0, 0.05, 30))
    worse = list(rng.normal(1.6, 0.05, 30))
    early = judge_mann_whitney(
        "lat", worse, base, direction="increase", tolerance=1.1, horizon_reached=False
    )
    assert early.phase == "Running"
    late = judge_mann_whitney(
        "lat", worse, base, direction="increase", tolerance=1.1, horizon_reached=True
    )
    assert late.phase == "Failed" and "High" in late.message and "'lat'" in late.message
    same = judge_mann_whitney(
        "lat",
        list(rng.normal(1.0, 0.05, 30)),
        base,
        direction="increase",
        tolerance=1.1,
        horizon_reached=True,
    )
    assert same.phase == "Successful"


def test_mann_whitney_within_tolerance_ratio_passes() -> None:
    """A proven 5% shift is not a failure when the tolerated ratio is 1.1."""
    base = [1.0 + 0.001 * i for i in range(30)]
    canary = [1.05 + 0.001 * i for i in range(30)]
    v = judge_mann_whitney(
        "lat", canary, base, direction="increase", tolerance=1.1, horizon_reached=True
    )
    assert v.phase == "Successful"


def test_mann_whitney_without_data_is_inconclusive() -> None:
    v = judge_mann_whitney(
        "lat", [], [1.0], direction="increase", tolerance=1.1, horizon_reached=True
    )
    assert v.phase == "Inconclusive" and "insufficient evidence" in v.message


def test_combine_worst_gating_metric_wins_and_dry_run_never_gates() -> None:
    vs = {
        "a": MetricVerdict("Successful"),
        "b": MetricVerdict("Inconclusive", message="b unsure"),
        "c": MetricVerdict("Failed", message="c bad"),
    }
    assert combine(vs, frozenset()) == ("Failed", "c bad")
    assert combine(vs, frozenset({"c"})) == ("Inconclusive", "b unsure")
    assert combine(vs, frozenset({"b", "c"}))[0] == "Successful"
    assert combine({**vs, "d": MetricVerdict("Running")}, frozenset({"b", "c"}))[0] == "Running"
