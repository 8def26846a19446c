"""The families' bookkeeping: bounds, targets, the Sluice adapter's options and windows, and the
generated docs table (fast: constructed inputs, or a few runs of short schedules)."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from analysis.stats.histogram import choose_edges, tail_quantiles
from analysis.stats.policy import CountsInterval
from simulations.families import AA, Case, Cell, FamilyRow, rows_from_json, run_cell, speed_ratio
from simulations.families_report import (
    BEGIN,
    END,
    SOURCE,
    current_section,
    docs_section,
    misses,
    replace_section,
)
from simulations.judges.sluice import SluiceJudge, _Window
from simulations.latency import bin_probabilities, transformed_cdf
from simulations.metrics import wilson_interval
from simulations.schedule import WeightSchedule
from simulations.traffic import Effect, Nuisances, Simulator, TrafficModel

REPO = Path(__file__).parents[3]
SHORT = WeightSchedule.stepped((0.05, 0.25), 120)


def row(**changes: object) -> FamilyRow:
    base = FamilyRow(
        family="error ratios",
        cell="200 req/s",
        case="A/A",
        kind="A/A",
        total_rps=200.0,
        runs=300,
        aborts=0,
        abort_rate=0.0,
        abort_lo=0.0,
        abort_hi=wilson_interval(0, 300)[1],
        promoted=300,
        promoted_rate=1.0,
        promoted_hi=1.0,
        paused=0,
        paused_rate=0.0,
        paused_hi=wilson_interval(0, 300)[1],
        median_tta_s=math.inf,
        p90_tta_s=math.inf,
        median_promote_s=1800.0,
        power_goal=None,
        promote_goal=None,
        oracle_median_tta_s=math.nan,
        kayenta_median_tta_s=math.nan,
        kayenta_tuned_median_tta_s=math.nan,
        kayenta_tuned_setting="",
        kayenta_tuned_power=math.nan,
        sluice_aa_rate=0.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_wilson_upper_bound_at_zero_of_n_and_its_coverage() -> None:
    # 0 of n: the upper end is z²/(n + z²), about 3.84/n, not the Wald interval's 0.
    assert wilson_interval(0, 300)[1] == pytest.approx(1.96**2 / (300 + 1.96**2), rel=1e-3)
    # The upper bound covers the true rate in at least ~97.5% of samples (one side of a 95%
    # interval); 4000 binomial samples at p = 2%, n = 300: allow 2 points below that.
    rng = np.random.default_rng(1)
    ks = rng.binomial(300, 0.02, 4000)
    covered = np.mean([wilson_interval(int(k), 300)[1] >= 0.02 for k in ks])
    assert covered >= 0.955


def test_misses_name_each_target_missed() -> None:
    assert misses(row()) == []
    assert misses(row(aborts=6, abort_rate=0.02, abort_hi=0.051)) == ["upper bound > 5%"]
    assert misses(row(abort_rate=0.06, abort_hi=0.09)) == ["false aborts > 5%"]
    assert misses(row(family="mesh imprecision", paused_rate=0.5)) == ["paused > 5%"]
    # Low traffic may pause healthy canaries for lack of data: not a miss there.
    assert misses(row(family="low traffic", paused_rate=0.5)) == []
    bad = row(
        kind="regression",
        case="errors ×2",
        abort_rate=0.9,
        power_goal=0.99,
        median_tta_s=200.0,
        oracle_median_tta_s=100.0,
        kayenta_tuned_median_tta_s=300.0,
    )
    assert misses(bad) == ["power < 99%", "> 1.25× oracle", "> ½ tuned Kayenta"]
    good = replace(bad, abort_rate=1.0, median_tta_s=120.0, kayenta_tuned_median_tta_s=240.0)
    assert misses(good) == []
    promoted = replace(good, promote_goal=0.05, promoted_rate=0.3)
    assert misses(promoted) == ["promoted > β = 5%"]


def test_speed_ratio_of_medians_not_reached() -> None:
    assert speed_ratio(200.0, 100.0) == 2.0
    assert math.isinf(speed_ratio(math.inf, 100.0))  # Sluice's median never reached
    assert math.isnan(speed_ratio(100.0, math.inf))  # nothing to compare with


def test_judge_options_reach_the_metric_specs_and_the_policy_config() -> None:
    judge = SluiceJudge(
        errors_options=(("min_events", 7),),
        latency_options=(("tolerance", 1.3),),
        policy_options=(("srm_alpha", 0.01),),
    )
    errors, latency = judge.specs(TrafficModel(20.0))
    assert errors.min_events == 7 and errors.tolerance == judge.tolerance
    assert latency.tolerance == 1.3 and latency.min_events == 0
    assert judge.config().srm_alpha == 0.01
    with pytest.raises(TypeError, match="no_such_option"):
        SluiceJudge(errors_options=(("no_such_option", 1),)).specs(TrafficModel(20.0))


def test_interval_data_is_aggregate_or_per_pod() -> None:
    m = TrafficModel(200.0, canary_pods=2, baseline_pods=5)
    tick = Simulator(m, 4, np.random.default_rng(1), 60.0).tick(0.1)
    agg = SluiceJudge().interval_data(tick.canary, tick.baseline)["errors"]
    pods = SluiceJudge(per_pod=True).interval_data(tick.canary, tick.baseline)["errors"]
    assert isinstance(agg, CountsInterval) and isinstance(pods, CountsInterval)
    assert np.shape(agg.canary_total) == (4,)
    assert np.shape(pods.canary_total) == (4, 2) and np.shape(pods.baseline_events) == (4, 5)
    assert np.array_equal(np.sum(pods.canary_total, axis=1), agg.canary_total)


def test_windows_are_cut_where_a_runs_weight_changes() -> None:
    """As the run loop cuts at ``status.weightChangedAt``: a run whose weight changes inside a
    window has the piece before the change observed with its own weight as the share, the rest
    at the window's end; a run whose weight did not change gets the whole window."""
    m = TrafficModel(200.0)
    sim = Simulator(m, 3, np.random.default_rng(2), 120.0)
    win = _Window(3, 60.0, 30.0)
    cuts, ends, seen = [], [], []
    for i in range(12):
        # run 0 changes at 60 s, run 1 at 40 s, run 2 never
        w = np.array([0.05 if i < 6 else 0.25, 0.05 if i < 4 else 0.25, 0.05])
        tick = sim.tick(w)
        seen.append(tick.canary.requests)
        cuts += [
            (tick.t_end - m.tick_s, c.requests, share)
            for c, _, share in win.add(tick.canary, tick.baseline, w)
        ]
        if win.ends_at(tick.t_end):
            c, _, share = win.take()
            ends.append((tick.t_end, c.requests, share))
    assert [t for t, _, _ in ends] == [30.0, 90.0]
    assert [t for t, _, _ in cuts] == [40.0, 60.0]
    _, req40, share40 = cuts[0]  # run 1's 30–40 s at 5%; the others not in this piece
    assert req40[1] == seen[3][1] and np.isnan(req40[[0, 2]]).all()
    assert share40[1] == 0.05 and np.isnan(share40[[0, 2]]).all()
    _, req60, share60 = cuts[1]  # run 0's 30–60 s at 5%
    assert req60[0] == np.sum(seen[3:6], axis=0)[0] and np.isnan(req60[[1, 2]]).all()
    assert share60[0] == 0.05
    _, req90, share90 = ends[1]  # the rest of 30–90 s: each run's piece since its cut
    total = np.sum(seen[3:9], axis=0)
    assert req90[0] == np.sum(seen[6:9], axis=0)[0]
    assert req90[1] == np.sum(seen[4:9], axis=0)[1]
    assert req90[2] == total[2]
    assert np.array_equal(share90, [0.25, 0.25, 0.05])
    with pytest.raises(ValueError, match="window_s"):
        _Window(3, 0.0, 0.0)


