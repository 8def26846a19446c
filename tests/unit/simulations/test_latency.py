import numpy as np
import pytest

from simulations.latency import (
    PROMETHEUS_BOUNDS,
    HeavyTail,
    LogNormal,
    bin_probabilities,
    histogram_quantile,
    transformed_cdf,
)

BOUNDS = np.asarray(PROMETHEUS_BOUNDS)


def test_lognormal_median_is_where_cdf_is_half() -> None:
    assert LogNormal(0.1, 0.5).cdf(np.array([0.1]))[0] == pytest.approx(0.5)


def test_heavy_tail_has_more_mass_above_a_second_than_its_body() -> None:
    h = HeavyTail()
    assert 1 - h.cdf(np.array([1.0]))[0] > 10 * (1 - h.body.cdf(np.array([1.0]))[0])


def test_bin_probabilities_sum_to_one_and_are_nonnegative() -> None:
    c = transformed_cdf(LogNormal(), BOUNDS, np.array([1.0, 1.5]), np.array([0.0, 0.02]))
    p = bin_probabilities(c)
    assert p.shape == (2, len(BOUNDS) + 1)
    assert np.allclose(p.sum(axis=-1), 1.0)
    assert np.all(p >= 0)


def test_scale_moves_mass_above_every_edge() -> None:
    c = transformed_cdf(LogNormal(), BOUNDS, np.array([1.0, 1.25]))
    assert np.all(c[1] <= c[0])
    assert np.any(c[1] < c[0] - 0.01)


def test_tail_only_regression_adds_its_fraction_above_the_shifted_point() -> None:
    shape = LogNormal(0.08, 0.6)
    c = transformed_cdf(shape, BOUNDS, np.array([1.0, 1.0]), np.array([0.0, 0.02]), 0.3)
    k = PROMETHEUS_BOUNDS.index(0.25)
    # A request that got +300 ms is above 250 ms whatever it was before: excess = 2%·P(L <= .25).
    assert (c[0, k] - c[1, k]) == pytest.approx(0.02 * c[0, k])
    # The median bucket barely moves (at most the 2% that left it).
    m = PROMETHEUS_BOUNDS.index(0.1)
    assert c[0, m] - c[1, m] <= 0.02


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    bounds = (0.1, 0.2, 0.4)
    # 10 requests <= .1, 10 more <= .2, nothing else: p50 is .1, p75 interpolates to .15.
    cum = np.array([[10.0, 20.0, 20.0, 20.0]])
    assert histogram_quantile(0.5, bounds, cum)[0] == pytest.approx(0.1)
    assert histogram_quantile(0.75, bounds, cum)[0] == pytest.approx(0.15)
    # Quantile in the +Inf bucket gives the highest finite bound; empty gives NaN.
    assert histogram_quantile(0.99, bounds, np.array([[0.0, 0, 0, 10]]))[0] == 0.4
    assert np.isnan(histogram_quantile(0.5, bounds, np.zeros((1, 4)))[0])
