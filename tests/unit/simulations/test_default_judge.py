"""The families' default judge is the product's default: the errors metric judges the canary's
pods as the sampling unit over aggregate series (``canary_pods`` = the canary's pods, no spread
declared, so the policy's default 0.1), exactly as the controller runs a sequential counts compare
whose queries are ``sum(...)``. Each test here fails if the judge stops passing ``canary_pods``."""

import math
from dataclasses import replace

import numpy as np
import pytest

from analysis.api import Metric
from analysis.lifecycle import _with_pods, plan_metric
from analysis.run_loop import _MetricState, _spec
from analysis.stats.pod_spread import DEFAULT_POD_SPREAD, widened_tolerance
from analysis.stats.policy import CountsInterval, RolloutAnalysis
from simulations.families import DEFAULT_JUDGE, PODS, PODS_DECLARED, families
from simulations.families_report import legend
from simulations.judges.sluice import SluiceJudge
from simulations.schedule import WeightSchedule
from simulations.traffic import Effect, Nuisances, Simulator, TrafficModel

SHORT = WeightSchedule.stepped((0.05, 0.25), 120)


def controller_spec(canary_pods: int, alpha: float) -> object:
    """The errors MetricSpec the controller builds for an aggregate sequential counts compare
    with no pod settings, in a run whose Rollout has ``canary_pods`` canary pods."""
    arm = {"events": 'sum(errors{a="x"})', "total": 'sum(requests{a="x"})'}
    metric = Metric.model_validate(
        {
            "name": "errors",
            "kind": "counts",
            "compare": {},
            "provider": {"prometheus": {"canary": arm, "baseline": arm}},
        }
    )
    plan = plan_metric(_with_pods(metric, canary_pods), 0)
    return _spec(plan, _MetricState(), alpha)


@pytest.mark.parametrize("pods", [1, 2, 5])
def test_the_default_judges_errors_spec_is_the_controllers(pods: int) -> None:
    m = TrafficModel(200.0, canary_pods=pods, baseline_pods=20)
    errors, latency = DEFAULT_JUDGE.specs(m)
    assert errors.canary_pods == float(pods) and errors.pod_spread is None
    assert latency.canary_pods is None
    assert errors == controller_spec(pods, DEFAULT_JUDGE.alpha * DEFAULT_JUDGE.errors_alpha_share)
    # and it is SluiceJudge's own default, not something the families set on top
    assert SluiceJudge().specs(m)[0] == errors


def test_the_default_judge_hands_the_policy_aggregate_counts() -> None:
    """Aggregate series (what ``sum(...)`` queries return), not per-pod ones: the spread cannot be
    estimated, so the default one is declared."""
    m = TrafficModel(200.0, canary_pods=2, baseline_pods=5)
    tick = Simulator(m, 4, np.random.default_rng(1), 60.0).tick(0.1)
    errors = DEFAULT_JUDGE.interval_data(tick.canary, tick.baseline)["errors"]
    assert isinstance(errors, CountsInterval)
    assert np.shape(errors.canary_total) == (4,) and errors.baseline_pod_events is None


def test_the_default_judge_widens_the_errors_tolerance_by_the_default_spread() -> None:
    """What the policy tests: 1.1 widened for one canary pod at the spread 0.1 (1.41 at the
    errors metric's α of 0.025, a quarter of it on the pod draw), never the bare 1.1."""
    m = TrafficModel(200.0)
    analysis = RolloutAnalysis(DEFAULT_JUDGE.specs(m), DEFAULT_JUDGE.config(), batch=3, t0=0.0)
    assert set(analysis.pods) == {"errors"}
    sim = Simulator(m, 3, np.random.default_rng(2), 120.0)
    while (tick := sim.tick(0.05)).t_end <= DEFAULT_JUDGE.warmup_s + m.tick_s:  # past warm-up
        data = DEFAULT_JUDGE.interval_data(tick.canary, tick.baseline)
        analysis.observe(tick.t_end, data, expected_canary_share=0.05)
    pods = analysis.pods["errors"]
    expected = widened_tolerance(
        DEFAULT_JUDGE.tolerance, DEFAULT_POD_SPREAD, 1.0, alpha=pods.alpha_draw, baseline_pods=0.0
    )
    assert pods.alpha_draw == pytest.approx(0.025 / 4)
    assert np.allclose(pods.widened, expected) and np.all(pods.widened > 1.4)


def test_a_canary_inside_the_widened_tolerance_is_not_aborted_by_default() -> None:
    """Errors ×1.3 on one canary pod at 2000 req/s: beyond 1.1, so judging requests aborts it;
    inside the pod model's 1.41, so the default judge does not (a behaviour, not a setting)."""
    m = TrafficModel(2000.0, effect=Effect("x1.3", error_ratio=1.3))
    default = DEFAULT_JUDGE.run(m, SHORT, 40, seed=7)
    requests = replace(DEFAULT_JUDGE, pod_model=False).run(m, SHORT, 40, seed=7)
    assert np.isfinite(default.abort_s).sum() <= 2
    assert np.isfinite(requests.abort_s).sum() >= 30


def test_every_families_cell_judges_the_cells_canary_pods() -> None:
    """No cell quietly runs the opt-out: every one's errors metric has its canary pods, over
    aggregate series unless the cell is about per-pod series (the pod family)."""
    for quick in (True, False):
        for cell in families(quick):
            errors = cell.judge.specs(cell.model(cell.cases[0].effect))[0]
            assert cell.judge.pod_model, cell.label
            assert errors.canary_pods == float(cell.canary_pods), cell.label
            if cell.judge.per_pod:
                assert cell.family == "pod heterogeneity", cell.label
                assert cell.judge in (PODS, PODS_DECLARED), cell.label
            else:
                assert errors.pod_spread is None, cell.label


def test_the_judge_says_which_sampling_unit_it_ran() -> None:
    text = DEFAULT_JUDGE.describe()
    assert "pods as the sampling unit over aggregate series" in text
    assert f"default spread {DEFAULT_POD_SPREAD:g}" in text
    assert "podModel: false" in SluiceJudge(pod_model=False).describe()
    assert "estimated" in PODS.describe() and "declared" in PODS_DECLARED.describe()
    meta = {"source": "x.json", "command": "c", "runs": 1, "seed": 1, "cells": 1}
    assert text in legend({**meta, "judge": text})
    assert "default policy" not in legend(meta)  # results written before the judge was recorded
    with pytest.raises(ValueError, match="per_pod needs pod_model"):
        SluiceJudge(pod_model=False, per_pod=True)
    assert math.isclose(SluiceJudge(pod_model=False).specs(TrafficModel(20.0))[0].tolerance, 1.1)
    assert SluiceJudge(pod_model=False).specs(TrafficModel(20.0))[0].canary_pods is None


def test_the_pod_cells_are_unchanged_by_the_default() -> None:
    """Per-pod judges were already the pod model: the families' pod cells keep their judges."""
    m = TrafficModel(200.0, canary_pods=3, baseline_pods=20, nuisances=Nuisances(pod_log_sd=0.25))
    assert PODS.specs(m)[0].canary_pods == 3.0 and PODS.specs(m)[0].pod_spread is None
    assert PODS_DECLARED.specs(m)[0].pod_spread == 0.25
