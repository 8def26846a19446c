"""The conditional count e-process: validity, power, coverage, robustness to bad data, persistence.

Statistical checks use fixed seeds; a rate bounded by alpha is allowed alpha plus the binomial
99.9% sampling margin over the simulated runs, so they fail only when the method is wrong.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from analysis.stats.evidence import Evidence, Outcome
from analysis.stats.sequential import RateRatioEProcess


def upper_999(rate: float, runs: int) -> float:
    """Largest empirical rate consistent (one-sided 99.9%) with a true rate of ``rate``."""
    return float(binom.ppf(0.999, runs, rate)) / runs


def simulate(
    ratio: float,
    *,
    runs: int,
    intervals: int,
    seed: int,
    tolerance: float = 1.2,
    base_rate: float = 0.01,
    with_ci: bool = False,
    volume_range: tuple[float, float] = (20, 2000),
) -> tuple[RateRatioEProcess, np.ndarray]:
    """Poisson events on binomially split traffic with per-run varying volume and weight."""
    rng = np.random.default_rng(seed)
    proc = RateRatioEProcess(tolerance=tolerance, batch=runs)
    covered = np.ones(runs, dtype=bool)
    volume = rng.uniform(*volume_range, size=runs)  # requests per interval, per run
    for t in range(intervals):
        diurnal = 1 + 0.5 * math.sin(2 * math.pi * t / 96)
        n = rng.poisson(volume * diurnal)
        weight = rng.choice([0.01, 0.05, 0.1, 0.25, 0.5], size=runs)
        nc = rng.binomial(n, weight).astype(float)
        nb = n - nc
        incident = 1 + 4 * (rng.random(runs) < 0.02)  # shared incidents hit both arms alike
        xc = rng.poisson(nc * base_rate * incident * ratio).astype(float)
        xb = rng.poisson(nb * base_rate * incident).astype(float)
        proc.update(xc, nc, xb, nb)
        if with_ci:
            lo, hi = proc.confidence_interval()
            covered &= (lo <= ratio) & (ratio <= hi)
    return proc, covered


@pytest.mark.statistical
@pytest.mark.parametrize(("ratio", "seed"), [(1.2, 11), (1.0, 12)])
def test_false_rejections_stay_within_alpha_under_the_null(ratio: float, seed: int) -> None:
    runs = 2000
    proc, _ = simulate(ratio, runs=runs, intervals=200, seed=seed)
    assert proc.rejected.mean() <= upper_999(proc.alpha, runs)


@pytest.mark.statistical
def test_triple_error_rate_is_detected_in_nearly_all_runs() -> None:
    proc, _ = simulate(3.0, runs=500, intervals=60, seed=13)
    assert proc.rejected.mean() >= 0.98


@pytest.mark.statistical
@pytest.mark.parametrize(("ratio", "seed"), [(1.0, 21), (2.0, 22), (0.5, 23)])
def test_confidence_sequence_covers_the_true_ratio_at_all_times(ratio: float, seed: int) -> None:
    runs = 800
    _, covered = simulate(ratio, runs=runs, intervals=80, seed=seed, with_ci=True)
    miss = 1 - covered.mean()
    assert miss <= upper_999(0.05, runs)


@pytest.mark.statistical
def test_confidence_sequence_shrinks_to_within_tolerance_for_an_equal_canary() -> None:
    # ~1000 requests an interval: even at a 1% weight the canary sees ~800 errors in 400 intervals.
    proc, _ = simulate(
        1.0, runs=200, intervals=400, seed=24, base_rate=0.02, volume_range=(1000, 2000)
    )
    assert proc.within_tolerance.mean() >= 0.95
    lo, hi = proc.confidence_interval()
    assert np.all(lo < hi)


def test_e_value_is_invariant_to_the_order_of_intervals() -> None:
    rng = np.random.default_rng(5)
    n = rng.integers(1, 500, size=(40, 2)).astype(float)
    x = rng.binomial(n.astype(int), [0.03, 0.01]).astype(float)
    forward = RateRatioEProcess()
    backward = RateRatioEProcess()
    for t in range(40):
        forward.update(x[t, 0], n[t, 0], x[t, 1], n[t, 1])
    for t in rng.permutation(40):
        backward.update(x[t, 0], n[t, 0], x[t, 1], n[t, 1])
    np.testing.assert_allclose(forward.log_e_value, backward.log_e_value, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(forward.confidence_interval(), backward.confidence_interval())


def test_batch_runs_are_independent_of_each_other() -> None:
    batch = RateRatioEProcess(batch=2)
    single = RateRatioEProcess()
    for t in range(10):
        batch.update([5.0, 2.0 * t], [100.0, 100.0], [3.0, 1.0], [300.0, 300.0])
        single.update(2.0 * t, 100.0, 1.0, 300.0)
    assert batch.log_e_value[1] == pytest.approx(single.log_e_value[0])


@pytest.mark.parametrize(
    "interval",
    [
        (math.nan, 100.0, 1.0, 100.0),
        (1.0, math.nan, 1.0, 100.0),
        (-3.0, 100.0, 1.0, 100.0),
        (1.0, -100.0, 1.0, 100.0),
        (5.0, 0.0, 1.0, 100.0),
        (5.0, 100.0, 1.0, 0.0),
        (0.0, 0.0, 0.0, 0.0),
        (0.0, 100.0, 0.0, 100.0),
        (math.inf, 100.0, 1.0, 100.0),
    ],
)
def test_missing_negative_and_empty_intervals_are_insufficient_not_evidence(
    interval: tuple[float, float, float, float],
) -> None:
    proc = RateRatioEProcess()
    for _ in range(50):
        proc.update(*interval)
    ev = proc.evidence()
    assert ev.outcome is Outcome.INSUFFICIENT
    assert proc.log_e_value[0] == 0.0
    assert not proc.rejected[0]
    assert ev.interval == (0.0, math.inf)


def test_a_missing_interval_is_skipped_not_counted_as_zero_errors() -> None:
    with_gap = RateRatioEProcess()
    without = RateRatioEProcess()
    for t in range(20):
        without.update(4.0, 100.0, 2.0, 400.0)
        with_gap.update(4.0, 100.0, 2.0, 400.0)
        if t % 3 == 0:
            with_gap.update(math.nan, 100.0, math.nan, 400.0)
    assert with_gap.log_e_value[0] == pytest.approx(without.log_e_value[0])
    assert with_gap.events[0] == without.events[0]


def test_empty_arrays_are_rejected_as_a_shape_error_only_when_the_shape_is_wrong() -> None:
    proc = RateRatioEProcess(batch=3)
    with pytest.raises(ValueError, match="shape"):
        proc.update([1.0, 2.0], 100.0, 1.0, 100.0)
    proc.update(1.0, 100.0, 1.0, 100.0)  # scalars broadcast to every run
    assert proc.intervals.tolist() == [1.0, 1.0, 1.0]


counts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e6),
    st.integers(min_value=-5, max_value=10_000).map(float),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(counts, counts, counts, counts), max_size=25))
def test_e_value_and_interval_stay_well_defined_under_any_input(
    intervals: list[tuple[float, float, float, float]],
) -> None:
    proc = RateRatioEProcess()
    for iv in intervals:
        proc.update(*iv)
    assert np.isfinite(proc.log_e_value[0])
    lo, hi = proc.confidence_interval()
    assert 0.0 <= lo[0] < hi[0]
    ev = proc.evidence()
    assert ev.outcome in set(Outcome)
    assert Evidence.model_validate_json(ev.model_dump_json()) == ev


def test_rejection_is_sticky_and_the_evidence_says_why() -> None:
    proc = RateRatioEProcess(tolerance=1.2, alpha=0.05)
    for _ in range(30):
        proc.update(20.0, 100.0, 10.0, 900.0)
    assert proc.rejected[0]
    ev = proc.evidence()
    assert ev.outcome is Outcome.REJECT
    assert ev.method == "sequential-rate-ratio"
    assert ev.log_e_value is not None and ev.log_threshold is not None
    assert ev.log_threshold == pytest.approx(math.log(20))
    assert ev.log_e_value >= ev.log_threshold and ev.crossed()
    assert "1/alpha = 20" in ev.rule and "<= 1.2" in ev.rule
    assert ev.estimate is not None and 10 < ev.estimate < 25
    for _ in range(300):  # a long good stretch afterwards does not un-reject
        proc.update(1.0, 100.0, 9.0, 900.0)
    assert proc.rejected[0]


def test_state_round_trip_continues_identically() -> None:
    rng = np.random.default_rng(8)
    data = [(float(rng.poisson(3)), 100.0, float(rng.poisson(20)), 900.0) for _ in range(40)]
    straight = RateRatioEProcess(tolerance=1.1, alpha=0.01)
    for iv in data[:20]:
        straight.update(*iv)
    resumed = RateRatioEProcess.from_state(json.loads(json.dumps(straight.to_state())))
    for iv in data[20:]:
        straight.update(*iv)
        resumed.update(*iv)
    assert resumed.log_e_value[0] == pytest.approx(straight.log_e_value[0], abs=1e-12)
    assert resumed.evidence() == straight.evidence()


def test_state_is_only_for_a_single_run() -> None:
    with pytest.raises(ValueError, match="batch == 1"):
        RateRatioEProcess(batch=2).to_state()


def simulate_with(proc: RateRatioEProcess, ratio: float, intervals: int, seed: int) -> np.ndarray:
    """Feed ``proc`` Poisson errors at ``ratio`` (same traffic model as :func:`simulate`); return
    per run whether it was ever shown within tolerance."""
    rng = np.random.default_rng(seed)
    runs = proc.batch
    volume = rng.uniform(200, 2000, size=runs)
    ever_shown = np.zeros(runs, dtype=bool)
    for _ in range(intervals):
        n = rng.poisson(volume)
        weight = rng.choice([0.05, 0.25, 0.5], size=runs)
        nc = rng.binomial(n, weight).astype(float)
        nb = n - nc
        proc.update(rng.poisson(nc * 0.01 * ratio), nc, rng.poisson(nb * 0.01), nb)
        ever_shown |= proc.within_tolerance
    return ever_shown


@pytest.mark.statistical
@pytest.mark.parametrize("scales", [(0.05, 0.15, 0.5, 1.5), (0.3, 1.0), (2.0,)])
def test_any_mixture_of_prior_scales_keeps_false_rejections_within_alpha(
    scales: tuple[float, ...],
) -> None:
    """The worst null is the boundary r = r0: a mixture of scales is still one prior there."""
    runs = 1000
    proc = RateRatioEProcess(tolerance=1.1, batch=runs, prior_scales=scales)
    simulate_with(proc, 1.1, intervals=120, seed=31)
    assert proc.rejected.mean() <= upper_999(proc.alpha, runs)


def test_a_mixture_costs_at_most_log_of_its_number_of_scales() -> None:
    """Against each of its own components, the equal-weight mixture's e-value is never lower than
    ``1/len(scales)`` of that component's (what the module docstring promises)."""
    rng = np.random.default_rng(32)
    scales = (0.05, 0.15, 0.5, 1.5)
    mixed = RateRatioEProcess(batch=50, prior_scales=scales)
    singles = [RateRatioEProcess(batch=50, prior_scales=(s,)) for s in scales]
    for _ in range(30):
        nc = rng.uniform(50, 500, 50)
        nb = rng.uniform(500, 5000, 50)
        xc = rng.poisson(nc * 0.02 * rng.choice([1.0, 1.5, 5.0], 50)).astype(float)
        xb = rng.poisson(nb * 0.02).astype(float)
        for p in (mixed, *singles):
            p.update(xc, nc, xb, nb)
    best = np.max([p.log_e_value for p in singles], axis=0)
    assert np.all(mixed.log_e_value >= best - math.log(len(scales)) - 1e-9)
    assert np.any(mixed.log_e_value > best - math.log(len(scales)) + 0.1)


