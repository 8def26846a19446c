"""Saturation gauges: the one-sided normal-mixture SPRT and its honesty about being approximate."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import binom

from analysis.stats.evidence import Outcome
from analysis.stats.sequential import NormalMixtureSPRT


def run(
    mu: float, sd: float, *, runs: int, steps: int, seed: int, **kw: float
) -> NormalMixtureSPRT:
    rng = np.random.default_rng(seed)
    proc = NormalMixtureSPRT(batch=runs, **kw)
    for _ in range(steps):
        proc.update(np.exp(rng.normal(mu, sd, runs)) * 2.0, 2.0)
    return proc


def test_closed_form_is_zero_before_data_and_matches_a_numeric_mixture() -> None:
    proc = NormalMixtureSPRT(tau=0.1, sigma=0.05)
    assert proc.log_e_value[0] == 0.0
    ys = [0.02, -0.01, 0.04, 0.03]
    for y in ys:
        proc.update(math.exp(y), 1.0)
    theta = np.linspace(0, 1.5, 300_001)
    s, n = sum(ys), len(ys)
    lr = np.exp(theta * s / 0.05**2 - n * theta**2 / (2 * 0.05**2))
    prior = 2 * np.exp(-0.5 * (theta / 0.1) ** 2) / (0.1 * math.sqrt(2 * math.pi))
    numeric = float(np.sum(lr * prior) * (theta[1] - theta[0]))
    assert proc.log_e_value[0] == pytest.approx(math.log(numeric), abs=1e-3)


@pytest.mark.statistical
@pytest.mark.parametrize("sigma", [None, 0.1])
def test_false_alarms_stay_within_alpha_when_nothing_changed(sigma: float | None) -> None:
    runs = 3000
    proc = run(0.0, 0.1, runs=runs, steps=150, seed=1, tau=0.05, sigma=sigma)  # type: ignore[arg-type]
    assert proc.rejected.mean() <= binom.ppf(0.999, runs, 0.05) / runs


@pytest.mark.statistical
def test_a_ten_percent_increase_is_detected() -> None:
    proc = run(math.log(1.1), 0.05, runs=500, steps=60, seed=2, tau=0.1)
    assert proc.rejected.mean() >= 0.98
    ev = proc.evidence(0)
    assert ev.outcome is Outcome.REJECT
    assert ev.approximate and "approximate" in ev.rule and "sample standard deviation" in ev.rule
    assert ev.estimate is not None and ev.estimate == pytest.approx(1.1, rel=0.05)


@pytest.mark.parametrize("pair", [(math.nan, 1.0), (0.0, 1.0), (1.0, 0.0), (-1.0, 2.0), (0.0, 0.0)])
def test_unusable_gauge_values_are_insufficient(pair: tuple[float, float]) -> None:
    proc = NormalMixtureSPRT(tau=0.1)
    for _ in range(30):
        proc.update(*pair)
    assert proc.evidence().outcome is Outcome.INSUFFICIENT
    assert proc.log_e_value[0] == 0.0
    assert proc.events[0] == 0


def test_constant_gauges_do_not_blow_up() -> None:
    proc = NormalMixtureSPRT(tau=0.1, theta0=math.log(1.1))
    for _ in range(30):
        proc.update(1.0, 1.0)
    assert np.isfinite(proc.log_e_value[0]) and not proc.rejected[0]
    assert proc.evidence().outcome is Outcome.ACCEPT


def test_state_round_trip_continues_identically() -> None:
    rng = np.random.default_rng(3)
    vals = np.exp(rng.normal(0.02, 0.05, 40))
    straight = NormalMixtureSPRT(tau=0.1, theta0=math.log(1.1))
    for v in vals[:20]:
        straight.update(v, 1.0)
    resumed = NormalMixtureSPRT.from_state(json.loads(json.dumps(straight.to_state())))
    for v in vals[20:]:
        straight.update(v, 1.0)
        resumed.update(v, 1.0)
    assert resumed.evidence() == straight.evidence()
