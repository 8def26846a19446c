"""Argo Rollouts- and Flagger-style absolute thresholds, judged per one-minute check.

These gates compare the canary with a fixed bound, not with the baseline, and ignore how many
requests stand behind each value. The counting semantics (failure limits, what a missing value
does) come from :mod:`analysis.stats.thresholds`; this module only turns simulated intervals into
the one-minute values their queries would return, and tunes the bounds for the equal-safety
comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Self

import numpy as np

from analysis.stats.thresholds import argo_first_failure, flagger_first_failure
from simulations.judges.base import FloatArray, IntArray, look_ticks, window_sums
from simulations.latency import histogram_quantile
from simulations.metrics import calibrate_upper
from simulations.traffic import Trace


def minute_values(trace: Trace, every_s: float) -> tuple[FloatArray, FloatArray]:
    """Canary success rate and p99 latency over each check window, NaN where there is no data.

    These are what ``sum(rate(ok[1m]))/sum(rate(all[1m]))`` and ``histogram_quantile(0.99, ...)``
    return; a window with no requests is NaN (0/0), as in Prometheus.
    """
    per = max(round(every_s / trace.model.tick_s), 1)
    c = trace.canary
    req = window_sums(c.requests, per)
    err = window_sums(c.errors, per)
    with np.errstate(divide="ignore", invalid="ignore"):
        success = np.where(req > 0, 1.0 - err / req, np.nan)
    buckets = window_sums(c.buckets, per)
    p99 = histogram_quantile(0.99, trace.model.bounds, buckets)
    return success, p99


def _worst_k(values: FloatArray, k: int) -> FloatArray:
    """Each run's k-th largest value (NaN counted as +inf, since a missing value fails)."""
    v = np.where(np.isnan(values), np.inf, values)
    if v.shape[1] < k:
        return np.full(v.shape[0], -np.inf)
    return np.sort(v, axis=1)[:, -k]


def _to_ticks(trace: Trace, every_s: float, look: IntArray, delay_looks: int = 0) -> IntArray:
    ticks = look_ticks(trace, every_s)
    idx = np.minimum(look + delay_looks, len(ticks) - 1)
    return np.where(look >= 0, ticks[np.maximum(idx, 0)], -1)


def _tune_pair(
    judge: ArgoStyle | FlaggerStyle, calibration: Trace, target: float, k: int
) -> tuple[float, float]:
    """Bounds for both metrics, splitting the target between them until the union meets it."""
    success, p99 = minute_values(calibration, judge.every_s)
    n = success.shape[0]
    # Failed checks of both metrics add up (Flagger) or either fails alone (Argo), so the union can
    # exceed the per-metric shares: shrink the shares, and if even "no calibration run exceeds"
    # is not enough, judge each metric on a worse order statistic (kk-th instead of k-th worst).
    for kk in range(k, 0, -1):
        share = target / 2
        while True:
            max_err = calibrate_upper(_worst_k(1.0 - success, kk), share)
            max_p99 = calibrate_upper(_worst_k(p99, kk), share)
            cand = replace(judge, min_success=1.0 - max_err, max_p99_s=max_p99)
            if np.mean(cand.abort_ticks(calibration) >= 0) <= target:
                return cand.min_success, cand.max_p99_s
            if share * n < 1:
                break
            share *= 0.8
    return (-math.inf, math.inf)


@dataclass(frozen=True)
class ArgoStyle:
    """``successCondition: result[0] >= 0.99`` on success rate and ``<= 0.5`` on p99, each check
    a minute, ``failureLimit`` 0: the first failed measurement of either metric aborts."""

    min_success: float = 0.99
    max_p99_s: float = 0.5
    failure_limit: int = 0
    every_s: float = 60.0
    name: str = "Argo-style"

    @property
    def parameter(self) -> str:
        return (
            f"success ≥ {self.min_success:.4g}, p99 ≤ {self.max_p99_s:.3g} s, "
            f"failureLimit {self.failure_limit}"
        )

    def abort_ticks(self, trace: Trace) -> IntArray:
        success, p99 = minute_values(trace, self.every_s)
        fails = [
            argo_first_failure(
                success,
                min=self.min_success,
                failure_limit=self.failure_limit,
                conditions="success",
            ),
            argo_first_failure(
                p99, max=self.max_p99_s, failure_limit=self.failure_limit, conditions="success"
            ),
        ]
        never = np.iinfo(np.int64).max
        first = np.minimum(*(np.where(f >= 0, f, never) for f in fails))
        return _to_ticks(trace, self.every_s, np.where(first == never, -1, first))

    def tuned(self, calibration: Trace, target: float) -> Self:
        lo, hi = _tune_pair(self, calibration, target, self.failure_limit + 1)
        return replace(self, min_success=lo, max_p99_s=hi)


@dataclass(frozen=True)
class FlaggerStyle:
    """Flagger's built-in checks (request success rate >= 99%, p99 <= 500 ms) every minute;
    an interval with any failing (or empty) check counts one failed check, and the canary is
    rolled back at the next interval once ``threshold`` checks have failed."""

    min_success: float = 0.99
    max_p99_s: float = 0.5
    threshold: int = 5
    every_s: float = 60.0
    name: str = "Flagger-style"

    @property
    def parameter(self) -> str:
        return (
            f"success ≥ {self.min_success:.4g}, p99 ≤ {self.max_p99_s:.3g} s, "
            f"threshold {self.threshold}"
        )

    def abort_ticks(self, trace: Trace) -> IntArray:
        success, p99 = minute_values(trace, self.every_s)
        ok = (success >= self.min_success) & (p99 <= self.max_p99_s)  # NaN compares False
        look = flagger_first_failure(np.where(ok, 0.0, 1.0), max=0.5, threshold=self.threshold)
        return _to_ticks(trace, self.every_s, look, delay_looks=1)

    def tuned(self, calibration: Trace, target: float) -> Self:
        lo, hi = _tune_pair(self, calibration, target, self.threshold)
        return replace(self, min_success=lo, max_p99_s=hi)
