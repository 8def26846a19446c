"""The Kayenta-compatible Mann-Whitney judge: statistic, interval, labels and score."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy import stats

from analysis.stats.evidence import Evidence, Outcome
from analysis.stats.mann_whitney import (
    MetricClassification,
    classify_metric,
    mann_whitney_interval,
    score_canary,
)

# ---------------------------------------------------------------------------------------------
# A literal transcription of R's W(d) from wilcox.test.default (two-sample, asymptotic,
# two-sided, correct=TRUE): rank c(x - d, y), W = Σ ranks of x − n.x(n.x+1)/2, centre by
# n.x·n.y/2, subtract ½·sign, divide by the tie-corrected σ. Used as the independent reference.


def r_statistic(x: NDArray[np.float64], y: NDArray[np.float64], d: float) -> float:
    r = stats.rankdata(np.concatenate((x - d, y)))
    nx, ny = x.size, y.size
    dz = r[:nx].sum() - nx * (nx + 1) / 2 - nx * ny / 2
    _, t = np.unique(r, return_counts=True)
    sigma = math.sqrt(
        nx * ny / 12 * ((nx + ny + 1) - (t**3 - t).sum() / ((nx + ny) * (nx + ny - 1)))
    )
    return float((dz - np.sign(dz) * 0.5) / sigma)


def grid_interval(
    x: NDArray[np.float64], y: NDArray[np.float64], confidence: float, points: int
) -> tuple[float, float, float]:
    """Interval ends by brute force: scan a fine grid of shifts over [min(x)−max(y), max(x)−min(y)]
    and take the first grid point at which the statistic is at or below +z (lower end) and at or
    below −z (upper end), as R's root rule reads it. Returns (lower, upper, grid step)."""
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    lo, hi = x.min() - y.max(), x.max() - y.min()
    grid = np.linspace(lo, hi, points)
    w = np.array([r_statistic(x, y, d) for d in grid])
    lower = grid[np.argmax(w - z <= 0)] if (w - z <= 0).any() else hi
    upper = grid[np.argmax(w + z <= 0)] if (w + z <= 0).any() else hi
    return float(lower), float(upper), float(grid[1] - grid[0])


# ---------------------------------------------------------------------------------------------
# The statistic


@pytest.mark.parametrize("seed", range(12))
def test_u_and_p_value_match_scipy_asymptotic_with_continuity(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Rounding to one decimal makes ties within and across samples common.
    experiment = np.round(rng.normal(0.4, 1.0, rng.integers(3, 40)), 1)
    control = np.round(rng.normal(0.0, 1.0, rng.integers(3, 40)), 1)
    ours = mann_whitney_interval(control, experiment)
    ref = stats.mannwhitneyu(experiment, control, method="asymptotic", use_continuity=True)
    assert ours.u == pytest.approx(ref.statistic, abs=1e-9)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)
    assert (ours.n_experiment, ours.n_control) == (experiment.size, control.size)


def test_hand_computed_interval_three_against_three() -> None:
    # experiment 4,5,6 vs control 1,2,3: the nine differences x_i − y_j sorted are
    # 1,2,2,3,3,3,4,4,5. Between differences U(d) = #{diffs > d}: 9,8,6,3,1,0 on
    # (−∞,1),(1,2),(2,3),(3,4),(4,5),(5,∞). Mean n1n2/2 = 4.5, no ties away from the
    # differences, so σ = sqrt(9/12·7) = 2.2913. Corrected statistic (U − 4.5 − ½sgn)/σ:
    # 1.746, 1.309, 0.436, −0.436, −1.309, −1.746.
    # 80%: z = 1.2816. It first drops to ≤ +z on (2,3) → lower = 2; it first drops to ≤ −z
    # on (4,5) → upper = 4. The estimate is where U = 4.5 is crossed, at the median 3.
    r80 = mann_whitney_interval([1, 2, 3], [4, 5, 6], confidence=0.80)
    assert (r80.lower, r80.estimate, r80.upper) == (2.0, 3.0, 4.0)
    # 98%: z = 2.326 exceeds every value, so R's root() returns the range ends 1 and 5.
    r98 = mann_whitney_interval([1, 2, 3], [4, 5, 6], confidence=0.98)
    assert (r98.lower, r98.estimate, r98.upper) == (1.0, 3.0, 5.0)


