import math

import numpy as np
import pytest

from simulations.metrics import (
    abort_times,
    calibrate_grid,
    calibrate_upper,
    clopper_pearson_interval,
    first_true,
    harm_before,
    time_quantile,
    wilson_interval,
)


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_interval(0, 100)
    assert lo == 0.0 and hi == pytest.approx(0.0370, abs=1e-4)  # 3.84/(100+3.84)
    lo, hi = wilson_interval(50, 100)
    assert (lo, hi) == pytest.approx((0.4038, 0.5962), abs=1e-4)


def test_clopper_pearson_zero_of_n_is_rule_of_three_ish() -> None:
    lo, hi = clopper_pearson_interval(0, 1000)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 1000), rel=1e-6)
    lo, hi = clopper_pearson_interval(10, 100)
    assert lo < 0.1 < hi


def test_first_true_and_abort_times() -> None:
    mask = np.array([[False, True, True], [False, False, False], [True, False, False]])
    ticks = first_true(mask)
    assert list(ticks) == [1, -1, 0]
    times = np.array([10.0, 20.0, 30.0])
    assert list(abort_times(ticks, times)) == [20.0, math.inf, 10.0]


def test_harm_counts_through_the_aborting_interval() -> None:
    excess = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    assert list(harm_before(excess, np.array([1, -1]))) == [3.0, 3.0]


def test_time_quantile_counts_misses_as_infinite() -> None:
    t = np.array([10.0, 20.0, np.inf, np.inf])
    assert time_quantile(t, 0.5) == 20.0
    assert time_quantile(t, 0.9) == math.inf
    assert time_quantile(np.array([10.0, np.inf, np.inf]), 0.5) == math.inf


def test_calibrate_upper_hits_target_rate_on_a_toy_statistic() -> None:
    rng = np.random.default_rng(0)
    stat = rng.normal(size=10_000)
    thr = calibrate_upper(stat, 0.05)
    assert np.mean(stat > thr) <= 0.05
    assert np.mean(stat > thr) > 0.049  # and not needlessly conservative
    assert thr == pytest.approx(1.645, abs=0.05)
    # Ties (discrete rates) never push the realised rate over the target.
    discrete = np.repeat([0.0, 1.0, 2.0], [90, 6, 4])
    thr = calibrate_upper(discrete, 0.05)
    assert np.mean(discrete > thr) <= 0.05 and thr == 1.0


def test_calibrate_grid_finds_the_level_of_a_toy_comparator() -> None:
    """A toy judge that aborts an A/A run when max of 10 normal looks exceeds z."""
    rng = np.random.default_rng(1)
    looks = rng.normal(size=(4000, 10)).max(axis=1)

    def rate(z: float) -> float:
        return float(np.mean(looks > z))

    z, r = calibrate_grid([1.0, 1.5, 2.0, 2.5, 3.0], rate, 0.05)
    # P(max of 10 > 2.5) = 1 - Φ(2.5)^10 ≈ 0.060, P(max > 3) ≈ 0.013
    assert z == 3.0 and r <= 0.05 and rate(2.5) > 0.05
