"""The sequential sample-ratio check: a correct split never flags, a skewed one does."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import binom

from analysis.stats.evidence import Outcome
from analysis.stats.sequential import SampleRatioCheck

SHARES = np.array([0.01, 0.05, 0.1, 0.25, 0.5])


def run(multiplier: float, *, runs: int, steps: int, seed: int, alpha: float) -> SampleRatioCheck:
    """Configured shares change every interval; the canary gets odds x ``multiplier``."""
    rng = np.random.default_rng(seed)
    chk = SampleRatioCheck(alpha=alpha, batch=runs)
    for _ in range(steps):
        n = rng.integers(0, 800, runs)
        rho = rng.choice(SHARES, runs)
        p = rho * multiplier / (rho * multiplier + 1 - rho)
        c = rng.binomial(n, p)
        chk.update(c, n - c, rho)
    return chk


@pytest.mark.statistical
def test_correct_split_flags_at_most_alpha() -> None:
    runs, alpha = 2000, 0.01
    chk = run(1.0, runs=runs, steps=100, seed=1, alpha=alpha)
    assert chk.mismatch.mean() <= binom.ppf(0.999, runs, alpha) / runs


@pytest.mark.statistical
def test_a_doubled_share_is_flagged() -> None:
    chk = run(2.0, runs=500, steps=30, seed=2, alpha=0.001)
    assert chk.mismatch.all()
    ev = chk.evidence(0)
    assert ev.outcome is Outcome.REJECT
    assert ev.estimate is not None and 1.5 < ev.estimate < 2.7


@pytest.mark.parametrize(
    "interval",
    [
        (math.nan, 10.0, 0.1),
        (5.0, -10.0, 0.1),
        (0.0, 0.0, 0.1),
        (50.0, 50.0, 0.0),
        (50.0, 50.0, 1.0),
        (50.0, 50.0, math.nan),
    ],
)
def test_unusable_intervals_say_nothing(interval: tuple[float, float, float]) -> None:
    chk = SampleRatioCheck()
    for _ in range(50):
        chk.update(*interval)
    assert chk.evidence().outcome is Outcome.INSUFFICIENT
    assert chk.log_e_value[0] == 0.0 and not chk.mismatch[0]


def test_state_round_trip_continues_identically() -> None:
    straight = SampleRatioCheck()
    for _ in range(5):
        straight.update(30.0, 270.0, 0.1)
    resumed = SampleRatioCheck.from_state(json.loads(json.dumps(straight.to_state())))
    for _ in range(5):
        straight.update(45.0, 255.0, 0.1)
        resumed.update(45.0, 255.0, 0.1)
    assert resumed.evidence() == straight.evidence()
