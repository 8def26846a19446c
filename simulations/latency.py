"""Latency distributions and how they land in Prometheus histogram buckets.

Sluice judges latency from ``le`` bucket counters, never from raw samples, so the simulator must
produce exactly that: per-interval increments of cumulative bucket counts at fixed bounds. Shapes
are given by their CDF, so every effect (a multiplicative slowdown, a slow tail for a few percent
of requests, a cold start) is a transformation of the CDF and the bucket probabilities are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

FloatArray = NDArray[np.float64]

#: Prometheus client defaults (seconds), without the implicit +Inf.
PROMETHEUS_BOUNDS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class LatencyShape(Protocol):
    """A latency distribution (seconds) known by its CDF."""

    @property
    def name(self) -> str: ...

    def cdf(self, x: FloatArray) -> FloatArray: ...


@dataclass(frozen=True)
class LogNormal:
    """The usual shape of a healthy service: median and log-space spread."""

    median_s: float = 0.08
    sigma: float = 0.6
    name: str = "lognormal"

    def cdf(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore"):
            z = (np.log(np.maximum(x, 0.0)) - np.log(self.median_s)) / self.sigma
        return np.asarray(ndtr(z), dtype=float)


@dataclass(frozen=True)
class HeavyTail:
    """A lognormal body with a Pareto tail on a fraction of requests (cache misses, GC pauses).

    Heavy tails are where p99 thresholds are noisiest, so the benchmark needs one.
    """

    body: LogNormal = LogNormal(0.05, 0.5)
    tail_fraction: float = 0.05
    tail_start_s: float = 0.15
    tail_index: float = 1.5
    name: str = "heavy-tail"

    def cdf(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            pareto = np.where(
                x > self.tail_start_s,
                1.0 - (self.tail_start_s / np.maximum(x, self.tail_start_s)) ** self.tail_index,
                0.0,
            )
        return (1.0 - self.tail_fraction) * self.body.cdf(x) + self.tail_fraction * pareto


def transformed_cdf(
    shape: LatencyShape,
    bounds: FloatArray,
    scale: FloatArray,
    tail_fraction: FloatArray | float = 0.0,
    tail_add_s: float = 0.3,
) -> FloatArray:
    """CDF at ``bounds`` of ``scale·L`` plus ``tail_add_s`` on a ``tail_fraction`` of requests.

    ``scale`` has shape ``(runs,)``; the result is ``(runs, len(bounds))``. A multiplicative scale
    is how slowdowns (a slower code path, a cold JIT, a shared incident) look; the added tail is a
    regression that only some requests hit, invisible in the median.
    """
    b = np.asarray(bounds, dtype=float)[None, :]
    s = np.asarray(scale, dtype=float)[:, None]
    f = np.broadcast_to(np.asarray(tail_fraction, dtype=float), s.shape[:1])[:, None]
    base = shape.cdf(b / s)
    if not np.any(f > 0):
        return base
    shifted = shape.cdf(np.maximum(b - tail_add_s, 0.0) / s)
    return (1.0 - f) * base + f * shifted


def bin_probabilities(cdf_at_bounds: FloatArray) -> FloatArray:
    """Probabilities of the ``len(bounds) + 1`` disjoint bins (the last one is ``(b_K, +Inf)``)."""
    c = np.clip(cdf_at_bounds, 0.0, 1.0)
    c = np.maximum.accumulate(c, axis=-1)
    padded = np.concatenate([np.zeros((*c.shape[:-1], 1)), c, np.ones((*c.shape[:-1], 1))], axis=-1)
    return np.diff(padded, axis=-1)


def exceedance(cdf_at_bounds: FloatArray, bounds: tuple[float, ...], edge: float) -> FloatArray:
    """``P(latency > edge)`` for an ``edge`` that is one of the bucket bounds."""
    k = bounds.index(edge)
    return 1.0 - cdf_at_bounds[..., k]


def histogram_quantile(q: float, bounds: tuple[float, ...], cumulative: FloatArray) -> FloatArray:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket holding rank q·n.

    Vectorised over leading axes; ``cumulative`` includes the +Inf bucket last. Like Prometheus,
    a quantile that falls in the +Inf bucket returns the highest finite bound, and an empty
    histogram returns NaN.
    """
    cum = np.asarray(cumulative, dtype=float)
    total = cum[..., -1]
    rank = q * total
    k = np.argmax(cum >= rank[..., None], axis=-1)
    finite = np.asarray(bounds, dtype=float)
    upper_b = np.concatenate([finite, [finite[-1]]])
    lower_b = np.concatenate([[0.0], finite])
    prev = np.where(k > 0, np.take_along_axis(cum, np.maximum(k - 1, 0)[..., None], -1)[..., 0], 0)
    here = np.take_along_axis(cum, k[..., None], -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(here > prev, (rank - prev) / (here - prev), 1.0)
    value = lower_b[k] + (upper_b[k] - lower_b[k]) * frac
    value = np.where(k == len(finite), finite[-1], value)
    return np.where((total > 0) & np.isfinite(total), value, np.nan)