@pytest.mark.parametrize(("seed", "confidence"), [(1, 0.98), (2, 0.95), (3, 0.90)])
def test_interval_matches_brute_force_grid_of_r_statistic(seed: int, confidence: float) -> None:
    rng = np.random.default_rng(seed)
    experiment = np.round(rng.lognormal(0.2, 0.5, 14), 2)
    control = np.round(rng.lognormal(0.0, 0.5, 11), 2)
    ours = mann_whitney_interval(control, experiment, confidence=confidence)
    lower, upper, step = grid_interval(experiment, control, confidence, 4001)
    # The statistic is a step function jumping at pairwise differences; the root is the jump,
    # and the first grid point past it lies at most one step to its right.
    assert lower - step <= ours.lower <= lower + 1e-12
    assert upper - step <= ours.upper <= upper + 1e-12
    assert ours.lower <= ours.estimate <= ours.upper


@pytest.mark.parametrize(("seed", "confidence"), [(1, 0.98), (11, 0.95), (45, 0.98)])
def test_interval_matches_brute_force_with_heavy_ties(seed: int, confidence: float) -> None:
    # Small counts (errors per minute) tie heavily within each sample, which is what the
    # tie-corrected σ between pairwise differences has to get right (these seeds are ones
    # where ignoring the within-sample ties moves an end of the interval).
    rng = np.random.default_rng(seed)
    experiment = rng.poisson(4.0, 25).astype(float)
    control = rng.poisson(2.0, 20).astype(float)
    ours = mann_whitney_interval(control, experiment, confidence=confidence)
    lower, upper, step = grid_interval(experiment, control, confidence, 2001)
    assert lower - step <= ours.lower <= lower + 1e-12
    assert upper - step <= ours.upper <= upper + 1e-12


