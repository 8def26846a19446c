"""The physical limit: a likelihood-ratio SPRT that is told the true effect.

No real judge knows the size, onset or on/off pattern of a regression; this one does, and tests
exactly "the truth" against "no difference" on the same conditional counts Sluice uses (the
canary's share of the events in each interval). By Wald's optimality no test with the same error
rates can be faster on average, so each cell's other judges are measured against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulations.judges.base import FloatArray, IntArray
from simulations.metrics import first_true
from simulations.traffic import Trace


def _binomial_llr(x: FloatArray, s: FloatArray, th1: FloatArray, th0: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(x > 0, x * np.log(th1 / th0), 0.0)
        b = np.where(s - x > 0, (s - x) * np.log((1 - th1) / (1 - th0)), 0.0)
    return np.asarray(np.nan_to_num(a + b, nan=0.0), dtype=float)


@dataclass(frozen=True)
class OracleSPRT:
    """Abort when the running log-likelihood ratio (truth vs none) reaches ``log(1/alpha)``."""

    alpha: float = 0.05
    name: str = "oracle SPRT"

    def log_likelihood_ratio(self, trace: Trace) -> FloatArray:
        """Per tick, the conditional log-likelihood ratio of the true effect against none."""
        c, b, tr = trace.canary, trace.baseline, trace.truth
        n_c = np.nan_to_num(c.requests)
        n_b = np.nan_to_num(b.requests)
        with np.errstate(divide="ignore", invalid="ignore"):
            th0 = n_c / (n_c + n_b)
            # Errors: canary share of the interval's errors.
            ec, eb = np.nan_to_num(c.errors), np.nan_to_num(b.errors)
            th1 = n_c * tr.canary_error_p / (n_c * tr.canary_error_p + n_b * tr.baseline_error_p)
            llr = _binomial_llr(ec, ec + eb, th1, th0)
            # Latency: canary share of each histogram bin's requests.
            bins_c = np.diff(np.nan_to_num(c.buckets), axis=-1, prepend=0.0)
            bins_b = np.diff(np.nan_to_num(b.buckets), axis=-1, prepend=0.0)
            qc, qb = tr.canary_bins_p, tr.baseline_bins_p
            th1k = n_c[..., None] * qc / (n_c[..., None] * qc + n_b[..., None] * qb)
            th0k = np.broadcast_to(th0[..., None], th1k.shape)
            llr = llr + _binomial_llr(bins_c, bins_c + bins_b, th1k, th0k).sum(axis=-1)
        return np.where((n_c > 0) & (n_b > 0), llr, 0.0)

    def abort_ticks(self, trace: Trace) -> IntArray:
        cum = np.cumsum(self.log_likelihood_ratio(trace), axis=1)
        return first_true(cum >= math.log(1 / self.alpha))
