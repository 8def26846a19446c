"""The families' bookkeeping: bounds, targets, the Sluice adapter's options and windows, and the
generated docs table (fast: constructed inputs, or a few runs of short schedules)."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

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


def test_windows_sum_ticks_and_average_the_asked_weight_across_a_change() -> None:
    m = TrafficModel(200.0)
    sim = Simulator(m, 3, np.random.default_rng(2), 120.0)
    win = _Window(3, 60.0, 30.0)
    ends, seen = [], []
    for i in range(12):
        w = 0.05 if i < 6 else 0.25  # the weight changes at 60 s
        tick = sim.tick(w)
        seen.append(tick.canary.requests)
        win.add(tick.canary, tick.baseline, w, m.tick_s)
        if win.ends_at(tick.t_end):
            c, _, share = win.take()
            ends.append((tick.t_end, c.requests, share))
    assert [t for t, _, _ in ends] == [30.0, 90.0]
    _, requests, share = ends[1]  # 30–90 s straddles the change at 60 s
    assert np.array_equal(requests, np.sum(seen[3:9], axis=0))
    assert np.allclose(share, 0.15)
    with pytest.raises(ValueError, match="window_s"):
        _Window(3, 0.0, 0.0)


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