@pytest.mark.statistical
@pytest.mark.parametrize(("ratio", "seed"), [(1.1, 33), (1.3, 34)])
def test_a_canary_at_or_past_the_tolerance_is_rarely_shown_within_it(
    ratio: float, seed: int
) -> None:
    """One-sided coverage: ``within_tolerance`` at any time means "upper confidence bound below
    r0"; for a true ratio at or above r0 that must happen in at most alpha of runs, ever."""
    runs = 1000
    proc = RateRatioEProcess(tolerance=1.1, batch=runs)
    ever_shown = simulate_with(proc, ratio, intervals=120, seed=seed)
    assert ever_shown.mean() <= upper_999(proc.alpha, runs)


@pytest.mark.statistical
def test_the_one_sided_bound_shows_a_better_canary_within_tolerance() -> None:
    proc = RateRatioEProcess(tolerance=1.1, batch=300)
    simulate_with(proc, 0.7, intervals=150, seed=35)
    assert proc.within_tolerance.mean() >= 0.9
    assert all(
        proc.evidence(i).outcome is Outcome.ACCEPT for i in range(300) if proc.within_tolerance[i]
    )


def test_prior_scales_must_be_positive() -> None:
    with pytest.raises(ValueError, match="prior_scales"):
        RateRatioEProcess(prior_scales=())
    with pytest.raises(ValueError, match="prior_scales"):
        RateRatioEProcess(accept_prior_scales=(0.1, -1.0))


