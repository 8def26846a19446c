"""Latency regressions from Prometheus histogram buckets, as exceedance rate ratios.

Why exceedances: a request slower than an edge is an event, and "canary requests exceed the edge
``r`` times as often as baseline requests" is a count question the conditional e-process answers
exactly, with all the shared nuisances cancelling. A few edges (near the baseline's p90 and p99 and
the SLO) catch both shifts and tail-only regressions; alpha is split equally across them.
Edges are frozen from the baseline *before* the rollout, so choosing them cannot peek at the canary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analysis.stats.count_eprocess import RateRatioEProcess
from analysis.stats.evidence import Evidence

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def choose_edges(
    bucket_bounds: Sequence[float],
    baseline_cumulative_counts: ArrayLike,
    quantiles: Sequence[float] = (0.9, 0.99),
    slo: float | None = None,
) -> list[float]:
    """Bucket bounds nearest above the baseline's quantiles, plus the SLO edge; sorted, unique."""
    raise NotImplementedError


class HistogramEProcess:
    """One exceedance :class:`RateRatioEProcess` per edge; rejects when any edge rejects.

    ``update`` takes one interval's increments of the cumulative ``le`` bucket counts, shape
    ``(batch, n_buckets)`` (``(n_buckets,)`` when batch == 1); the last bucket is ``+Inf`` = total.
    """

    def __init__(
        self,
        bucket_bounds: Sequence[float],
        edges: Sequence[float],
        *,
        tolerance: float = 1.2,
        alpha: float = 0.05,
        batch: int = 1,
    ) -> None:
        raise NotImplementedError

    def update(self, canary_buckets: ArrayLike, baseline_buckets: ArrayLike) -> None:
        raise NotImplementedError

    @property
    def processes(self) -> tuple[RateRatioEProcess, ...]:
        """The per-edge e-processes, in edge order."""
        raise NotImplementedError

    @property
    def log_e_value(self) -> FloatArray:
        """Largest per-edge log e-value (edges share one threshold)."""
        raise NotImplementedError

    @property
    def log_threshold(self) -> float:
        raise NotImplementedError

    @property
    def rejected(self) -> BoolArray:
        raise NotImplementedError

    @property
    def events(self) -> FloatArray:
        """Requests seen in valid intervals, both arms."""
        raise NotImplementedError

    def confidence_interval(self) -> tuple[FloatArray, FloatArray]:
        """The interval of the edge whose upper bound is highest (the one that blocks promotion)."""
        raise NotImplementedError

    def evidence(self, index: int = 0) -> Evidence:
        raise NotImplementedError

    def to_state(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        raise NotImplementedError
