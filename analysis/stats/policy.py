"""The rollout-wide error budget: which metric may abort, when a step may promote.

Why one e-process per metric for the whole rollout: every look, pause, extension and step of a
rollout is then covered by one Ville bound, so ``P(false abort) <= alpha_m`` per metric and
``<= alpha`` per rollout (Bonferroni across metrics, valid under any dependence between them).
Steps never reset evidence; a step only decides *when* it is allowed to promote.

Decision precedence per run: ABORT (any metric's e-value reached ``1/alpha_m``; the count tests
condition on the observed split, so they stay valid even under a sample-ratio mismatch) >
INCONCLUSIVE (sample-ratio mismatch) > INSUFFICIENT during warm-up > PROMOTE_STEP > at the step's
maximum duration ``on_max_duration`` ("promote" with a warning, or "pause" = INCONCLUSIVE) >
INSUFFICIENT (a critical metric has fewer than ``max(min_events, 1)`` events) > CONTINUE.
A critical metric with no valid data never promotes, not even at the maximum duration.

``observe`` takes ``t`` as the *end* of the interval the data covers; intervals with
``t < t0 + warmup_seconds`` are excluded from evidence. Requests for the sample-ratio check come
from ``requests=`` when given, else from the first counts metric's totals, else from the first
histogram's ``+Inf`` bucket. ``min_events`` counts events over the whole rollout, like the evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analysis.stats.evidence import Evidence


class Decision(StrEnum):
    """What the controller should do with the current step, per run."""

    ABORT = "abort"
    PROMOTE_STEP = "promote-step"
    CONTINUE = "continue"
    INCONCLUSIVE = "inconclusive"
    INSUFFICIENT = "insufficient"


@dataclass(frozen=True)
class CountsInterval:
    """One interval's increments of an event counter and its exposure (usually requests)."""

    canary_events: ArrayLike
    canary_total: ArrayLike
    baseline_events: ArrayLike
    baseline_total: ArrayLike


@dataclass(frozen=True)
class HistogramInterval:
    """One interval's increments of cumulative ``le`` buckets, shape ``(batch, n_buckets)``."""

    canary_buckets: ArrayLike
    baseline_buckets: ArrayLike


@dataclass(frozen=True)
class GaugeInterval:
    """One interval's (batch-mean) gauge value per arm."""

    canary: ArrayLike
    baseline: ArrayLike


IntervalData = CountsInterval | HistogramInterval | GaugeInterval


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is judged.

    ``tolerance`` is the ratio canary/baseline that is still fine (rate ratio for counts and
    histogram exceedances, geometric-mean ratio for gauges). ``critical`` metrics must be shown
    within tolerance before a step promotes; every metric can abort. ``alpha=None`` takes an
    equal share of what explicit alphas leave of the rollout's budget.
    """

    name: str
    kind: Literal["counts", "histogram", "gauge"]
    tolerance: float = 1.2
    critical: bool = True
    alpha: float | None = None
    min_events: int = 0
    bucket_bounds: tuple[float, ...] | None = None
    edges: tuple[float, ...] | None = None
    tau: float | None = None


@dataclass(frozen=True)
class PolicyConfig:
    """Rollout-wide knobs of the decision rule."""

    alpha: float = 0.05
    warmup_seconds: float = 0.0
    min_step_seconds: float = 60.0
    max_step_seconds: float | None = None
    on_max_duration: Literal["promote", "pause"] = "pause"
    srm_alpha: float = 0.001


@dataclass(frozen=True)
class PolicyVerdict:
    """The decision for one run, why, and every metric's evidence."""

    decision: Decision
    reason: str
    metrics: dict[str, Evidence] = field(default_factory=dict)


class RolloutAnalysis:
    """All metrics of one rollout (or a batch of simulated rollouts), judged under one budget."""

    def __init__(
        self,
        metrics: Sequence[MetricSpec],
        config: PolicyConfig,
        *,
        batch: int = 1,
        t0: float | None = None,
    ) -> None:
        raise NotImplementedError

    @property
    def alphas(self) -> dict[str, float]:
        """Each metric's share of the rollout's alpha."""
        raise NotImplementedError

    def observe(
        self,
        t: float,
        data: Mapping[str, IntervalData],
        *,
        expected_canary_share: ArrayLike | None = None,
        requests: tuple[ArrayLike, ArrayLike] | None = None,
    ) -> None:
        """Fold in one interval ending at ``t``; a metric absent from ``data`` is missing."""
        raise NotImplementedError

    def decide(self, now: float, step_started_at: float) -> NDArray[np.str_]:
        """Decision per run: a string array of :class:`Decision` values (``== Decision.ABORT``)."""
        raise NotImplementedError

    def verdict(self, now: float, step_started_at: float, index: int = 0) -> PolicyVerdict:
        raise NotImplementedError

    def to_state(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], metrics: Sequence[MetricSpec], config: PolicyConfig
    ) -> Self:
        """Resume from :meth:`to_state`; the metric set must be the one the state was built with."""
        raise NotImplementedError