@pytest.mark.statistical
def test_a_looser_promote_tolerance_keeps_its_own_one_sided_guarantee() -> None:
    """Abort above 1.1, promote early below 1.2: a canary at 1.2 is still rarely shown below it,
    while an equal canary is shown within the looser bar more often than within 1.1."""
    runs = 1000
    loose = RateRatioEProcess(tolerance=1.1, promote_tolerance=1.2, batch=runs)
    assert simulate_with(loose, 1.2, intervals=120, seed=36).mean() <= upper_999(0.05, runs)
    strict = RateRatioEProcess(tolerance=1.1, batch=300)
    loose_equal = RateRatioEProcess(tolerance=1.1, promote_tolerance=1.2, batch=300)
    shown_strict = simulate_with(strict, 1.0, intervals=120, seed=37)
    shown_loose = simulate_with(loose_equal, 1.0, intervals=120, seed=37)
    assert shown_loose.mean() > shown_strict.mean() + 0.2


def test_promote_tolerance_survives_a_state_round_trip_and_must_be_sane() -> None:
    proc = RateRatioEProcess(tolerance=1.1, promote_tolerance=1.17)
    proc.update(3.0, 500.0, 30.0, 5000.0)
    resumed = RateRatioEProcess.from_state(json.loads(json.dumps(proc.to_state())))
    assert resumed.promote_tolerance == 1.17
    assert resumed.evidence() == proc.evidence()
    assert "below 1.17" in proc.evidence().rule
    for bad in (0.0, math.inf, 1e-9):
        with pytest.raises(ValueError, match="promote_tolerance"):
            RateRatioEProcess(tolerance=1.1, promote_tolerance=bad)


