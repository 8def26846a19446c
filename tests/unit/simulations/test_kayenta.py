"""The batched Kayenta-style labels must agree with the scalar judge the controller uses."""

import numpy as np
from scipy.special import ndtri

from analysis.stats.mann_whitney import classify_metric
from simulations.judges.kayenta import _tie_term, high_statistic


def test_tie_term_counts_groups_and_ignores_nan() -> None:
    v = np.array([[1.0, 1.0, 2.0, np.nan], [3.0, 3.0, 3.0, 4.0]])
    assert list(_tie_term(v)) == [6.0, 24.0]  # 2³−2 ; 3³−3


def test_batch_high_label_matches_classify_metric() -> None:
    rng = np.random.default_rng(0)
    z = float(-ndtri(0.01))  # 98% interval
    agree = checked = 0
    for w in (2, 3, 5, 8, 15):
        runs = 150
        base = rng.poisson(2.0, (runs, w)) / 60.0  # discrete, tie-heavy, like error rates
        shift = rng.choice([0.0, 1.0, 3.0], size=(runs, 1))
        canary = rng.poisson(2.0 + shift, (runs, w)) / 60.0
        canary[rng.random((runs, w)) < 0.1] = np.nan
        stat = high_statistic(base, canary)
        for i in range(runs):
            label = classify_metric(
                base[i], canary[i][~np.isnan(canary[i])], direction="increase", confidence=0.98
            ).label
            checked += 1
            agree += (label == "High") == bool(stat[i] > z)
    assert checked == 750 and agree == checked


def test_separated_tiny_samples_are_high_at_any_confidence() -> None:
    # R's boundary rule: the interval's lower end is the smallest difference, above the bound.
    stat = high_statistic(np.array([[0.01, 0.012]]), np.array([[0.03, 0.05]]))
    assert np.isposinf(stat[0])
    assert (
        classify_metric(
            [0.01, 0.012], [0.03, 0.05], direction="increase", confidence=0.999999
        ).label
        == "High"
    )