def test_cut_windows_keep_a_shared_incident_after_a_weight_change_from_aborting() -> None:
    """The straddle family's world on a short schedule: 60 s windows ending at :30, the weight
    5% → 25% at 120 s, a shared incident (errors ×10 in both arms) from 120 s. Uncut, the window
    90–150 s gave the canary 5% of the requests before the incident and 25% during it, and
    identical canaries were aborted in every run; cut, they are not, while 2× errors still are."""
    schedule = WeightSchedule.stepped((0.05, 0.25), 120)
    judge = SluiceJudge(window_s=60.0, window_offset_s=30.0, stop_at_pause=True)
    incident = Nuisances(incident_prob=1.0, incident_start_s=120.0)
    aa = judge.run(TrafficModel(2000.0, nuisances=incident), schedule, 40, seed=5)
    bad = TrafficModel(2000.0, effect=Effect("x2", error_ratio=2.0), nuisances=incident)
    worse = judge.run(bad, schedule, 40, seed=5)
    assert np.isfinite(aa.abort_s).sum() <= 2
    assert np.isfinite(worse.abort_s).sum() >= 38


def test_pod_and_latency_options_reach_the_specs() -> None:
    """Pods as the sampling unit take the cell's canary pods (and, declared, its true spread);
    a latency tolerance tests ratio 1 at edges chosen as the run loop chooses them."""
    m = TrafficModel(200.0, canary_pods=3, baseline_pods=20, nuisances=Nuisances(pod_log_sd=0.25))
    errors, latency = SluiceJudge(per_pod=True).specs(m)
    assert errors.canary_pods == 3.0 and errors.pod_spread is None
    assert latency.canary_pods is None and latency.latency_increase is None
    errors, _ = SluiceJudge(per_pod=True, declared_spread=True).specs(m)
    assert errors.pod_spread == 0.25
    _, latency = SluiceJudge(latency_increase=0.1).specs(m)
    assert latency.latency_increase == 0.1 and latency.tolerance == 1.0
    assert latency.edges == tuple(
        choose_edges(
            (*m.bounds, math.inf),
            np.cumsum(
                bin_probabilities(transformed_cdf(m.latency, np.asarray(m.bounds), np.ones(1)))[0]
            ),
            tail_quantiles(0.9),
            latency_increase=0.1,
        )
    )
    with pytest.raises(ValueError, match="declared_spread"):
        SluiceJudge(declared_spread=True)


