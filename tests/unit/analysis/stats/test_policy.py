"""The rollout-wide policy: alpha budget, warm-up, promote rule, max duration, abort reasons."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.stats import binom

from analysis.stats.policy import (
    BudgetClaim,
    BudgetError,
    CountsInterval,
    Decision,
    GaugeInterval,
    HistogramInterval,
    MetricSpec,
    PolicyConfig,
    RolloutAnalysis,
    split_budget,
)

BOUNDS = (0.1, 0.25, 0.5, 1.0, math.inf)


def errors(name: str = "errors", **kw: object) -> MetricSpec:
    return MetricSpec(name, "counts", **kw)  # type: ignore[arg-type]


def good_counts(ratio: float = 1.0) -> CountsInterval:
    """A busy interval: 1000 canary and 9000 baseline requests at a 2% baseline error rate."""
    return CountsInterval(20.0 * ratio, 1000.0, 180.0, 9000.0)


def test_alpha_is_split_equally_by_default() -> None:
    a = RolloutAnalysis(
        [errors("a"), errors("b"), errors("c"), errors("d")], PolicyConfig(alpha=0.04)
    )
    assert a.alphas == pytest.approx({"a": 0.01, "b": 0.01, "c": 0.01, "d": 0.01})


def test_explicit_alphas_are_honoured_and_the_rest_shared() -> None:
    a = RolloutAnalysis(
        [errors("a", alpha=0.02), errors("b"), errors("c")], PolicyConfig(alpha=0.05)
    )
    assert a.alphas == pytest.approx({"a": 0.02, "b": 0.015, "c": 0.015})
    assert sum(a.alphas.values()) == pytest.approx(0.05)


def test_explicit_alphas_over_budget_name_the_metric() -> None:
    with pytest.raises(ValueError, match=r"'latency'.*over the rollout's alpha 0\.05"):
        RolloutAnalysis(
            [errors("errors", alpha=0.03), errors("latency", alpha=0.03)], PolicyConfig()
        )
    with pytest.raises(ValueError, match="'cpu': not set, and no alpha is left"):
        RolloutAnalysis([errors("errors", alpha=0.05), errors("cpu")], PolicyConfig())


def test_the_budget_is_split_once_over_every_claim() -> None:
    claims = [
        BudgetClaim("errors", 0.02, "a: errors.alpha"),
        BudgetClaim("latency", None, "a: latency.alpha"),
        BudgetClaim("cpu", None, "b: cpu.alpha"),
    ]
    assert split_budget(claims, 0.05) == pytest.approx(
        {"errors": 0.02, "latency": 0.015, "cpu": 0.015}
    )


def test_explicit_alphas_over_the_budget_are_an_error_naming_the_field() -> None:
    claims = [BudgetClaim("errors", 0.05, "a: errors.alpha"), BudgetClaim("x", 0.04, "b: x.alpha")]
    with pytest.raises(
        BudgetError, match=r"^b: x\.alpha: 0\.04 brings the explicit alphas to 0\.09"
    ):
        split_budget(claims, 0.05)


def test_a_metric_without_alpha_gets_what_is_left_and_never_a_fallback() -> None:
    spent = [BudgetClaim("errors", 0.05, "a: errors.alpha"), BudgetClaim("x", None, "b: x.alpha")]
    with pytest.raises(BudgetError, match=r"^b: x\.alpha: not set, and no alpha is left for it"):
        split_budget(spent, 0.05)
    left = [BudgetClaim("errors", 0.03, "a: errors.alpha"), BudgetClaim("x", None, "b: x.alpha")]
    assert sum(split_budget(left, 0.05).values()) == pytest.approx(0.05)


def test_a_metric_judged_twice_draws_once_from_the_budget() -> None:
    claims = [
        BudgetClaim("errors", None, "bg: errors.alpha", uses=2),
        BudgetClaim("errors", None, "step: errors.alpha", uses=2),
        BudgetClaim("latency", None, "step: latency.alpha"),
    ]
    per_use = split_budget(claims, 0.05)
    assert per_use == pytest.approx({"errors": 0.0125, "latency": 0.025})
    assert 2 * per_use["errors"] + per_use["latency"] == pytest.approx(0.05)


def test_one_metric_given_two_alphas_is_an_error_naming_both() -> None:
    claims = [BudgetClaim("errors", 0.01, "a: alpha"), BudgetClaim("errors", 0.02, "b: alpha")]
    with pytest.raises(BudgetError, match=r"^b: alpha: 0\.02 differs from a: alpha: 0\.01"):
        split_budget(claims, 0.05)


def test_promotes_only_after_the_minimum_duration_once_within_tolerance() -> None:
    a = RolloutAnalysis([errors()], PolicyConfig(min_step_seconds=600), t0=0.0)
    for t in range(60, 3660, 60):
        a.observe(t, {"errors": good_counts()})
        if t < 600:
            assert a.decide(t, 0.0)[0] != Decision.PROMOTE_STEP
    v = a.verdict(3600.0, 0.0)
    assert v.decision is Decision.PROMOTE_STEP
    assert v.metrics["errors"].interval is not None and v.metrics["errors"].interval[1] <= 1.2
    assert a.verdict(3600.0, 3599.0).decision is Decision.CONTINUE  # a new step just began


def test_warmup_intervals_are_excluded_from_evidence() -> None:
    a = RolloutAnalysis([errors()], PolicyConfig(warmup_seconds=300), t0=0.0)
    for t in range(60, 301, 60):
        a.observe(t, {"errors": CountsInterval(500.0, 1000.0, 10.0, 9000.0)})  # cold-start errors
    assert a.tests["errors"].events[0] == 0
    assert a.verdict(299.0, 0.0).decision is Decision.INSUFFICIENT
    assert "warm-up" in a.verdict(299.0, 0.0).reason
    a.observe(360, {"errors": good_counts()})
    assert a.tests["errors"].events[0] == 200


def test_abort_names_the_failing_metric() -> None:
    a = RolloutAnalysis(
        [errors("errors"), errors("timeouts", critical=False)], PolicyConfig(), t0=0.0
    )
    for t in range(60, 1260, 60):
        a.observe(t, {"errors": good_counts(), "timeouts": good_counts(ratio=4.0)})
    v = a.verdict(1200.0, 0.0)
    assert v.decision is Decision.ABORT
    assert "'timeouts'" in v.reason and "'errors'" not in v.reason
    assert v.metrics["timeouts"].outcome.value == "reject"


def test_missing_metric_never_promotes_even_at_max_duration() -> None:
    cfg = PolicyConfig(min_step_seconds=60, max_step_seconds=600, on_max_duration="promote")
    a = RolloutAnalysis([errors("errors"), errors("saturation")], cfg, t0=0.0)
    for t in range(60, 3660, 60):
        a.observe(t, {"errors": good_counts()})  # saturation never arrives
    assert a.verdict(500.0, 0.0).decision is Decision.INSUFFICIENT
    v = a.verdict(3600.0, 0.0)
    assert v.decision is Decision.INCONCLUSIVE
    assert "'saturation'" in v.reason


@pytest.mark.parametrize(
    ("policy", "expected"), [("pause", Decision.INCONCLUSIVE), ("promote", Decision.PROMOTE_STEP)]
)
def test_max_duration_follows_the_configured_policy(policy: str, expected: Decision) -> None:
    cfg = PolicyConfig(min_step_seconds=60, max_step_seconds=600, on_max_duration=policy)  # type: ignore[arg-type]
    a = RolloutAnalysis([errors()], cfg, t0=0.0)
    for t in range(60, 660, 60):  # too few canary events to show the ratio within 1.2
        a.observe(t, {"errors": CountsInterval(1.0, 100.0, 9.0, 900.0)})
    assert a.decide(540.0, 0.0)[0] == Decision.CONTINUE
    v = a.verdict(600.0, 0.0)
    assert v.decision is expected
    if expected is Decision.PROMOTE_STEP:
        assert v.reason.startswith("WARNING")


def test_min_events_holds_back_promotion() -> None:
    a = RolloutAnalysis([errors(min_events=100_000)], PolicyConfig(min_step_seconds=0), t0=0.0)
    for t in range(60, 3660, 60):
        a.observe(t, {"errors": good_counts()})
    assert a.tests["errors"].within_tolerance[0]
    assert a.verdict(3600.0, 0.0).decision is Decision.INSUFFICIENT


@pytest.mark.parametrize(
    "bad",
    [
        CountsInterval(math.nan, math.nan, math.nan, math.nan),
        CountsInterval(-5.0, -100.0, -3.0, -900.0),
        CountsInterval(0.0, 0.0, 0.0, 0.0),
        CountsInterval(np.array([]), 0.0, 0.0, 0.0),
    ],
)
def test_bad_data_is_insufficient_never_an_abort(bad: CountsInterval) -> None:
    a = RolloutAnalysis([errors()], PolicyConfig(), t0=0.0)
    for t in range(60, 1260, 60):
        try:
            a.observe(t, {"errors": bad})
        except ValueError as exc:  # an empty array is a shape error for batch 1, said clearly
            assert "shape" in str(exc)
    assert a.verdict(1200.0, 0.0).decision is Decision.INSUFFICIENT


def test_sample_ratio_mismatch_is_inconclusive_not_abort() -> None:
    a = RolloutAnalysis([errors()], PolicyConfig(min_step_seconds=0), t0=0.0)
    for t in range(60, 1260, 60):  # the canary gets 2% of requests instead of the 10% configured
        a.observe(
            t, {"errors": CountsInterval(4.0, 200.0, 196.0, 9800.0)}, expected_canary_share=0.1
        )
    v = a.verdict(1200.0, 0.0)
    assert v.decision is Decision.INCONCLUSIVE
    assert "sample-ratio mismatch" in v.reason and "2.00%" in v.reason
    assert "below 0.5 of its share" in v.reason
    assert v.sample_ratio is not None and v.sample_ratio.details.loss_ratio == 0.5


def test_a_canary_getting_more_or_a_bit_less_than_asked_is_not_paused() -> None:
    """Only gross loss pauses: 20% where 10% was asked, or 8%, leaves the decision to the data."""
    for canary in (2000.0, 800.0):
        a = RolloutAnalysis([errors()], PolicyConfig(min_step_seconds=0), t0=0.0)
        for t in range(60, 1260, 60):
            a.observe(
                t,
                {
                    "errors": CountsInterval(
                        canary / 100, canary, 100.0 - canary / 100, 10000.0 - canary
                    )
                },
                expected_canary_share=0.1,
            )
        assert a.verdict(1200.0, 0.0).decision is not Decision.INCONCLUSIVE


def test_every_metric_kind_feeds_one_analysis_and_state_round_trips() -> None:
    specs = [
        errors(),
        MetricSpec("latency", "histogram", bucket_bounds=BOUNDS, edges=(0.25, 0.5)),
        MetricSpec("cpu", "gauge", tau=0.1, critical=False),
    ]
    cfg = PolicyConfig(min_step_seconds=60)
    rng = np.random.default_rng(7)

    def interval() -> dict[str, CountsInterval | HistogramInterval | GaugeInterval]:
        c = np.cumsum(rng.multinomial(1000, [0.5, 0.3, 0.1, 0.05, 0.05])).astype(float)
        b = np.cumsum(rng.multinomial(9000, [0.5, 0.3, 0.1, 0.05, 0.05])).astype(float)
        return {
            "errors": good_counts(),
            "latency": HistogramInterval(c, b),
            "cpu": GaugeInterval(float(np.exp(rng.normal(0, 0.05))), 1.0),
        }

    data = [interval() for _ in range(30)]
    straight = RolloutAnalysis(specs, cfg, t0=0.0)
    for i, d in enumerate(data[:15]):
        straight.observe(60.0 * (i + 1), d, expected_canary_share=0.1)
    resumed = RolloutAnalysis.from_state(json.loads(json.dumps(straight.to_state())), specs, cfg)
    for i, d in enumerate(data[15:], start=16):
        straight.observe(60.0 * i, d, expected_canary_share=0.1)
        resumed.observe(60.0 * i, d, expected_canary_share=0.1)
    assert resumed.verdict(1800.0, 0.0) == straight.verdict(1800.0, 0.0)
    with pytest.raises(ValueError, match="changed"):
        RolloutAnalysis.from_state(straight.to_state(), specs[:2], cfg)


def test_equal_time_intervals_in_any_order_give_the_same_verdict() -> None:
    rng = np.random.default_rng(9)
    data = [
        CountsInterval(float(rng.poisson(30)), 1000.0, float(rng.poisson(180)), 9000.0)
        for _ in range(20)
    ]
    verdicts = []
    for order in (range(20), rng.permutation(20)):
        a = RolloutAnalysis([errors()], PolicyConfig(), t0=0.0)
        for i in order:
            a.observe(60.0, {"errors": data[i]})
        verdicts.append(a.verdict(1200.0, 0.0))
    assert verdicts[0].decision is verdicts[1].decision
    s0, s1 = verdicts[0].metrics["errors"].log_e_value, verdicts[1].metrics["errors"].log_e_value
    assert s0 == pytest.approx(s1, abs=1e-9)


@pytest.mark.statistical
def test_batched_aa_rollouts_rarely_abort_and_mostly_promote() -> None:
    """1000 identical canaries across three steps of rising weight: per-rollout false aborts stay
    within the rollout's alpha (plus the binomial 99.9% margin), and with ~10 000 requests a
    minute nearly all of them are shown within a 1.2 tolerance by the end of the 50% step (the
    tighter default 1.1 needs about three times the events: (log 1.2 / log 1.1)^2)."""
    runs = 1000
    rng = np.random.default_rng(10)
    cfg = PolicyConfig(alpha=0.05, min_step_seconds=600)
    a = RolloutAnalysis(
        [errors("errors", tolerance=1.2), errors("timeouts", critical=False, tolerance=1.2)],
        cfg,
        batch=runs,
        t0=0.0,
    )
    aborted = np.zeros(runs, dtype=bool)
    t = 0.0
    for weight in (0.05, 0.2, 0.5):
        start = t
        for _ in range(30):
            t += 60.0
            n = rng.poisson(10_000, runs)
            nc = rng.binomial(n, weight).astype(float)
            nb = n - nc
            data = {
                name: CountsInterval(rng.poisson(nc * p), nc, rng.poisson(nb * p), nb)
                for name, p in (("errors", 0.01), ("timeouts", 0.003))
            }
            a.observe(t, data, expected_canary_share=weight)
            aborted |= a.decide(t, start) == Decision.ABORT
    assert aborted.mean() <= binom.ppf(0.999, runs, 0.05) / runs
    assert np.mean(a.decide(t, start) == Decision.PROMOTE_STEP) >= 0.95


def test_a_looser_promote_tolerance_promotes_sooner_and_says_which_bar() -> None:
    """Same equal canary, abort tolerance 1.1 both times: the step promotes earlier when the
    promotion bar is 1.2, and while waiting the reason names the bar being waited for."""
    first: dict[float | None, float] = {}
    for bar in (None, 1.2):
        a = RolloutAnalysis(
            [errors(tolerance=1.1, promote_tolerance=bar)],
            PolicyConfig(min_step_seconds=60),
            t0=0.0,
        )
        for t in range(60, 7260, 60):
            a.observe(t, {"errors": good_counts()})
            if a.decide(t, 0.0)[0] == Decision.PROMOTE_STEP:
                first[bar] = t
                break
            if t == 120:
                assert f"vs {bar or 1.1:g})" in a.verdict(t, 0.0).reason
    assert first[1.2] < first[None]
    with pytest.raises(ValueError, match="promote_tolerance"):
        errors(promote_tolerance=-1.0)


def _low_traffic_runs(
    cfg: PolicyConfig, ratio: float, canary_requests: float, runs: int, seed: int
) -> NDArray[np.str_]:
    """``runs`` rollouts of ten 60 s intervals, canary errors ``ratio`` times the baseline's 2%
    (baseline 9x the canary's traffic), decided at the step's maximum duration (600 s)."""
    rng = np.random.default_rng(seed)
    a = RolloutAnalysis([errors()], cfg, batch=runs, t0=0.0)
    nb = 9 * canary_requests
    for t in range(60, 660, 60):
        xc = rng.poisson(0.02 * ratio * canary_requests, runs).astype(float)
        xb = rng.poisson(0.02 * nb, runs).astype(float)
        a.observe(t, {"errors": CountsInterval(xc, canary_requests, xb, nb)})
    return a.decide(600.0, 0.0)


@pytest.mark.parametrize("canary_requests", [5.0, 50.0, 500.0])
def test_a_regression_is_never_promoted_at_max_duration_on_events_alone(
    canary_requests: float,
) -> None:
    # one error seen used to count as "enough" at the maximum duration; a 5x regression with a
    # handful of errors must pause (default policy) unless shown within tolerance
    cfg = PolicyConfig(min_step_seconds=60, max_step_seconds=600)
    dec = _low_traffic_runs(cfg, 5.0, canary_requests, 2000, seed=5)
    assert (dec == Decision.PROMOTE_STEP.value).mean() == 0.0
    some_events = dec != Decision.INSUFFICIENT.value
    assert some_events.any()
    assert set(dec[(dec != Decision.ABORT.value)]) <= {Decision.INCONCLUSIVE.value}


def test_beta_at_the_tolerance_is_at_most_alpha() -> None:
    # the hardest regression to refuse is one just at the tolerance: promoted (shown within it)
    # in at most alpha of runs, whatever the traffic; so is every worse one (monotone likelihood)
    cfg = PolicyConfig(alpha=0.05, min_step_seconds=60, max_step_seconds=600)
    for canary_requests in (50.0, 5000.0):
        dec = _low_traffic_runs(cfg, 1.1, canary_requests, 4000, seed=7)
        promoted = int((dec == Decision.PROMOTE_STEP.value).sum())
        # 99.9% one-sided binomial bound on the count if the true rate were alpha
        assert promoted <= binom.ppf(0.999, 4000, 0.05), (canary_requests, promoted)


def test_promote_on_max_duration_means_nothing_failed_and_data_was_valid() -> None:
    cfg = PolicyConfig(min_step_seconds=60, max_step_seconds=600, on_max_duration="promote")
    quiet = RolloutAnalysis([errors()], cfg, t0=0.0)  # requests, no errors: valid, not shown
    blind = RolloutAnalysis([errors()], cfg, t0=0.0)  # NaN every interval: no data at all
    for t in range(60, 660, 60):
        quiet.observe(t, {"errors": CountsInterval(0.0, 10.0, 0.0, 90.0)})
        blind.observe(t, {"errors": CountsInterval(math.nan, math.nan, math.nan, math.nan)})
    v = quiet.verdict(600.0, 0.0)
    assert v.decision is Decision.PROMOTE_STEP
    assert v.reason.startswith("WARNING") and "evidence of no harm was not reached" in v.reason
    assert blind.verdict(600.0, 0.0).decision is Decision.INCONCLUSIVE


def test_min_events_holds_back_promote_on_max_duration() -> None:
    cfg = PolicyConfig(min_step_seconds=60, max_step_seconds=600, on_max_duration="promote")
    a = RolloutAnalysis([errors(min_events=1000)], cfg, t0=0.0)
    for t in range(60, 660, 60):
        a.observe(t, {"errors": CountsInterval(1.0, 100.0, 9.0, 900.0)})
    assert a.verdict(600.0, 0.0).decision is Decision.INCONCLUSIVE


def test_each_run_may_be_at_its_own_step() -> None:
    cfg = PolicyConfig(min_step_seconds=60, max_step_seconds=600, on_max_duration="pause")
    a = RolloutAnalysis([errors()], cfg, batch=3, t0=0.0)
    for t in range(60, 660, 60):
        a.observe(t, {"errors": CountsInterval(1.0, 100.0, 9.0, 900.0)})
    dec = a.decide(600.0, np.array([0.0, 300.0, 590.0]))
    assert list(dec) == [Decision.INCONCLUSIVE.value, Decision.CONTINUE.value, "continue"]
    dec = a.decide(600.0, 590.0, max_step_seconds=np.array([5.0, 600.0, 600.0]))
    assert list(dec) == [Decision.INCONCLUSIVE.value, Decision.CONTINUE.value, "continue"]


def test_warmup_by_events_ends_when_the_canary_has_served_enough_requests() -> None:
    cfg = PolicyConfig(warmup_events=2500, min_step_seconds=0)
    a = RolloutAnalysis([errors()], cfg, batch=2, t0=0.0)
    # run 0 gets 1000 canary requests an interval, run 1 only 100
    busy = CountsInterval(np.array([500.0, 50.0]), np.array([1000.0, 100.0]), 10.0, 9000.0)
    for t in (60, 120, 180):  # cold-start errors: 1000, 2000, 3000 requests served by run 0
        a.observe(t, {"errors": busy})
    assert list(a.tests["errors"].events) == [0.0, 0.0]
    v = a.verdict(180.0, 0.0, index=1)
    assert v.decision is Decision.INSUFFICIENT and "300 of 2500 requests" in v.reason
    a.observe(240, {"errors": good_counts()})
    assert a.tests["errors"].events[0] == 200 and a.tests["errors"].events[1] == 0
    state = RolloutAnalysis([errors()], cfg, t0=0.0)
    state.observe(60, {"errors": CountsInterval(5.0, 1000.0, 10.0, 9000.0)})
    restored = RolloutAnalysis.from_state(state.to_state(), [errors()], cfg)
    restored.observe(120, {"errors": CountsInterval(5.0, 1000.0, 10.0, 9000.0)})
    restored.observe(180, {"errors": CountsInterval(5.0, 1000.0, 10.0, 9000.0)})
    assert restored.tests["errors"].events[0] == 0  # 3000 served, the third interval included
    restored.observe(240, {"errors": CountsInterval(5.0, 1000.0, 10.0, 9000.0)})
    assert restored.tests["errors"].events[0] == 15  # the warm-up counter survived the restart
    with pytest.raises(ValueError, match="warmup_events"):
        PolicyConfig(warmup_events=-1)


def test_cold_start_envelope_aborts_a_gross_regression_inside_the_warm_up() -> None:
    cfg = PolicyConfig(warmup_seconds=60, cold_start=(3.0, 20.0))
    gross = RolloutAnalysis([errors()], cfg, t0=0.0)
    cold = RolloutAnalysis([errors()], cfg, t0=0.0)
    plain = RolloutAnalysis([errors()], PolicyConfig(warmup_seconds=60), t0=0.0)
    for t in range(10, 61, 10):
        gross.observe(t, {"errors": CountsInterval(200.0, 1000.0, 180.0, 9000.0)})  # x10
        plain.observe(t, {"errors": CountsInterval(200.0, 1000.0, 180.0, 9000.0)})
        factor = 1 + 2 * math.exp(-(t - 10) / 20)  # a cold start at the envelope
        cold.observe(t, {"errors": CountsInterval(20.0 * factor, 1000.0, 180.0, 9000.0)})
    assert gross.decide(60.0, 0.0)[0] == Decision.ABORT.value
    assert "estimated ratio" not in gross.verdict(60.0, 0.0).reason  # no estimate in warm-up
    assert plain.decide(60.0, 0.0)[0] == Decision.INSUFFICIENT.value  # discarded, as before
    assert cold.decide(60.0, 0.0)[0] == Decision.INSUFFICIENT.value
    with pytest.raises(ValueError, match="cold_start"):
        PolicyConfig(cold_start=(0.5, 20.0))
