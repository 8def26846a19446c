"""The families' traffic generators do what they state (fixed seeds; tolerances are several
standard errors of the checked statistic)."""

import numpy as np
import pytest

from simulations.schedule import WeightSchedule
from simulations.traffic import Effect, Nuisances, TrafficModel, simulate

ONE_STEP = WeightSchedule.stepped((0.5,), 600)
SMALL = WeightSchedule.stepped((0.05,), 600)


def test_per_pod_counts_add_up_to_the_arms_and_have_one_column_per_pod() -> None:
    m = TrafficModel(200.0, canary_pods=3, baseline_pods=7, nuisances=Nuisances(pod_log_sd=0.3))
    tr = simulate(m, SMALL, 20, seed=1)
    assert tr.canary.pod_requests.shape == (20, 60, 3)
    assert tr.baseline.pod_errors.shape == (20, 60, 7)
    for arm in (tr.canary, tr.baseline):
        assert np.array_equal(arm.pod_requests.sum(axis=-1), arm.requests)
        assert np.array_equal(arm.pod_errors.sum(axis=-1), arm.errors)
        assert np.array_equal(arm.buckets[..., -1], arm.requests)
    # Pods share their arm's traffic equally: each baseline pod gets 1/7 of it on average.
    share = tr.baseline.pod_requests.sum(axis=(0, 1)) / tr.baseline.requests.sum()
    assert np.allclose(share, 1 / 7, rtol=0.02)


def test_pod_spread_has_the_stated_log_sd_and_mean_one() -> None:
    """2000 pods (100 runs × 20); each pod's rate from ~3000 errors, so binomial noise adds
    ~0.02 to the log-sd of 0.5 and the checks are dominated by the pod draw itself."""
    sd = 0.5
    m = TrafficModel(
        2000.0,
        base_error_rate=0.1,
        canary_pods=2,
        baseline_pods=20,
        nuisances=Nuisances(pod_log_sd=sd),
    )
    tr = simulate(m, ONE_STEP, 100, seed=2)
    b = tr.baseline
    rate = b.pod_errors.sum(axis=1) / b.pod_requests.sum(axis=1)  # (runs, pods)
    mult = rate / 0.1
    assert np.std(np.log(mult)) == pytest.approx(sd, abs=0.03)
    assert np.mean(mult) == pytest.approx(1.0, abs=0.04)  # s.e. of the mean ≈ 0.012
    # The canary's pods come from the same population: a two-pod canary's realised ratio to
    # the baseline is spread, but centred on 1.
    c = tr.canary
    ratio = (c.errors.sum(axis=1) / c.requests.sum(axis=1)) / (
        b.errors.sum(axis=1) / b.requests.sum(axis=1)
    )
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1)
    assert np.mean(ratio > 1.1) > 0.25  # what makes "≤ 1.1 × baseline" the wrong null


def test_no_pod_spread_means_every_pod_has_the_arms_rate() -> None:
    m = TrafficModel(2000.0, base_error_rate=0.1, canary_pods=2, baseline_pods=20)
    tr = simulate(m, ONE_STEP, 30, seed=3)
    b = tr.baseline
    rate = b.pod_errors.sum(axis=1) / b.pod_requests.sum(axis=1)
    assert np.std(np.log(rate / 0.1)) < 0.03  # binomial noise only (≈ 0.018)


@pytest.mark.parametrize("bias", [-0.2, 0.2])
def test_mesh_imprecision_routes_the_stated_share(bias: float) -> None:
    m = TrafficModel(200.0, nuisances=Nuisances(routing_bias=bias))
    tr = simulate(m, SMALL, 200, seed=4)
    share = tr.canary.requests.sum() / (tr.canary.requests.sum() + tr.baseline.requests.sum())
    # 200 runs × 6000 canary requests: relative s.e. of the share ≈ 0.1%.
    assert share == pytest.approx(0.05 * (1 + bias), rel=0.01)
    assert np.all(tr.weights == 0.05)  # what the judge is told stays the asked weight


@pytest.mark.parametrize("p", [1.0, 0.1])
def test_counter_reset_drops_what_was_served_before_the_restart(p: float) -> None:
    """A restart at a uniform moment loses, on average, half an interval of that pod's
    requests: the scraped share of what was served is 1 − p/2; errors among the scraped
    requests keep the pod's rate; the baseline loses nothing."""
    m = TrafficModel(200.0, canary_pods=2, nuisances=Nuisances(canary_restart_prob=p))
    tr = simulate(m, ONE_STEP, 100, seed=5)
    seen = tr.canary.requests.sum()
    served = tr.truth.canary_requests.sum()
    assert seen / served == pytest.approx(1 - p / 2, abs=0.01)
    assert tr.canary.errors.sum() / seen == pytest.approx(0.01, rel=0.05)
    assert tr.baseline.requests.sum() == pytest.approx(200 * 600 * 0.5 * 100, rel=0.01)


def test_fixed_incident_start_multiplies_both_arms_errors_then_and_only_then() -> None:
    nz = Nuisances(incident_prob=1.0, incident_start_s=300.0, incident_s=100.0)
    tr = simulate(TrafficModel(200.0, nuisances=nz), ONE_STEP, 10, seed=6)
    mid = tr.times - 5.0
    during = (mid >= 300) & (mid < 400)
    assert np.all(tr.truth.baseline_error_p[:, during] == pytest.approx(0.1))
    assert np.all(tr.truth.baseline_error_p[:, ~during] == pytest.approx(0.01))


@pytest.mark.parametrize(
    ("field", "value"),
    [("pod_log_sd", -0.1), ("routing_bias", -1.0), ("canary_restart_prob", 1.5)],
)
def test_bad_nuisance_settings_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        Nuisances(**{field: value})


def test_bad_pod_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="canary_pods"):
        TrafficModel(20.0, canary_pods=0)


def test_effects_still_apply_per_pod() -> None:
    m = TrafficModel(
        2000.0, base_error_rate=0.01, canary_pods=3, effect=Effect("x2", error_ratio=2.0)
    )
    tr = simulate(m, ONE_STEP, 20, seed=7)
    rc = tr.canary.errors.sum() / tr.canary.requests.sum()
    rb = tr.baseline.errors.sum() / tr.baseline.requests.sum()
    assert rc / rb == pytest.approx(2.0, rel=0.05)
