"""How a judge's decisions on simulated rollouts become the benchmark's figures.

Kept apart from the judges so that the same arithmetic (what counts as harm, how an interval on a
rate is computed, what "tuned to the same false-abort rate" means) is applied to every method,
and so it can be tested on inputs whose answers are known.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import beta, norm

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class RunOutcomes:
    """Per run: when the judge aborted or promoted (seconds from rollout start, inf if never),
    and the excess bad requests the canary served before the abort (or before the end).
    ``pause_s``: when the rollout was first paused for a person (inconclusive), for judges that
    can pause (None: the judge never pauses)."""

    abort_s: FloatArray
    promote_s: FloatArray
    harm: FloatArray
    pause_s: FloatArray | None = None

    @property
    def runs(self) -> int:
        return int(self.abort_s.shape[0])


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial rate: sensible at 0 of n, unlike the Wald interval."""
    if n <= 0:
        return (0.0, 1.0)
    z = float(norm.ppf(0.5 + confidence / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (conservative) binomial interval, for checking a target with no approximation."""
    a = 1 - confidence
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return (lo, hi)


def first_true(mask: NDArray[np.bool_]) -> IntArray:
    """Index of the first True along the last axis, -1 where there is none."""
    hit = mask.any(axis=-1)
    return np.where(hit, np.argmax(mask, axis=-1), -1).astype(np.int64)


def abort_times(abort_tick: IntArray, times: FloatArray) -> FloatArray:
    """Seconds (end of the aborting interval) per run; inf for runs never aborted."""
    return np.where(abort_tick >= 0, times[np.maximum(abort_tick, 0)], np.inf)


def harm_before(excess_per_tick: FloatArray, abort_tick: IntArray) -> FloatArray:
    """Excess bad requests served up to and including the aborting interval (all, if never).

    The aborting interval counts because the judge only sees it after it has been served.
    """
    cum = np.cumsum(excess_per_tick, axis=1)
    last = np.where(abort_tick >= 0, abort_tick, excess_per_tick.shape[1] - 1)
    return np.take_along_axis(cum, last[:, None], axis=1)[:, 0]


def time_quantile(times_s: FloatArray, q: float) -> float:
    """Quantile of time to abort over *all* runs, never-aborted ones counted as infinite.

    Conditioning on the runs that did abort would flatter a judge that rarely fires (it only
    reports its lucky early catches); counting misses as infinite gives inf when fewer than a
    fraction q of runs aborted, which the report shows as "not reached".
    """
    if times_s.size == 0:
        return math.inf
    return float(np.quantile(times_s, q, method="inverted_cdf"))


def calibrate_upper(stat: FloatArray, target: float) -> float:
    """Smallest threshold ``thr`` with ``mean(stat > thr) <= target`` on calibration runs.

    ``stat`` is each A/A run's worst value of a judge's statistic over all its looks (for "abort
    when the value exceeds thr"), so one sort replaces a search. NaN counts as never exceeding.
    """
    s = np.sort(np.where(np.isnan(stat), -np.inf, stat))
    n = s.size
    allowed = math.floor(target * n + 1e-9)
    if allowed >= n:
        return -math.inf
    return float(s[n - 1 - allowed])


def calibrate_grid(
    candidates: Sequence[float], false_abort_rate: Callable[[float], float], target: float
) -> tuple[float, float]:
    """First candidate (ordered from most to least aggressive) whose A/A rate is <= target.

    For parameters a judge cannot express as a single per-run statistic (a confidence level that
    changes labels and scores), evaluate a grid; returns ``(parameter, its A/A rate)``, or the last
    candidate and its rate if none meets the target.
    """
    rate = math.nan
    for c in candidates:
        rate = false_abort_rate(c)
        if rate <= target:
            return (c, rate)
    return (candidates[-1], rate)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (a worker pool once shut down), user +
    system: what a run costs, whatever the machine's load did to its wall clock."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
