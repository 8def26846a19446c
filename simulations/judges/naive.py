"""Naive repeated testing: a fixed-sample test re-run at every look with no correction.

This is what a hand-written "compare canary and baseline" gate usually does, and the reason
anytime-valid tests exist: each look at p<0.05 is a fresh 5% chance of a false abort, so over a
rollout's dozens of looks the false-abort rate climbs far above 5%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Self

import numpy as np
from scipy.stats import norm

from simulations.judges.base import FloatArray, IntArray, cumulative, look_ticks
from simulations.metrics import calibrate_upper, first_true
from simulations.traffic import Trace


def two_proportion_z(
    x_c: FloatArray, n_c: FloatArray, x_b: FloatArray, n_b: FloatArray
) -> FloatArray:
    """Pooled two-proportion z statistic, positive when the canary's proportion is higher."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (x_c + x_b) / (n_c + n_b)
        se = np.sqrt(p * (1 - p) * (1 / n_c + 1 / n_b))
        z = (x_c / n_c - x_b / n_b) / se
    return np.where(np.isfinite(z), z, 0.0)


@dataclass(frozen=True)
class NaiveZTest:
    """One-sided z-tests on cumulative error and slow-request proportions at every look."""

    z_errors: float = float(norm.isf(0.05))
    z_latency: float = float(norm.isf(0.05))
    slow_edge_s: float = 0.25
    every_s: float = 60.0
    name: str = "naive z-test"

    @property
    def parameter(self) -> str:
        pe, pl = norm.sf(self.z_errors), norm.sf(self.z_latency)
        return f"p < {pe:.2g} (errors), p < {pl:.2g} (latency) per look"

    def statistics(self, trace: Trace) -> tuple[FloatArray, FloatArray]:
        """z per look for errors and for the share of requests slower than ``slow_edge_s``."""
        looks = look_ticks(trace, self.every_s)
        c, b = trace.canary, trace.baseline
        n_c, n_b = cumulative(c.requests)[:, looks], cumulative(b.requests)[:, looks]
        z_e = two_proportion_z(
            cumulative(c.errors)[:, looks], n_c, cumulative(b.errors)[:, looks], n_b
        )
        k = trace.model.bounds.index(self.slow_edge_s)
        slow_c = cumulative(c.buckets[..., -1] - c.buckets[..., k])[:, looks]
        slow_b = cumulative(b.buckets[..., -1] - b.buckets[..., k])[:, looks]
        return z_e, two_proportion_z(slow_c, n_c, slow_b, n_b)

    def abort_ticks(self, trace: Trace) -> IntArray:
        z_e, z_l = self.statistics(trace)
        look = first_true((z_e > self.z_errors) | (z_l > self.z_latency))
        return np.where(look >= 0, look_ticks(trace, self.every_s)[np.maximum(look, 0)], -1)

    def tuned(self, calibration: Trace, target: float) -> Self:
        """Split the target between the two metrics and set each critical z from A/A maxima."""
        z_e, z_l = self.statistics(calibration)
        share = target / 2
        for _ in range(20):
            cand = replace(
                self,
                z_errors=max(calibrate_upper(z_e.max(axis=1), share), 0.0),
                z_latency=max(calibrate_upper(z_l.max(axis=1), share), 0.0),
            )
            if np.mean(cand.abort_ticks(calibration) >= 0) <= target:
                return cand
            share *= 0.8
        return replace(self, z_errors=math.inf, z_latency=math.inf)
