"""Pods as the sampling unit: the spread's upper bound covers, the tolerance widens as derived, and
the policy keeps identical canaries with uneven pods from aborting while still catching regressions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import binom, norm

from analysis.stats.pod_spread import (
    DEFAULT_POD_SPREAD,
    UNKNOWN_POD_SPREAD,
    PodTolerance,
    effective_count,
    estimate_spread,
    widened_tolerance,
)
from analysis.stats.policy import (
    CountsInterval,
    Decision,
    MetricSpec,
    PolicyConfig,
    RolloutAnalysis,
)


@pytest.mark.statistical
@pytest.mark.parametrize("pods", [3, 10, 20])
@pytest.mark.parametrize("spread", [0.1, 0.5])
def test_upper_bound_covers_the_true_spread(pods: int, spread: float) -> None:
    """Q-profile bound at alpha 0.05 with 200 events a pod: misses at most alpha (plus binomial
    slack at 99.9%)."""
    rng = np.random.default_rng(pods * 7 + int(spread * 10))
    reps, alpha = 2000, 0.05
    n = np.full((reps, pods), 20000.0)
    x = rng.poisson(200.0 * np.exp(rng.normal(0.0, spread, (reps, pods))))
    point, upper, ok = estimate_spread(x, n, alpha=alpha)
    assert ok.all()
    misses = int((upper < spread).sum())
    assert misses <= binom.ppf(0.999, reps, alpha), f"{misses} of {reps} bounds below {spread}"
    assert abs(float(np.median(point)) - spread) < 0.5 * spread + 0.05


def test_bound_shrinks_with_more_pods_and_is_zero_free_for_equal_pods() -> None:
    rng = np.random.default_rng(3)
    few = estimate_spread(rng.poisson(500.0, (400, 3)), np.full((400, 3), 1e4), alpha=0.05)[1]
    many = estimate_spread(rng.poisson(500.0, (400, 20)), np.full((400, 20), 1e4), alpha=0.05)[1]
    assert np.median(many) < np.median(few)
    same = estimate_spread(np.full(10, 400.0), np.full(10, 1e4), alpha=0.05)
    assert same[1][0] == 0.0 and same[0][0] == 0.0


@pytest.mark.parametrize(
    ("events", "exposure"),
    [
        ([50.0], [1000.0]),  # one pod: nothing to compare
        ([1.0, 2.0, 0.0, 3.0], [100.0] * 4),  # too few events to tell spread from noise
        ([math.nan, 60.0], [100.0, 100.0]),  # one usable pod
        ([60.0, 60.0], [0.0, 100.0]),
    ],
)
def test_uninformative_baselines_give_no_bound(events: list[float], exposure: list[float]) -> None:
    point, upper, ok = estimate_spread(events, exposure, alpha=0.05)
    assert not ok[0] and math.isinf(upper[0]) and math.isnan(point[0])


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError, match="shape"):
        estimate_spread([1.0, 2.0], [1.0], alpha=0.05)


def test_effective_count_weights_by_traffic() -> None:
    got = effective_count([[1.0, 1.0, 1.0], [10.0, 0.0, math.nan], [9.0, 1.0, 0.0]])
    assert got[0] == pytest.approx(3.0)
    assert got[1] == pytest.approx(1.0)
    assert got[2] == pytest.approx(100 / 82)


def test_widened_tolerance_is_the_derived_formula() -> None:
    got = widened_tolerance(1.1, 0.2, 2.0, alpha=0.0125, baseline_pods=8.0)
    assert float(got) == pytest.approx(1.1 * math.exp(norm.isf(0.0125) * 0.2 * math.sqrt(0.625)))
    assert float(widened_tolerance(1.1, 0.0, 1.0, alpha=0.01)) == pytest.approx(1.1)


def test_declared_zero_spread_spends_no_alpha_and_declared_spread_no_estimate() -> None:
    zero = PodTolerance(tolerance=1.1, alpha=0.05, batch=1, canary_pods=2, spread=0.0)
    assert zero.test_alpha == 0.05 and zero.alpha_draw == 0.0
    assert float(zero.scale(100.0)[0]) == 1.0
    declared = PodTolerance(tolerance=1.1, alpha=0.05, batch=1, canary_pods=2, spread=0.3)
    assert declared.test_alpha == pytest.approx(0.025) and declared.alpha_spread == 0.0
    declared.observe_baseline_pods([[500.0, 100.0, 900.0]], [[1e4, 1e4, 1e4]])
    assert declared.details(0)["pod_spread"] == 0.3
    estimating = PodTolerance(tolerance=1.1, alpha=0.05, batch=1, canary_pods=2)
    assert estimating.details(0)["pod_spread"] == DEFAULT_POD_SPREAD
    assert estimating.alpha_draw == pytest.approx(0.0125) == estimating.alpha_spread
    # per-pod counts too few to bound the spread: assume the worst until they suffice
    estimating.observe_baseline_pods([[3.0, 5.0, 4.0] * 4], [[300.0] * 12])
    assert estimating.details(0)["pod_spread"] == UNKNOWN_POD_SPREAD
    assert estimating.details(0)["pod_spread_estimated"] is False
    estimating.observe_baseline_pods([[300.0, 310.0, 290.0] * 4], [[3e4] * 12])
    assert estimating.details(0)["pod_spread_estimated"] is True
    assert float(estimating.details(0)["pod_spread"] or 1) < UNKNOWN_POD_SPREAD


def simulate(
    *,
    runs: int,
    canary_pods: int,
    spread: float,
    effect: float = 1.0,
    pod_model: bool = True,
    seed: int = 0,
    minutes: int = 20,
) -> RolloutAnalysis:
    """2000 req/s, 10% canary, 10 baseline pods, 1% errors, pod effects drawn once per run; the
    baseline's last hour per pod calibrates the spread."""
    rng = np.random.default_rng(seed)
    k, n = canary_pods, 10
    p = np.minimum(0.01 * np.exp(rng.normal(0.0, spread, (runs, n + k))), 1.0)
    p[:, n:] *= effect
    per_pod = np.concatenate([np.full(n, 1800.0 / n), np.full(k, 200.0 / k)]) * 60.0
    spec = MetricSpec("errors", "counts", canary_pods=float(k) if pod_model else None)
    a = RolloutAnalysis([spec], PolicyConfig(min_step_seconds=60), batch=runs, t0=0.0)
    if pod_model:
        hist = rng.poisson(per_pod[:n] * 60, (runs, n)).astype(float)
        a.calibrate_pods("errors", rng.binomial(hist.astype(np.int64), p[:, :n]), hist)
    for i in range(1, minutes + 1):
        req = rng.poisson(per_pod, (runs, n + k)).astype(float)
        err = rng.binomial(req.astype(np.int64), p).astype(float)
        a.observe(
            60.0 * i,
            {
                "errors": CountsInterval(
                    err[:, n:].sum(1),
                    req[:, n:].sum(1),
                    err[:, :n].sum(1),
                    req[:, :n].sum(1),
                    baseline_pod_events=err[:, :n] if pod_model else None,
                    baseline_pod_total=req[:, :n] if pod_model else None,
                    canary_pod_total=req[:, n:] if pod_model else None,
                )
            },
        )
    return a


