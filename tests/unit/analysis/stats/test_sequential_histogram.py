"""Latency from Prometheus histogram buckets: edges from the baseline, tail-only regressions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import binom

from analysis.stats.evidence import Outcome
from analysis.stats.histogram import slo_edge_weights, split_by_weights
from analysis.stats.sequential import HistogramEProcess, choose_edges

BOUNDS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf)


def cumulative_buckets(latencies: np.ndarray) -> np.ndarray:
    """``(runs, requests)`` latencies (NaN = no request) -> cumulative ``le`` counts per run."""
    finite = np.asarray(BOUNDS)
    return np.stack([(latencies <= b).sum(axis=-1) for b in finite], axis=-1).astype(float)


def interval_buckets(
    rng: np.random.Generator, runs: int, n: int, *, tail_share: float = 0.0
) -> np.ndarray:
    """Lognormal latencies (median 60 ms); a ``tail_share`` of requests get +300 ms."""
    lat = rng.lognormal(math.log(0.06), 0.6, size=(runs, n))
    lat += 0.3 * (rng.random((runs, n)) < tail_share)
    return cumulative_buckets(lat)


def test_edges_come_from_the_baseline_quantiles_and_the_slo() -> None:
    rng = np.random.default_rng(1)
    base = cumulative_buckets(rng.lognormal(math.log(0.06), 0.6, size=20_000))
    lat = np.sort(rng.lognormal(math.log(0.06), 0.6, size=20_000))
    edges = choose_edges(BOUNDS, base, quantiles=(0.9, 0.99), slo=0.5)
    for q in (0.9, 0.99):
        above = min(b for b in BOUNDS if b >= np.quantile(lat, q))
        assert above in edges
    assert 0.5 in edges
    assert edges == sorted(set(edges))


def test_choose_edges_without_baseline_data_needs_an_slo() -> None:
    empty = np.zeros(len(BOUNDS))
    assert choose_edges(BOUNDS, empty, slo=0.3) == [0.5]
    with pytest.raises(ValueError, match="no SLO"):
        choose_edges(BOUNDS, empty)


def test_edges_must_be_bucket_bounds() -> None:
    with pytest.raises(ValueError, match="not one of"):
        HistogramEProcess(BOUNDS, [0.3])
    with pytest.raises(ValueError, match=r"\+Inf"):
        HistogramEProcess(BOUNDS[:-1], [0.25])


@pytest.mark.statistical
def test_tail_only_regression_is_detected() -> None:
    """2% of canary requests 300 ms slower; the median is untouched."""
    rng = np.random.default_rng(2)
    runs = 200
    base = interval_buckets(rng, 1, 20_000)[0]
    edges = choose_edges(BOUNDS, base, slo=0.5)
    proc = HistogramEProcess(BOUNDS, edges, batch=runs)
    for _ in range(60):  # 60 intervals of 50 canary and 450 baseline requests
        proc.update(
            interval_buckets(rng, runs, 50, tail_share=0.02), interval_buckets(rng, runs, 450)
        )
    assert proc.rejected.mean() >= 0.95
    ev = proc.evidence(0)
    assert ev.outcome is Outcome.REJECT
    assert f"deciding edge {ev.details.deciding_edge:g}" in ev.rule


@pytest.mark.statistical
def test_identical_latency_rarely_rejects() -> None:
    rng = np.random.default_rng(3)
    runs = 400
    proc = HistogramEProcess(BOUNDS, [0.1, 0.25, 0.5], batch=runs, tolerance=1.2)
    for _ in range(60):
        proc.update(interval_buckets(rng, runs, 50), interval_buckets(rng, runs, 450))
    assert proc.rejected.mean() <= binom.ppf(0.999, runs, 0.05) / runs


def test_bad_bucket_data_is_insufficient_not_evidence() -> None:
    proc = HistogramEProcess(BOUNDS, [0.1, 0.5])
    nan = np.full(len(BOUNDS), math.nan)
    reset = -np.arange(len(BOUNDS), dtype=float)
    zero = np.zeros(len(BOUNDS))
    for c, b in [(nan, nan), (reset, reset), (zero, zero), (nan, zero)]:
        proc.update(c, b)
    assert proc.evidence().outcome is Outcome.INSUFFICIENT
    assert not proc.rejected[0]
    assert proc.log_e_value[0] == 0.0


def test_state_round_trip_continues_identically() -> None:
    rng = np.random.default_rng(4)
    data = [(interval_buckets(rng, 1, 40)[0], interval_buckets(rng, 1, 300)[0]) for _ in range(20)]
    straight = HistogramEProcess(BOUNDS, [0.1, 0.5], alpha=0.02)
    for c, b in data[:10]:
        straight.update(c, b)
    resumed = HistogramEProcess.from_state(json.loads(json.dumps(straight.to_state())))
    for c, b in data[10:]:
        straight.update(c, b)
        resumed.update(c, b)
    assert resumed.evidence() == straight.evidence()


def test_edge_weights_split_alpha_in_proportion_and_sum_to_it() -> None:
    proc = HistogramEProcess(BOUNDS, [0.1, 0.25, 0.5], alpha=0.04, edge_weights=[1, 1, 2])
    assert proc.edge_alphas == pytest.approx((0.01, 0.01, 0.02))
    assert [p.alpha for p in proc.processes] == pytest.approx([0.01, 0.01, 0.02])
    assert split_by_weights(0.05, 2) == pytest.approx((0.025, 0.025))
    for bad in ([1.0], [1.0, 0.0, 1.0], [1.0, math.nan, 1.0]):
        with pytest.raises(ValueError, match="edge weights"):
            HistogramEProcess(BOUNDS, [0.1, 0.25, 0.5], edge_weights=bad)


def test_averaged_edges_reject_whenever_an_edge_meets_its_own_share_and_sometimes_sooner() -> None:
    """The averaged e-value dominates Bonferroni: any edge past ``1/alpha_j`` means a rejection;
    with a tail that moves both edges the average also rejects runs no single edge would yet."""
    rng = np.random.default_rng(6)
    proc = HistogramEProcess(BOUNDS, [0.25, 0.5], alpha=0.05, batch=200)
    only_average = np.zeros(200, dtype=bool)
    for _ in range(8):
        proc.update(
            interval_buckets(rng, 200, 60, tail_share=0.02), interval_buckets(rng, 200, 600)
        )
        own = np.any([p.log_e_value >= p.log_threshold for p in proc.processes], axis=0)
        assert np.all(proc.rejected[own])
        only_average |= proc.rejected & ~np.any([p.rejected for p in proc.processes], axis=0)
    assert proc.rejected.any() and not proc.rejected.all()
    assert only_average.any()


def test_weighted_state_round_trip_keeps_the_weights() -> None:
    rng = np.random.default_rng(7)
    proc = HistogramEProcess(BOUNDS, [0.1, 0.5], alpha=0.02, edge_weights=[3, 1])
    proc.update(interval_buckets(rng, 1, 40)[0], interval_buckets(rng, 1, 300)[0])
    resumed = HistogramEProcess.from_state(json.loads(json.dumps(proc.to_state())))
    assert resumed.edge_alphas == pytest.approx(proc.edge_alphas)
    assert resumed.evidence() == proc.evidence()


def test_the_slo_edge_gets_less_alpha_than_the_quantile_edges() -> None:
    assert slo_edge_weights([0.25, 0.5], 0.5) == (3.0, 1.0)
    assert slo_edge_weights([0.1, 0.25], None, quantile_weight=2.0) == (2.0, 2.0)
    proc = HistogramEProcess(
        BOUNDS, [0.25, 0.5], alpha=0.04, edge_weights=slo_edge_weights([0.25, 0.5], 0.5)
    )
    assert proc.edge_alphas == pytest.approx((0.03, 0.01))
    with pytest.raises(ValueError, match="quantile_weight"):
        slo_edge_weights([0.25], 0.5, quantile_weight=0.0)