@pytest.mark.statistical
def test_warm_up_against_a_raised_null_keeps_false_rejections_within_alpha() -> None:
    # a cold canary exactly at the raised null (r0 x a decaying factor up to 3) for 12 intervals,
    # then exactly at r0, with drift, incidents and changing shares: the worst case the
    # envelope allows, so false rejections must stay within alpha
    runs = 2000
    rng = np.random.default_rng(21)
    proc = RateRatioEProcess(tolerance=1.1, batch=runs)
    volume = rng.uniform(20, 2000, size=runs)
    for t in range(150):
        n = rng.poisson(volume * (1 + 0.5 * math.sin(2 * math.pi * t / 96)))
        weight = rng.choice([0.05, 0.25, 0.5], size=runs)
        nc = rng.binomial(n, weight).astype(float)
        nb = n - nc
        incident = 1 + 4 * (rng.random(runs) < 0.02)
        factor = 1 + 2 * math.exp(-t / 2) if t < 12 else 1.0
        xc = rng.poisson(nc * 0.01 * incident * 1.1 * factor).astype(float)
        xb = rng.poisson(nb * 0.01 * incident).astype(float)
        if t < 12:
            proc.update_warmup(xc, nc, xb, nb, factor)
        else:
            proc.update(xc, nc, xb, nb)
    assert proc.rejected.mean() <= upper_999(proc.alpha, runs)
    assert proc.events.max() > 0 and not proc.within_tolerance.all()


def test_a_regression_far_above_the_raised_null_rejects_in_the_warm_up() -> None:
    proc = RateRatioEProcess(tolerance=1.1, alpha=0.025)
    for _ in range(6):  # x10 errors against a null raised to x3.3
        proc.update_warmup(100.0, 1000.0, 90.0, 9000.0, 3.0)
    assert proc.rejected[0]
    assert proc.events[0] == 0  # warm-up intervals never enter the estimate or promotion
    restored = RateRatioEProcess.from_state(json.loads(json.dumps(proc.to_state())))
    assert restored.log_e_value[0] == pytest.approx(proc.log_e_value[0])
    with pytest.raises(ValueError, match="null_factor"):
        proc.update_warmup(1.0, 10.0, 1.0, 10.0, 0.5)


def test_the_warm_up_costs_a_canary_below_the_raised_null_at_most_log_2() -> None:
    plain = RateRatioEProcess(tolerance=1.1)
    warmed = RateRatioEProcess(tolerance=1.1)
    warmed.update_warmup(20.0, 1000.0, 90.0, 9000.0, 3.0)  # x2: evidence against x3.3
    for _ in range(5):
        plain.update(20.0, 1000.0, 90.0, 9000.0)
        warmed.update(20.0, 1000.0, 90.0, 9000.0)
    assert warmed.log_e_value[0] >= plain.log_e_value[0] - math.log(2) - 1e-9
