"""The sequential sample-ratio guard: a correct or merely imprecise split never flags, counter
resets never flag, a canary that loses most of its share (or all of it) does."""

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
def test_a_lost_share_is_flagged_and_a_doubled_one_is_not() -> None:
    """Gross loss only (issue 12): the count tests condition on the observed split, so a canary
    getting more than asked is no reason to pause; one getting a fifth of it is."""
    lost = run(0.2, runs=500, steps=30, seed=2, alpha=0.001)
    assert lost.mismatch.all()
    ev = lost.evidence(0)
    assert ev.outcome is Outcome.REJECT
    assert ev.estimate is not None and 0.1 < ev.estimate < 0.35
    assert ev.details.loss_ratio == 0.5
    doubled = run(2.0, runs=500, steps=30, seed=2, alpha=0.001)
    assert not doubled.mismatch.any()


RATES = (20.0, 60.0, 200.0, 600.0, 2000.0)  # requests/s; 60 s intervals


def healthy(
    *, runs: int, seed: int, share_ratio: float, resets: int = 0, steps: int = 60
) -> SampleRatioCheck:
    """5% asked, the mesh routes ``share_ratio`` x that; every ``resets``-th interval the canary's
    increase() loses a random part (up to all) of its requests, as across a counter reset."""
    rng = np.random.default_rng(seed)
    chk = SampleRatioCheck(alpha=0.001, batch=runs)
    rate = rng.choice(RATES, runs)
    w = 0.05
    for t in range(steps):
        n = rng.poisson(rate * 60)
        p = share_ratio * w / (share_ratio * w + 1 - w)
        c = rng.binomial(n, p).astype(float)
        if resets and t % resets == resets - 1:
            c *= rng.uniform(0.0, 1.0, runs)
        chk.update(c, n - c, w)
    return chk


@pytest.mark.statistical
@pytest.mark.parametrize("share_ratio", [0.8, 1.0, 1.2])
@pytest.mark.parametrize("resets", [0, 2, 5])
def test_imprecision_and_resets_pause_at_most_one_percent(share_ratio: float, resets: int) -> None:
    """Mesh imprecision of +-20% (4% routed when 5% asked) and a counter reset every 2 or 5
    intervals, 20-2000 req/s: healthy rollouts paused <= 1% (upper 99.9% binomial bound)."""
    runs = 2000
    chk = healthy(
        runs=runs, seed=int(share_ratio * 10) + resets, share_ratio=share_ratio, resets=resets
    )
    paused = int(chk.mismatch.sum())
    assert paused <= binom.ppf(0.001, runs, 0.01), f"{paused} of {runs} healthy runs paused"


@pytest.mark.statistical
@pytest.mark.parametrize("lost_to", [0.0, 0.25])
def test_gross_loss_is_caught_within_a_few_intervals(lost_to: float) -> None:
    """After 20 healthy intervals the canary gets none (or a quarter) of its share: caught in
    every run at 20-2000 req/s, within 10 intervals."""
    runs = 500
    rng = np.random.default_rng(11)
    chk = SampleRatioCheck(alpha=0.001, batch=runs)
    rate = rng.choice(RATES, runs)
    w = 0.05
    for t in range(30):
        q = 1.0 if t < 20 else lost_to
        n = rng.poisson(rate * 60)
        c = rng.binomial(n, q * w / (q * w + 1 - w)).astype(float)
        chk.update(c, n - c, w)
        if t < 21:
            assert not chk.mismatch.any()
    assert chk.mismatch.all()


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