@pytest.mark.statistical
def test_uneven_pods_of_an_identical_version_do_not_abort() -> None:
    """The issue's case: one or two canary pods, pods 50% apart, 2000 req/s. Without the pod
    model a large share of identical canaries abort; with it at most alpha (99.9% slack)."""
    runs = 300
    for k in (1, 2):
        with_pods = simulate(runs=runs, canary_pods=k, spread=0.5, seed=k)
        aborted = int((with_pods.decide(1200.0, 0.0) == Decision.ABORT.value).sum())
        assert aborted <= binom.ppf(0.999, runs, 0.05), f"k={k}: {aborted} of {runs} aborted"
        without = simulate(runs=runs, canary_pods=k, spread=0.5, seed=k, pod_model=False)
        assert (without.decide(1200.0, 0.0) == Decision.ABORT.value).mean() > 0.15


@pytest.mark.statistical
def test_a_doubled_error_rate_is_still_caught_when_pods_are_alike() -> None:
    a = simulate(runs=200, canary_pods=2, spread=0.0, effect=2.0, seed=9, minutes=10)
    assert (a.decide(600.0, 0.0) == Decision.ABORT.value).all()
    v = a.verdict(600.0, 0.0, index=0)
    assert "widened to" in v.reason
    d = v.metrics["errors"].details
    assert d.pod_spread_estimated is True and d.baseline_pods == 10
    assert d.canary_pods == pytest.approx(2.0, rel=0.05)
    assert d.widened_tolerance is not None and 1.1 < d.widened_tolerance < 1.5
    assert d.pod_spread is not None and d.pod_spread < 0.15