def test_baseline_history_is_the_simulations_own_pods() -> None:
    """The hour before the rollout: all traffic on the baseline's pods, each at its own error
    rate (the factors its later intervals use), from a generator of its own."""
    m = TrafficModel(
        2000.0, base_error_rate=0.05, baseline_pods=4, nuisances=Nuisances(pod_log_sd=0.5)
    )
    sim = Simulator(m, 200, np.random.default_rng(3), 600.0)
    errors, requests = sim.baseline_history(3600.0, np.random.default_rng(4))
    assert errors.shape == requests.shape == (200, 4)
    assert np.mean(requests) == pytest.approx(2000.0 * 3600 / 4, rel=1e-3)
    expected = 0.05 * sim._pod_mult_b  # the pods' own rates, as its intervals use them
    assert np.allclose(errors / requests, expected, rtol=0.05)


def test_pause_ends_the_run_only_when_asked() -> None:
    """A canary that gets a tenth of the traffic it was asked to at 2000 req/s (gross loss)
    pauses identical canaries (the sample-ratio guard, which since issue 12 ignores mesh
    imprecision of +-20%); with ``stop_at_pause`` such runs are neither aborted nor promoted."""
    m = TrafficModel(2000.0, nuisances=Nuisances(routing_bias=-0.9))
    out = SluiceJudge(stop_at_pause=True).run(m, SHORT, 30, seed=3)
    assert out.pause_s is not None
    paused = np.isfinite(out.pause_s)
    assert paused.mean() > 0.5
    assert not np.isfinite(out.promote_s[paused]).any()
    assert not np.isfinite(out.abort_s[paused]).any()


def test_run_cell_reports_every_case_with_bounds_and_comparators() -> None:
    cell = Cell(
        "error ratios",
        "200 req/s, short",
        200.0,
        (AA, Case(Effect("errors ×5", error_ratio=5.0), "regression", power_goal=0.99)),
        schedule=SHORT,
    )
    aa, bad = run_cell(cell, 40, seed=4)
    assert (aa.kind, bad.kind) == ("A/A", "regression")
    assert aa.abort_hi == wilson_interval(aa.aborts, 40)[1]
    assert (bad.abort_lo, bad.abort_hi) == wilson_interval(bad.aborts, 40)
    assert bad.aborts + bad.promoted + bad.paused >= 1
    assert math.isfinite(bad.oracle_median_tta_s) and bad.kayenta_tuned_setting
    assert math.isnan(aa.oracle_median_tta_s)  # comparators run on regressions only
    with pytest.raises(ValueError, match="A/A"):
        Cell("x", "y", 1.0, (cell.cases[1],))


def test_replace_section_keeps_the_text_around_it() -> None:
    text = f"intro\n{BEGIN}\nold\n{END}\noutro\n"
    assert replace_section(text, f"{BEGIN}\nnew\n{END}") == f"intro\n{BEGIN}\nnew\n{END}\noutro\n"
    with pytest.raises(ValueError, match="END"):
        replace_section(f"{BEGIN}\nno end", "x")


def test_docs_table_matches_the_committed_results() -> None:
    """The generated section of docs/analysis.md is what the results file it names renders to:
    rerun ``python -m simulations.families --quick`` after changing either."""
    text = (REPO / "docs" / "analysis.md").read_text()
    section = current_section(text)
    source = SOURCE.search(section)
    assert source is not None, "the section must name its results file"
    data = json.loads((REPO / source.group("path")).read_text())
    assert section == docs_section(rows_from_json(data), data["meta"])
    md = (REPO / source.group("path")).with_suffix(".md").read_text()
    table = [ln for ln in section.splitlines() if ln.startswith("| ")]
    assert all(ln in md for ln in table)