@pytest.mark.parametrize("seed", range(5))
def test_estimate_is_hodges_lehmann_median_of_pairwise_differences(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    experiment = rng.normal(1.0, 1.0, rng.integers(2, 30))
    control = rng.normal(0.0, 1.0, rng.integers(2, 30))
    ours = mann_whitney_interval(control, experiment)
    assert ours.estimate == pytest.approx(float(np.median(np.subtract.outer(experiment, control))))


small_samples = st.lists(st.integers(-20, 20), min_size=1, max_size=15)


@settings(max_examples=150, deadline=None)
@given(control=small_samples, experiment=small_samples)
def test_swapping_arms_negates_shift_and_swaps_interval(
    control: list[int], experiment: list[int]
) -> None:
    a = mann_whitney_interval(control, experiment)
    b = mann_whitney_interval(experiment, control)
    assert b.estimate == -a.estimate
    assert (b.lower, b.upper) == (-a.upper, -a.lower)
    assert b.u == len(control) * len(experiment) - a.u
    assert b.p_value == pytest.approx(a.p_value)


@settings(max_examples=150, deadline=None)
@given(control=small_samples, experiment=small_samples, shift=st.integers(-50, 50))
def test_shifting_experiment_shifts_estimate_and_interval(
    control: list[int], experiment: list[int], shift: int
) -> None:
    a = mann_whitney_interval(control, experiment)
    b = mann_whitney_interval(control, np.asarray(experiment) + shift)
    assert (b.lower, b.estimate, b.upper) == (a.lower + shift, a.estimate + shift, a.upper + shift)


def test_interval_drops_non_finite_like_r_and_rejects_empty() -> None:
    with_nan = mann_whitney_interval([1, 2, 3, np.nan], [4, 5, 6, np.inf], confidence=0.8)
    assert (with_nan.lower, with_nan.upper, with_nan.n_control) == (2.0, 4.0, 3)
    with pytest.raises(ValueError):
        mann_whitney_interval([], [1.0])
    with pytest.raises(ValueError):
        mann_whitney_interval([1.0], [2.0], confidence=1.0)


# ---------------------------------------------------------------------------------------------
# Labels


def normal(seed: int, mean: float, n: int = 30, sd: float = 1.0) -> NDArray[np.float64]:
    return np.random.default_rng(seed).normal(mean, sd, n)


def test_clear_increase_is_high_and_rejects() -> None:
    c = classify_metric(normal(1, 10.0), normal(2, 13.0))
    assert c.label == "High"
    assert c.evidence.outcome is Outcome.REJECT
    assert c.evidence.method == "mann-whitney"
    assert c.evidence.interval is not None and c.evidence.interval[0] > 0
    assert c.evidence.events == 60
    assert not c.critical_failure


def test_clear_decrease_is_low() -> None:
    c = classify_metric(normal(1, 10.0), normal(2, 7.0))
    assert c.label == "Low"
    assert c.evidence.outcome is Outcome.REJECT


def test_same_distribution_passes() -> None:
    # Fixed seeds; a 98% interval covering 0 here is what makes this Pass (checked once, stable).
    c = classify_metric(normal(3, 10.0), normal(4, 10.0))
    assert c.label == "Pass"
    assert c.evidence.outcome is Outcome.ACCEPT


def test_direction_only_judges_the_bad_side() -> None:
    up = (normal(1, 10.0), normal(2, 13.0))
    down = (normal(1, 10.0), normal(2, 7.0))
    assert classify_metric(*up, direction="decrease").label == "Pass"
    assert classify_metric(*up, direction="increase").label == "High"
    assert classify_metric(*down, direction="increase").label == "Pass"
    assert classify_metric(*down, direction="decrease").label == "Low"


def test_kayenta_classifier_suite_effect_size_cases() -> None:
    # From Kayenta's ClassifierSuite ("Mean Ratio Effect Size: High" and "... : Pass"),
    # tolerance 0.10, confidence 0.95.
    high = classify_metric(
        [1.0, 2.2, 1.1, 2.5, 3.0],
        [20.0, 22.0, 21.0, 25.0, 30.0],
        tolerance=0.10,
        confidence=0.95,
        allowed_decrease=0.8,
        allowed_increase=1.2,
    )
    assert high.label == "High"
    passed = classify_metric(
        [20.0, 22.0, 21.0, 25.0, 30.0],
        [10.0, 12.2, 10.1, 12.5, 23.0],
        tolerance=0.10,
        confidence=0.95,
        allowed_decrease=0.5,
        allowed_increase=1.0,
    )
    # Clearly lower, but the mean ratio 0.675 is not at or below the allowed decrease 0.5.
    assert passed.label == "Pass"
    assert passed.effect_size == pytest.approx(67.8 / 118.0)


def test_tolerance_band_scales_with_the_estimate() -> None:
    # Hand case above at 80%: interval [2, 4], estimate 3. The band is ±tolerance·3.
    control, experiment = [1, 2, 3], [4, 5, 6]
    assert classify_metric(control, experiment, confidence=0.8, tolerance=0.6).label == "High"
    # 0.7·3 = 2.1 > lower end 2: the interval no longer clears the band.
    assert classify_metric(control, experiment, confidence=0.8, tolerance=0.7).label == "Pass"


def test_effect_size_gate_and_critical_threshold() -> None:
    control, experiment = normal(5, 100.0, sd=1.0), normal(6, 110.0, sd=1.0)  # ratio ≈ 1.10
    assert classify_metric(control, experiment, allowed_increase=1.2).label == "Pass"
    high = classify_metric(control, experiment, allowed_increase=1.05)
    assert high.label == "High" and not high.critical_failure
    crit = classify_metric(
        control, experiment, allowed_increase=1.05, critical=True, critical_increase=1.08
    )
    assert crit.label == "High" and crit.critical_failure
    mild = classify_metric(
        control, experiment, allowed_increase=1.05, critical=True, critical_increase=1.5
    )
    assert mild.label == "High" and not mild.critical_failure


def test_cles_effect_size() -> None:
    c = classify_metric([1, 2, 3], [4, 5, 6], confidence=0.8, effect_size_measure="cles")
    assert c.effect_size == 1.0
    assert c.label == "High"
    assert (
        classify_metric(
            [1, 2, 3], [4, 5, 6], confidence=0.8, effect_size_measure="cles", allowed_increase=1.01
        ).label
        == "Pass"
    )


@pytest.mark.parametrize(
    ("control", "experiment"),
    [([], [1.0, 2.0]), ([1.0, 2.0], []), ([np.nan, np.nan], [1.0]), ([], [])],
)
def test_no_data_is_nodata_never_an_exception(
    control: list[float], experiment: list[float]
) -> None:
    c = classify_metric(control, experiment)
    assert c.label == "Nodata"
    assert c.evidence.outcome is Outcome.INSUFFICIENT
    assert not c.critical_failure
    assert classify_metric(control, experiment, data_required=True).label == "NodataFailMetric"
    crit = classify_metric(control, experiment, critical=True, data_required=True)
    assert crit.label == "Nodata" and crit.critical_failure


def test_nan_strategies() -> None:
    removed = classify_metric([1.0, np.nan, 2.0, 3.0], [4.0, 5.0, 6.0, np.nan], confidence=0.8)
    assert removed.evidence.events == 6
    assert removed.evidence.interval == (2.0, 4.0)
    # 'replace' turns NaN into 0 (Kayenta's replaceNaNs): the control gains a 0.
    replaced = classify_metric(
        [1.0, np.nan, 2.0, 3.0], [4.0, 5.0, 6.0], confidence=0.8, nan_strategy="replace"
    )
    assert replaced.evidence.events == 7
    assert classify_metric([], [1.0], nan_strategy="replace").label == "Pass"


def test_infinite_values_give_error_not_exception() -> None:
    c = classify_metric([1.0, np.inf], [1.0, 2.0], critical=True)
    assert c.label == "Error"
    assert c.critical_failure
    assert c.evidence.outcome is Outcome.INSUFFICIENT


def test_identical_and_constant_samples() -> None:
    assert classify_metric([3.0, 1.0, 2.0], [1.0, 2.0, 3.0]).label == "Pass"
    assert classify_metric([5.0, 5.0], [5.0, 5.0, 5.0]).label == "Pass"
    # Both constant but different: Kayenta jitters ties away; the limit is a point interval.
    c = classify_metric([5.0] * 10, [7.0] * 10)
    assert c.label == "High"
    assert c.evidence.interval == (2.0, 2.0)


def test_evidence_is_json_safe() -> None:
    c = classify_metric(normal(1, 10.0), normal(2, 13.0))
    out = c.evidence.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert Evidence.model_validate_json(json.dumps(out)) == c.evidence
    assert out["statistic"] == c.evidence.statistic
    assert "pValue" in out["details"]


# ---------------------------------------------------------------------------------------------
# Score


def labelled(label: str, critical_failure: bool = False) -> MetricClassification:
    ev = Evidence(method="mann-whitney", outcome=Outcome.ACCEPT)
    return MetricClassification(label, critical_failure, ev)  # type: ignore[arg-type]


def test_score_all_pass_and_group_ratio() -> None:
    s = score_canary({"a": labelled("Pass"), "b": labelled("Pass")})
    assert (s.score, s.result) == (100.0, "Pass")
    grouped = score_canary(
        {
            "a": labelled("Pass"),
            "b": labelled("High"),
            "c": labelled("Pass"),
            "d": labelled("NodataFailMetric"),
        },
        groups={"a": "g", "b": "g", "c": "g", "d": "g"},
    )
    assert grouped.group_scores == {"g": 50.0}
    assert (grouped.score, grouped.result) == (50.0, "Marginal")


def test_score_group_weights_are_percentages_with_the_rest_shared() -> None:
    results = {"lat": labelled("High"), "err": labelled("Pass"), "cpu": labelled("Pass")}
    groups = {"lat": "latency", "err": "errors", "cpu": "saturation"}
    # latency 0, errors 100, saturation 100: weighted 60/20/20 → 40.
    s = score_canary(
        results, groups=groups, group_weights={"latency": 60, "errors": 20, "saturation": 20}
    )
    assert (s.score, s.result) == (40.0, "Fail")
    # Only latency weighted (60): errors and saturation share the remaining 40 → 40.
    assert score_canary(results, groups=groups, group_weights={"latency": 60}).score == 40.0
    # No weights: equal thirds → 66.67, Marginal.
    equal = score_canary(results, groups=groups)
    assert equal.score == pytest.approx(66.67)
    assert equal.result == "Marginal"
    with pytest.raises(ValueError):
        score_canary(results, group_weights={"lat": 80, "err": 30})


def test_critical_failure_forces_zero() -> None:
    s = score_canary(
        {"a": labelled("Pass"), "b": labelled("Pass"), "c": labelled("High", True)},
        groups={"a": "g", "b": "g", "c": "h"},
        group_weights={"g": 90, "h": 10},
    )
    assert s.critical_failure
    assert (s.score, s.result) == (0.0, "Fail")


def test_nodata_groups_count_full_but_too_much_nodata_fails() -> None:
    s = score_canary({"a": labelled("Pass"), "b": labelled("Pass"), "c": labelled("Nodata")})
    assert s.group_scores["c"] == 100.0
    assert s.score == 100.0
    half = score_canary({"a": labelled("Pass"), "b": labelled("Nodata")})
    assert (half.score, half.result) == (0.0, "Fail")


def test_score_thresholds() -> None:
    three_of_four = {k: labelled("Pass") for k in "abc"} | {"d": labelled("Low")}
    groups = dict.fromkeys("abcd", "g")
    assert score_canary(three_of_four, groups=groups).result == "Pass"  # 75 >= 75
    assert score_canary(three_of_four, groups=groups, pass_threshold=80).result == "Marginal"
    assert (
        score_canary(three_of_four, groups=groups, pass_threshold=90, marginal_threshold=80).result
        == "Fail"
    )