def test_evidence_is_in_measured_units_and_state_round_trips() -> None:
    spec = MetricSpec("errors", "counts", canary_pods=2.0)
    straight = RolloutAnalysis([spec], PolicyConfig(min_step_seconds=60), t0=0.0)
    pods_x, pods_n = [[30.0, 36.0, 25.0, 33.0]], [[3000.0] * 4]
    first = CountsInterval(
        12.0, 1000.0, 124.0, 12000.0, baseline_pod_events=pods_x, baseline_pod_total=pods_n
    )
    straight.observe(60.0, {"errors": first})
    resumed = RolloutAnalysis.from_state(
        json.loads(json.dumps(straight.to_state())), [spec], PolicyConfig(min_step_seconds=60)
    )
    for a in (straight, resumed):
        a.observe(120.0, {"errors": CountsInterval(14.0, 1000.0, 120.0, 12000.0)})
    ev, ev2 = straight.evidence("errors"), resumed.evidence("errors")
    assert ev == ev2
    d = ev.details
    assert d.canary_exposure == 2000.0  # as measured, not as the scaled test saw it
    assert d.tolerance == 1.1 and d.widened_tolerance is not None and d.widened_tolerance > 1.1
    assert d.pod_spread_estimated is True and d.pod_spread_estimate is not None
    assert ev.estimate is not None and 0.5 < ev.estimate < 3.0
    assert "pods as the sampling unit" in ev.rule


def test_a_state_saved_before_pods_existed_still_loads() -> None:
    old = RolloutAnalysis([MetricSpec("errors", "counts")], PolicyConfig(), t0=0.0)
    old.observe(60.0, {"errors": CountsInterval(10.0, 1000.0, 90.0, 9000.0)})
    state = json.loads(json.dumps(old.to_state()))
    assert "pods" not in state
    again = RolloutAnalysis.from_state(state, [MetricSpec("errors", "counts")], PolicyConfig())
    assert again.evidence("errors") == old.evidence("errors")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"kind": "histogram", "canary_pods": 2.0}, "canary_pods/pod_spread are for counts"),
        ({"pod_spread": 0.2}, "pod_spread needs canary_pods"),
        ({"canary_pods": 0.5}, "canary_pods must be >= 1"),
        ({"canary_pods": 2.0, "pod_spread": -0.1}, "pod_spread must be >= 0"),
        ({"canary_pods": 2.0, "pod_alpha_share": 1.0}, "pod_alpha_share"),
    ],
)
def test_bad_pod_settings_name_the_field(kw: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"kind": "counts", **kw}
    if args["kind"] == "histogram":
        args.update(bucket_bounds=(0.1, math.inf), edges=(0.1,))
    with pytest.raises(ValueError, match=message):
        MetricSpec("errors", **args)  # type: ignore[arg-type]


def test_per_pod_data_without_the_pod_model_is_refused() -> None:
    a = RolloutAnalysis([MetricSpec("errors", "counts")], PolicyConfig(), t0=0.0)
    with pytest.raises(ValueError, match="needs canary_pods"):
        a.observe(
            60.0,
            {
                "errors": CountsInterval(
                    1.0, 10.0, 9.0, 90.0, baseline_pod_events=[[9.0]], baseline_pod_total=[[90.0]]
                )
            },
        )


def test_counts_given_per_pod_are_summed_and_feed_the_pod_model() -> None:
    """``CountsInterval`` with ``(batch, pods)`` arrays in its aggregate fields (the benchmark's
    per-pod form) is the same interval as the aggregates plus explicit per-pod arrays."""
    rng = np.random.default_rng(4)
    spec = MetricSpec("errors", "counts", canary_pods=2.0)
    a = RolloutAnalysis([spec], PolicyConfig(), batch=3, t0=0.0)
    b = RolloutAnalysis([spec], PolicyConfig(), batch=3, t0=0.0)
    for i in range(1, 6):
        cx, cn = rng.poisson(5.0, (3, 2)).astype(float), np.full((3, 2), 500.0)
        bx, bn = rng.poisson(50.0, (3, 8)).astype(float), np.full((3, 8), 5000.0)
        a.observe(60.0 * i, {"errors": CountsInterval(cx, cn, bx, bn)})
        explicit = CountsInterval(
            cx.sum(1),
            cn.sum(1),
            bx.sum(1),
            bn.sum(1),
            baseline_pod_events=bx,
            baseline_pod_total=bn,
            canary_pod_total=cn,
        )
        b.observe(60.0 * i, {"errors": explicit})
    for run in range(3):
        assert a.evidence("errors", run) == b.evidence("errors", run)
    assert a.evidence("errors", 0).details.baseline_pods == 8
    with pytest.raises(ValueError, match="all four"):
        a.observe(400.0, {"errors": CountsInterval(cx, cn.sum(1), bx, bn)})
